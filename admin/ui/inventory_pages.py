"""The inventory (``/inventory``): the fleet filters of `enroll.inventory.Filters`
(protocol, profile, CA, endpoint, state, expiring within, a search), a page at a time
with the keyset cursor; and one identity (``/device?identity=…``): its certificates'
lineage as a timeline across protocols, and revoking all of its live certificates."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from enroll import inventory
from enroll.config_values import as_duration
from enroll.errors import ConfigError, MalformedInput
from enroll.renewal_states import STATES

from .. import operations
from ..roles import Action, allows
from . import web

PAGE = 50
MAX_PAGE = 500
FILTERS = ("protocol", "profile", "ca", "endpoint", "state", "expiring_within", "search")
MAX_IDENTITY = 1024


def _filters(request: Request) -> tuple[inventory.Filters, dict[str, str]]:
    given = {name: value for name in FILTERS
             if (value := web.query(request, name)) is not None}
    within = None
    if "expiring_within" in given:
        try:
            within = as_duration(given["expiring_within"], "expiring within", minimum=0)
        except ConfigError as exc:
            raise MalformedInput(str(exc)) from None
    state = given.get("state")
    if state is not None and state not in STATES:
        raise MalformedInput(f"state must be one of {', '.join(STATES)}")
    return inventory.Filters(protocol=given.get("protocol"), profile=given.get("profile"),
                             ca=given.get("ca"), endpoint=given.get("endpoint"), state=state,
                             expiring_within=within, search=given.get("search")), given


async def search(request: Request) -> Response:
    who = await web.principal(request)
    ctx = web.console_of(request).ctx
    filters, given = _filters(request)
    after = web.query(request, "after", 512)
    raw_limit = web.query(request, "limit", 4) or str(PAGE)
    if not raw_limit.isdigit() or not 1 <= int(raw_limit) <= MAX_PAGE:
        raise MalformedInput(f"limit is 1 to {MAX_PAGE}")
    limit = int(raw_limit)
    if limit != PAGE:
        given["limit"] = str(limit)
    page = await ctx.frontend.blocking.run(
        lambda: operations.inventory_page(ctx, who, filters, limit=limit, after=after))
    next_url = None
    if page.next is not None:
        next_url = web.url(request, "ui:inventory") + "?" + urlencode({**given,
                                                                      "after": page.next})
    first_url = web.url(request, "ui:inventory") + ("?" + urlencode(given) if given else "")
    return web.render(request, "inventory.html", rows=page.items, given=given,
                      states=STATES, profiles=sorted(ctx.authority.profiles),
                      cas=ctx.cas.names(), next_url=next_url,
                      first_url=first_url if after else None)


async def device(request: Request) -> Response:
    who = await web.principal(request)
    ctx = web.console_of(request).ctx
    identity = web.query(request, "identity", MAX_IDENTITY)
    if identity is None:
        raise MalformedInput("which identity? (?identity=…)")

    def read() -> dict[str, Any]:
        chains = operations.lineage_of(ctx, who, identity)
        page = operations.inventory_page(ctx, who, inventory.Filters(search=identity),
                                         limit=10)
        row = next((r for r in page.items if r.identity == identity), None)
        return {"chains": chains, "row": row}

    values = await ctx.frontend.blocking.run(read)
    if not values["chains"] and values["row"] is None:
        from enroll.errors import NotFound

        raise NotFound("no identity with this name in the inventory")
    return web.render(request, "device.html", identity=identity,
                      may_revoke=allows(who.role, Action.REVOKE),
                      reasons=sorted(f.value for f in operations.REVOCATION_REASONS.values()),
                      done=_count(web.query(request, "revoked", 8)), **values)


def _count(text: str | None) -> str | None:
    """The notice's figure: digits only (a link cannot make the page say anything else)."""
    return text if text is not None and text.isdigit() else None


async def revoke(request: Request) -> Response:
    who = await web.principal(request, Action.REVOKE)
    form = await request.form()
    web.check_csrf(request, form)
    ctx = web.console_of(request).ctx
    identity = web.form_text(form, "identity", MAX_IDENTITY)
    reason = web.form_text(form, "reason", 64)
    done = await ctx.frontend.blocking.run(
        lambda: operations.revoke_identity(ctx, who, identity, reason))
    return web.redirect_to(request, web.url(request, "ui:device") + "?" + urlencode(
        {"identity": identity, "revoked": str(len(done))}))


def routes() -> list[BaseRoute]:
    return [Route("/inventory", search, name="ui:inventory"),
            Route("/device", device, name="ui:device"),
            Route("/device/revoke", revoke, methods=["POST"], name="ui:device_revoke")]
