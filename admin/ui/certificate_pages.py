"""One certificate (``/certificates/{serial}``): decoded, its state and lineage, where it
differs from what its profile builds today (`operations.certificate_drift`), the PEM to
download, and revoking it with a reason (the revoker role)."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from enroll.store.queries import CA_PROTOCOL

from .. import operations
from ..roles import Action, allows
from . import decode, web

MAX_SERIAL = 64


def _serial(request: Request) -> str:
    return str(request.path_params["serial"])[:MAX_SERIAL]


async def show(request: Request) -> Response:
    who = await web.principal(request)
    ctx = web.console_of(request).ctx
    serial = _serial(request)

    def read() -> dict[str, Any]:
        record = operations.certificate(ctx, who, serial)
        return {"record": record, "view": decode.certificate(record.certificate),
                "chains": operations.lineage_of(ctx, who, record.serial_hex),
                "drift": None if record.protocol == CA_PROTOCOL
                else operations.certificate_drift(ctx, who, record.serial_hex)}

    values = await ctx.frontend.blocking.run(read)
    return web.render(request, "certificate.html", may_revoke=allows(who.role, Action.REVOKE),
                      reasons=sorted(f.value for f in operations.REVOCATION_REASONS.values()),
                      **values)


async def pem(request: Request) -> Response:
    who = await web.principal(request)
    ctx = web.console_of(request).ctx
    record = await ctx.frontend.blocking.run(operations.certificate, ctx, who,
                                             _serial(request))
    body = decode.certificate(record.certificate).pem
    return Response(body, media_type="application/x-pem-file", headers={
        **web.SECURITY_HEADERS,
        "Content-Disposition": f'attachment; filename="{record.serial_hex}.pem"'})


async def revoke(request: Request) -> Response:
    who = await web.principal(request, Action.REVOKE)
    form = await request.form()
    web.check_csrf(request, form)
    ctx = web.console_of(request).ctx
    record = await ctx.frontend.blocking.run(operations.revoke, ctx, who, _serial(request),
                                             web.form_text(form, "reason", 64))
    return web.redirect(request, "ui:certificate", serial=record.serial_hex)


def routes() -> list[BaseRoute]:
    return [Route("/certificates/{serial}", show, name="ui:certificate"),
            Route("/certificates/{serial}/pem", pem, name="ui:certificate_pem"),
            Route("/certificates/{serial}/revoke", revoke, methods=["POST"],
                  name="ui:certificate_revoke")]
