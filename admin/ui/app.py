"""The console's ASGI app: its router behind one layer that hands every page the
`Console` and turns the console's refusals into pages (sign-in redirect, 403, the error
page), so handlers only raise."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount, Route, Router
from starlette.staticfiles import StaticFiles

from enroll.asgi.types import Receive, Scope, Send
from enroll.context import AppContext
from enroll.errors import (
    Conflict,
    EnrollError,
    NotFound,
    PolicyDenied,
    RateLimited,
    Unavailable,
)

from ..principal import Forbidden
from ..settings import AdminSettings
from . import web

STATIC = web.TEMPLATES.parent / "static"
STATUSES: tuple[tuple[type[EnrollError], int], ...] = (
    (NotFound, 404), (RateLimited, 429), (web.Refused, 403), (Forbidden, 403),
    (Conflict, 409), (PolicyDenied, 403), (Unavailable, 503))
"""A refusal's HTTP status (anything else an `EnrollError` says is the client's: 400)."""
PageModule = Callable[[], Iterable[BaseRoute]]


class ConsoleApp:
    def __init__(self, console: web.Console, routes: list[BaseRoute]) -> None:
        self.console = console
        self.router = Router(routes=[*routes, Mount("/static", StaticFiles(directory=STATIC),
                                                    name="ui:static")])

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.router(scope, receive, send)
            return
        scope[web.SCOPE_KEY] = self.console
        scope[web.BASE_KEY] = scope.get("root_path", "")
        scope[web.ROUTER_KEY] = self.router
        try:
            await self.router(scope, receive, send)
        except EnrollError as exc:
            await _refusal(Request(scope, receive), exc)(scope, receive, send)


def _refusal(request: Request, exc: EnrollError) -> Response:
    if isinstance(exc, web.SignInRequired):
        return web.redirect(request, "ui:login")
    status = next((code for kind, code in STATUSES if isinstance(exc, kind)), 400)
    page = web.render(request, "error.html", status=status, message=str(exc))
    if isinstance(exc, RateLimited) and exc.retry_after is not None:
        page.headers["Retry-After"] = str(exc.retry_after)
    return page


def mount(ctx: AppContext, settings: AdminSettings,
          pages: Iterable[Iterable[BaseRoute]]) -> Mount:
    """``Mount("/ui")`` with every page module's routes."""
    console = web.Console(ctx, settings)
    console.key()  # unseal (or make) the signing key now, not on the first request
    routes: list[BaseRoute] = [r for group in pages for r in group]
    return Mount("/ui", app=ConsoleApp(console, routes))


__all__ = ["ConsoleApp", "Route", "mount"]
