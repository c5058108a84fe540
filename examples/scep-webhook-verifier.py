"""A challenge verifier for enroll's built-in webhook plugin (see docs/scep.md).

Allows a SCEP request when its challenge is one this service handed out for the device
named in the CSR. Run it next to enroll:

    pip install uvicorn starlette cryptography
    VERIFIER_TOKEN=s3cret python examples/scep-webhook-verifier.py      # 127.0.0.1:9000

and point an endpoint at it:

    [scep.endpoints.default]
    webhook_url = "http://127.0.0.1:9000/verify"
    webhook_token = "s3cret"
    one_time_challenges = false

Hand out challenges with ``curl -X POST 127.0.0.1:9000/issue?device=laptop-42`` (this
toy keeps them in memory; an MDM would use its device inventory).
"""

from __future__ import annotations

import hmac
import os
import secrets

import uvicorn
from cryptography import x509
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

TOKEN = os.environ.get("VERIFIER_TOKEN", "")
issued: dict[str, str] = {}  # challenge -> device common name


async def issue(request: Request) -> JSONResponse:
    device = request.query_params.get("device", "")[:64]
    challenge = secrets.token_urlsafe(24)
    issued[challenge] = device
    return JSONResponse({"challenge": challenge, "device": device})


async def verify(request: Request) -> JSONResponse:
    auth = request.headers.get("authorization", "")
    if TOKEN and not hmac.compare_digest(auth, f"Bearer {TOKEN}"):
        return JSONResponse({"allow": False}, status_code=401)
    body = await request.json()
    device = issued.pop(body.get("challenge", ""), None)  # each challenge works once
    if device is None or not body.get("csr"):
        return JSONResponse({"allow": False})
    csr = x509.load_pem_x509_csr(body["csr"].encode())
    names = csr.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
    return JSONResponse({"allow": bool(names) and names[0].value == device})


app = Starlette(routes=[Route("/issue", issue, methods=["POST"]),
                        Route("/verify", verify, methods=["POST"])])

if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=9000)
