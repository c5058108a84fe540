"""SCEP over HTTP (RFC 8894 §4.1): ``GET|POST <path>?operation=...``.

Transport only: decoding the query or body, calling `ScepService` through
`FrontEnd.blocking` (signing and database work never block the event loop), and encoding
the answer.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import logging

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import BaseRoute, Route

from enroll.asgi.peer import peer_address
from enroll.asgi.plain_http import allow_plain_http
from enroll.errors import RateLimited
from enroll.rate_limits import Limit

from .challenges import OneTimeChallenges, digest
from .failinfo import ScepFailure
from .service import ScepService

log = logging.getLogger("enroll.scep")
PKI_MESSAGE = "application/x-pki-message"


def _bad(text: str, status: int = 400, headers: dict[str, str] | None = None) -> Response:
    return PlainTextResponse(text + "\n", status_code=status, headers=headers)


def routes(service: ScepService, one_time: OneTimeChallenges) -> list[BaseRoute]:
    """The routes of one endpoint: ``<path>`` and ``<path>/pkiclient.exe`` (the
    historical CGI name some clients append), plus the MDM challenge API."""
    limit = service.endpoint.max_message_bytes
    # base64 of `limit` bytes, a line break (CR LF) every 64 characters (sscep breaks
    # its base64 into lines), plus URL-encoding slack.
    base64_limit = (limit + 2) // 3 * 4
    max_query = base64_limit + base64_limit // 32 + 64

    async def scep(request: Request) -> Response:
        operation = request.query_params.get("operation", "")
        # Each reads the RA generations from the database (workers agree, and switch
        # generations without a restart), so it runs off the event loop.
        if operation == "GetCACaps":
            return PlainTextResponse(await service.frontend.blocking.run(service.caps))
        if operation == "GetCACert":
            body, media_type = await service.frontend.blocking.run(service.ca_cert)
            return Response(body, media_type=media_type)
        if operation == "GetNextCACert":
            next_body = await service.frontend.blocking.run(service.next_ca_cert)
            if next_body is None:
                return _bad("no next CA or RA certificate is published for this endpoint", 404)
            return Response(next_body, media_type="application/x-x509-next-ca-cert")
        if operation != "PKIOperation":
            return _bad("unknown operation")
        if request.method == "POST":
            message = await request.body()
            if len(message) > limit:
                return _bad("message too large", 413)
        else:
            encoded = request.query_params.get("message", "")
            if len(encoded) > max_query:
                return _bad("message too large", 414)
            # Line breaks (``%0A``, ``%0D%0A``) are the clients' line-wrapped base64;
            # query parsing turns an unescaped '+' into a space, undone (§4.3).
            # Anything else that is not base64 is refused.
            encoded = encoded.replace("\r", "").replace("\n", "").replace(" ", "+")
            try:
                message = base64.b64decode(encoded, validate=True)
            except (binascii.Error, ValueError):
                return _bad("message is not base64")
        request_id = str(request.scope.get("state", {}).get("request_id", "-"))
        try:
            answer = await service.frontend.blocking.run(service.pki_operation, message,
                                                         request_id, peer_address(request.scope))
        except ScepFailure as exc:
            return _bad(f"not a SCEP pkiMessage: {exc.detail}")
        return Response(answer, media_type=PKI_MESSAGE)

    async def challenge_api(request: Request) -> Response:
        """An MDM fetches a fresh one-time challenge (the NDES mscep_admin pattern)."""
        expected = service.endpoint.api_token_sha256
        if expected is None or not service.endpoint.one_time:
            return _bad("not found", 404)
        if request.url.scheme != "https":
            return _bad("the challenge API is served over HTTPS only", 403)
        source = peer_address(request.scope)
        limits = [] if source is None else [Limit(
            "scep.challenge_api_failures", f"{service.endpoint.label}|{source}",
            service.endpoint.rate_limits["challenge_api_failures_per_address"])]
        try:
            await service.frontend.blocking.run(service.frontend.limits.check, limits,
                                                "failed token checks from this address")
        except RateLimited as exc:
            await service.frontend.blocking.run(
                service.door.record_refusal, f"scep:{service.endpoint.label}",
                "challenge_api_rate_limited", source, None, {"detail": exc.detail})
            return _bad(exc.detail, 429, {"retry-after": str(exc.retry_after)})
        auth = request.headers.get("authorization", "")
        token = auth[7:] if auth[:7].lower() == "bearer " and len(auth) < 512 else ""
        if not token or not hmac.compare_digest(digest(token), expected):
            await service.frontend.blocking.run(service.frontend.limits.hit, limits)
            await service.frontend.blocking.run(
                service.door.record_refusal, f"scep:{service.endpoint.label}",
                "challenge_api_unauthorized", source, None, {})
            return Response("unauthorized\n", status_code=401, media_type="text/plain",
                            headers={"www-authenticate": 'Bearer realm="enroll-scep"'})
        challenge, expires = await service.frontend.blocking.run(
            one_time.new, service.endpoint.label, service.endpoint.one_time_ttl, "api")
        return Response(json.dumps({"challenge": challenge, "expires": expires.isoformat(),
                                    "endpoint": service.endpoint.label}),
                        media_type="application/json", headers={"cache-control": "no-store"})

    path = service.endpoint.path
    # SCEP itself runs over plain HTTP (RFC 8894 §4.1: the pkiMessage protects itself);
    # the challenge API carries a bearer token, so it stays HTTPS-only.
    return [
        *allow_plain_http([Route(path, scep, methods=["GET", "POST"]),
                           Route(f"{path}/pkiclient.exe", scep, methods=["GET", "POST"])]),
        Route(f"{path}/challenge", challenge_api, methods=["POST"]),
    ]
