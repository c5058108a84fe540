"""Every page module of the console, mounted at ``/ui``."""

from __future__ import annotations

from starlette.routing import Mount

from enroll.context import AppContext

from ..settings import AdminSettings
from . import app


def mount(ctx: AppContext, settings: AdminSettings) -> Mount:
    from . import signin

    return app.mount(ctx, settings, [signin.routes()])
