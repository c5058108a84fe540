"""Every page module of the console, mounted at ``/ui``."""

from __future__ import annotations

from starlette.routing import Mount

from enroll.context import AppContext

from ..settings import AdminSettings
from . import app


def mount(ctx: AppContext, settings: AdminSettings) -> Mount:
    from . import (
        approvals,
        audit_pages,
        ca_pages,
        certificate_pages,
        check_pages,
        dashboard,
        inventory_pages,
        signin,
    )

    return app.mount(ctx, settings, [
        signin.routes(), dashboard.routes(), approvals.routes(), inventory_pages.routes(),
        certificate_pages.routes(), audit_pages.routes(), ca_pages.routes(),
        check_pages.routes()])
