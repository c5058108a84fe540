"""The CAs (``/cas``): each CA's certificate and chain, its CRL (number, this and next
update, stale or not) and what the OCSP responder answers for it; and revoking a CA, a
CA-admin action behind the step-up (`step_up`)."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from .. import operations
from ..roles import Action, allows
from . import decode, step_up, web


async def cas(request: Request) -> Response:
    who = await web.principal(request)
    ctx = web.console_of(request).ctx

    def read() -> list[dict[str, Any]]:
        now = ctx.clock.now()
        return [{"state": ca, "json": ca.as_json(now),
                 "chain": [decode.certificate(c) for c in ca.chain],
                 "ocsp": operations.ca_ocsp_status(ctx, who, ca.name),
                 "parent": ctx.config.cas[ca.name].parent,
                 "ocsp_validity": ctx.config.cas[ca.name].ocsp_validity}
                for ca in operations.cas(ctx, who)]

    rows = await ctx.frontend.blocking.run(read)
    done = web.query(request, "revoked", 64)
    if not any(r["state"].name == done and r["state"].revoked for r in rows):
        done = None  # the notice names only a CA that is revoked
    return web.render(request, "cas.html", rows=rows,
                      may_revoke=allows(who.role, Action.CA_ADMIN),
                      ocsp_url=f"{ctx.config.public_http_url}/ocsp",
                      reasons=sorted(f.value for f in operations.REVOCATION_REASONS.values()),
                      done=done)


async def revoke(request: Request) -> Response:
    who = await web.principal(request, Action.CA_ADMIN)
    form = await request.form()
    web.check_csrf(request, form)
    name = str(request.path_params["ca"])[:64]
    reason = web.form_text(form, "reason", 64)
    page, fresh = await step_up.check(
        request, form, f"revoke the CA {name!r} ({reason})",
        web.url(request, "ui:ca_revoke", ca=name), {"reason": reason})
    if page is not None:
        return page
    ctx = web.console_of(request).ctx
    await ctx.frontend.blocking.run(operations.revoke_ca, ctx, who, name, reason)
    response = web.redirect_to(request, web.url(request, "ui:cas") + "?"
                               + urlencode({"revoked": name}))
    if fresh is not None:
        web.set_session(request, response, fresh)
    return response


def routes() -> list[BaseRoute]:
    return [Route("/cas", cas, name="ui:cas"),
            Route("/cas/{ca}/revoke", revoke, methods=["POST"], name="ui:ca_revoke")]
