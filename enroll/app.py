"""`create_app(config)`: the ASGI app. Works standalone or mounted under a prefix.

Everything is set up when `create_app` returns (database, CAs, routes); nothing waits
for an ASGI lifespan, so an app mounted inside another Starlette/FastAPI app works even
though mounted apps never see the parent's lifespan.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import BaseRoute

from enroll import config as config_mod
from enroll.asgi.body_limit import BodySizeLimit
from enroll.asgi.mount_root import MountRoot
from enroll.asgi.request_log import RequestLog
from enroll.clock import Clock
from enroll.config import Config
from enroll.context import AppContext, build_context
from enroll.core_routes import core_routes


def create_app(config: Config | None = None, *, clock: Clock | None = None,
               extra_plugins: Iterable[object] = (), run_migrations: bool = True,
               context: AppContext | None = None, data_dir: Path | None = None,
               env: dict[str, str] | None = None) -> Starlette:
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
    for contributed in context.pm.hook.enroll_routes(context=context):
        routes.extend(contributed or [])
    app = Starlette(routes=routes, middleware=[
        Middleware(MountRoot),
        Middleware(RequestLog),
        Middleware(BodySizeLimit, max_bytes=context.config.max_body_bytes),
    ])
    app.state.enroll = context
    return app


def app_context(app: Any) -> AppContext:
    ctx: AppContext = app.state.enroll
    return ctx
