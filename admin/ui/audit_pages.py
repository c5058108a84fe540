"""The audit trail (``/audit``): events oldest first, filtered by type, actor, serial or
request, a page at a time after an event id; and the hash-chain check (POST
``/audit/verify``, itself audited)."""

from __future__ import annotations

from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from enroll.errors import MalformedInput

from .. import operations
from . import web

PAGE = 100
FILTERS = ("type", "actor", "serial", "request_id")


def _after(request: Request) -> int:
    raw = web.query(request, "after", 20) or "0"
    if not raw.isdigit():
        raise MalformedInput("after is an event id")
    return int(raw)


async def events(request: Request) -> Response:
    who = await web.principal(request)
    ctx = web.console_of(request).ctx
    given = {name: value for name in FILTERS
             if (value := web.query(request, name)) is not None}
    after = _after(request)
    found = await ctx.frontend.blocking.run(
        lambda: operations.audit_events(ctx, who, after=after, limit=PAGE, **given))
    next_url = None
    if len(found) == PAGE:
        next_url = web.url(request, "ui:audit") + "?" + urlencode({**given,
                                                                   "after": found[-1].id})
    return web.render(request, "audit.html", events=found, given=given, next_url=next_url,
                      first_url=(web.url(request, "ui:audit") + "?" + urlencode(given))
                      if after else None, verdict=None)


async def verify(request: Request) -> Response:
    who = await web.principal(request)
    form = await request.form()
    web.check_csrf(request, form)
    ctx = web.console_of(request).ctx
    verdict = await ctx.frontend.blocking.run(operations.verify_audit, ctx, who)
    return web.render(request, "audit.html", events=[], given={}, next_url=None,
                      first_url=None, verdict=verdict)


def routes() -> list[BaseRoute]:
    return [Route("/audit", events, name="ui:audit"),
            Route("/audit/verify", verify, methods=["POST"], name="ui:audit_verify")]
