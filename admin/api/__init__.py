"""The admin API: JSON over HTTPS at ``<prefix>/api/v1``, described by the OpenAPI 3.1
document at ``<prefix>/api/v1/openapi.json``. See docs/api.md."""

from __future__ import annotations

from starlette.routing import Mount

from enroll.context import AppContext

from ..settings import AdminSettings


def mount(ctx: AppContext, settings: AdminSettings) -> Mount:
    """``Mount("/api/v1")`` with every resource module's operations."""
    from . import (
        app,
        audit,
        cas,
        certificates,
        credentials,
        fleet,
        requests,
        troubleshoot,
    )

    return app.mount(ctx, settings, [
        certificates.operations_, requests.operations_, fleet.operations_, cas.operations_,
        audit.operations_, credentials.operations_, troubleshoot.operations_])
