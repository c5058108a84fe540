"""The approval queue: pending requests (``/approvals``), one request with its CSR
decoded, the policy's reason recorded for it, its trail (each step from the door to the
answer the client gets, `operations.request_trail_of`) and its audit events
(``/approvals/{id}``), and approve or reject (with a reason) for the approver role."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from enroll.errors import MalformedInput
from enroll.model import Issued, RequestStatus

from .. import operations
from ..roles import Action, allows
from . import decode, web

PAGE = 100
STATUSES = ("pending", "approved", "issued", "rejected", "expired", "failed")


async def queue(request: Request) -> Response:
    who = await web.principal(request)
    ctx = web.console_of(request).ctx
    wanted = web.query(request, "status") or "pending"
    status = RequestStatus(wanted) if wanted in {s.value for s in RequestStatus} else None
    raw = web.query(request, "offset", 8) or "0"
    if not raw.isdigit():
        raise MalformedInput("offset is a number")
    offset = int(raw)

    def read() -> list[tuple[object, list[str], int]]:
        if status is RequestStatus.PENDING:
            ctx.authority.expire_pending()
        found = operations.requests(ctx, who, status, PAGE + 1, offset=offset)
        return [(r, ctx.authority.approvers(r.id), ctx.authority.approvals_required(r))
                for r in found]

    rows = await ctx.frontend.blocking.run(read)
    base = web.url(request, "ui:approvals") + "?"
    next_url = base + urlencode({"status": wanted, "offset": offset + PAGE}) \
        if len(rows) > PAGE else None
    previous_url = base + urlencode({"status": wanted, "offset": max(offset - PAGE, 0)}) \
        if offset else None
    return web.render(request, "approvals.html", rows=rows[:PAGE], wanted=wanted,
                      statuses=[s.value for s in RequestStatus], next_url=next_url,
                      previous_url=previous_url)


async def detail(request: Request) -> Response:
    who = await web.principal(request)
    ctx = web.console_of(request).ctx
    request_id = request.path_params["request_id"][:128]

    def read() -> dict[str, Any]:
        record = operations.request(ctx, who, request_id)
        return {"record": record, "csr": decode.csr(record.csr_pem),
                "approvers": operations.approvers(ctx, who, record.id),
                "required": ctx.authority.approvals_required(record),
                "events": operations.audit_events(ctx, who, request_id=record.id,
                                                  limit=100),
                "trail": operations.request_trail_of(ctx, who, record.id)}

    values = await ctx.frontend.blocking.run(read)
    return web.render(request, "request.html", may_approve=allows(who.role, Action.APPROVE),
                      notice=web.query(request, "done"), **values)


async def approve(request: Request) -> Response:
    who = await web.principal(request, Action.APPROVE)
    form = await request.form()
    web.check_csrf(request, form)
    ctx = web.console_of(request).ctx
    request_id = request.path_params["request_id"][:128]
    outcome = await ctx.frontend.blocking.run(operations.approve, ctx, who, request_id)
    done = "issued" if isinstance(outcome, Issued) else "approval recorded"
    return web.redirect_to(request, web.url(request, "ui:request", request_id=request_id)
                           + f"?done={done.replace(' ', '+')}")


async def reject(request: Request) -> Response:
    who = await web.principal(request, Action.APPROVE)
    form = await request.form()
    web.check_csrf(request, form)
    ctx = web.console_of(request).ctx
    request_id = request.path_params["request_id"][:128]
    await ctx.frontend.blocking.run(operations.reject, ctx, who, request_id,
                                    web.form_text(form, "reason", operations.MAX_REASON))
    return web.redirect_to(request, web.url(request, "ui:request", request_id=request_id)
                           + "?done=rejected")


def routes() -> list[BaseRoute]:
    return [Route("/approvals", queue, name="ui:approvals"),
            Route("/approvals/{request_id}", detail, name="ui:request"),
            Route("/approvals/{request_id}/approve", approve, methods=["POST"],
                  name="ui:approve"),
            Route("/approvals/{request_id}/reject", reject, methods=["POST"],
                  name="ui:reject")]
