"""The dashboard (``/``): certificates issued per day by protocol (an SVG chart drawn on
the server), identities expiring within 30 days, the approval queue's length, each CA's
expiry and each migration's progress; and the migration page (``/migration``) with
every door of every profile under a migration policy."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from enroll import migration_report
from enroll.model import RequestStatus

from .. import operations
from . import svg_chart, web

DAYS = 14
EXPIRING = 30 * 86400


async def home(request: Request) -> Response:
    who = await web.principal(request)
    ctx = web.console_of(request).ctx

    def figures() -> dict[str, Any]:
        ctx.authority.expire_pending()  # as `enroll requests list`: only what can be approved
        days = operations.issued_per_day(ctx, who, DAYS)
        protocols = sorted({p for _, counts in days for p in counts})
        expiring, more = operations.expiring_count(ctx, who, EXPIRING)
        pending = operations.requests(ctx, who, RequestStatus.PENDING, operations.MAX_PAGE)
        now = ctx.clock.now()
        return {
            "days": [(d.isoformat(), counts) for d, counts in days],
            "protocols": protocols,
            "chart": svg_chart.stacked_bars(
                [d.strftime("%m-%d") for d, _ in days],
                {p: [counts.get(p, 0) for _, counts in days] for p in protocols},
                f"Certificates issued per day, last {DAYS} days"),
            "today": days[-1][1] if days else {},
            "expiring": expiring, "expiring_more": more,
            "pending": len(pending), "pending_more": len(pending) >= operations.MAX_PAGE,
            "cas": [(ca, (ca.certificate.not_valid_after_utc - now).days)
                    for ca in operations.cas(ctx, who)],
            "migrations": [migration_report.status_json(s)
                           for s in operations.migration(ctx, who)],
        }

    values = await ctx.frontend.blocking.run(figures)
    return web.render(request, "dashboard.html", **values)


async def migration(request: Request) -> Response:
    who = await web.principal(request)
    ctx = web.console_of(request).ctx
    found = await ctx.frontend.blocking.run(operations.migration, ctx, who, None)
    return web.render(request, "migration.html",
                      migrations=[migration_report.status_json(s) for s in found])


def routes() -> list[BaseRoute]:
    return [Route("/", home, name="ui:home"),
            Route("/migration", migration, name="ui:migration")]
