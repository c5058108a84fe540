"""``/cas``: each CA's certificate, expiry, revocation, CRL state (number, this/next
update, stale) and OCSP settings; a CA's chain as PEM."""

from __future__ import annotations

from typing import Any

from cryptography.hazmat.primitives.serialization import Encoding
from starlette.responses import Response

from .. import operations
from ..roles import Action
from .app import Call, Operation
from .inputs import Field


def list_cas(call: Call) -> dict[str, Any]:
    ctx = call.ctx
    now = ctx.clock.now()
    public = ctx.config.public_http_url.rstrip("/")
    items = []
    for state in operations.cas(ctx, call.who):
        item = state.as_json(now)
        if item["crl"] is not None:
            item["crl"]["url"] = f"{public}/crl/{state.name}.crl"
        settings = ctx.config.cas.get(state.name)
        item["ocsp"] = {"url": f"{public}/ocsp",
                        "validity_seconds": settings.ocsp_validity if settings else 0,
                        "backdate_seconds": settings.ocsp_backdate if settings else 0}
        items.append(item)
    return {"items": items}


def ca_chain(call: Call) -> Response:
    chain = operations.chain(call.ctx, call.who, call.path["name"])
    return Response(b"".join(c.public_bytes(Encoding.PEM) for c in chain),
                    media_type="application/pem-certificate-chain",
                    headers={"Cache-Control": "no-store"})


def operations_() -> list[Operation]:
    return [
        Operation("GET", "/cas", Action.READ, list_cas,
                  "The CAs: expiry, revocation, CRL and OCSP state", "cas", "CAList",
                  errors=()),
        Operation("GET", "/cas/{name}/chain", Action.READ, ca_chain,
                  "A CA's chain as PEM, the CA first", "cas", None,
                  path_fields=(Field("name", "string", "CA name", minimum=1, maximum=64,
                                     pattern=r"^[A-Za-z0-9._-]{1,64}$"),),
                  media=("application/pem-certificate-chain",)),
    ]
