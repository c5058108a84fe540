"""`create_app(config)`: the ASGI app. Works standalone or mounted under a prefix.

Everything is set up when `create_app` returns (database, CAs, routes); nothing waits
for an ASGI lifespan, so an app mounted inside another Starlette/FastAPI app works even
though mounted apps never see the parent's lifespan.

The app is Starlette's `Router` behind plain ASGI layers: `ErrorHeaders` (headers a
front-end asked for on every error answer under its paths), `RequestFrame` (request id,
mount root, metrics, the 500 answer, optional log line) and `BodySizeLimit`; each
front-end's routes come from its plugin's `enroll_routes` and are labelled with the
plugin's name, and those it did not mark plain-HTTP-safe are refused on ``enroll
serve``'s plain-HTTP listener (`enroll.asgi.plain_http`).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any, cast

from starlette.datastructures import State
from starlette.routing import BaseRoute, Router

from enroll import config as config_mod
from enroll.asgi import error_headers
from enroll.asgi.body_limit import BodySizeLimit
from enroll.asgi.request_frame import RequestFrame, label_routes
from enroll.asgi.types import ASGIApp, Receive, Scope, Send
from enroll.clock import Clock
from enroll.config import Config
from enroll.context import AppContext, build_context
from enroll.core_routes import core_routes


class EnrollApp:
    """The ASGI application: ``app.state.enroll`` is its `AppContext`, ``app.routes``
    its routes."""

    def __init__(self, routes: list[BaseRoute], context: AppContext) -> None:
        self.router = Router(routes=routes)
        self.state = State()
        self.state.enroll = context
        framed: ASGIApp = RequestFrame(
            BodySizeLimit(self.router, max_bytes=context.config.max_body_bytes),
            log_requests=context.config.log_requests)
        on_errors = error_headers.collect(routes)
        self._app = error_headers.ErrorHeaders(framed, on_errors) if on_errors else framed

    @property
    def routes(self) -> list[BaseRoute]:
        return self.router.routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        scope["app"] = self
        await self._app(scope, receive, send)


def create_app(config: Config | None = None, *, clock: Clock | None = None,
               extra_plugins: Iterable[object] = (), run_migrations: bool = True,
               context: AppContext | None = None, data_dir: Path | None = None,
               env: dict[str, str] | None = None) -> EnrollApp:
    """Build the enroll ASGI app.

    With no `config`, the configuration is loaded as `enroll serve` would load it
    (``enroll.toml`` in the data dir, then ``ENROLL_*`` from `env`). The returned app
    has ``app.state.enroll`` set to its `AppContext`.
    """
    if context is None:
        if config is None:
            config = config_mod.load(None, env or {}, data_dir=data_dir)
        context = build_context(config, clock=clock, extra_plugins=extra_plugins,
                                run_migrations=run_migrations)
    routes: list[BaseRoute] = list(core_routes(context))
    for impl in reversed(context.pm.hook.enroll_routes.get_hookimpls()):
        contributed = cast("Iterable[BaseRoute] | None",
                           impl.function(frontend=context.frontend))
        routes.extend(label_routes(contributed or [], impl.plugin_name,
                                   https_url=context.config.public_https_url))
    for impl in reversed(context.pm.hook.enroll_operator_routes.get_hookimpls()):
        contributed = cast("Iterable[BaseRoute] | None", impl.function(context=context))
        routes.extend(label_routes(contributed or [], impl.plugin_name,
                                   https_url=context.config.public_https_url))
    return EnrollApp(routes, context)


def app_context(app: Any) -> AppContext:
    ctx: AppContext = app.state.enroll
    return ctx
