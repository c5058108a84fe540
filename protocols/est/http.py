"""EST over HTTPS (RFC 7030 §3.2.2): ``<path>/<operation>`` per endpoint.

Transport only: reading the client certificate and credentials off the request, calling
`EstService` in a worker thread (signing, database and KDF work never block the event
loop) and encoding the answer. Errors become HTTP answers in `statuses` alone.
"""

from __future__ import annotations

import logging

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from enroll import refusals
from enroll.asgi.peer import peer_address
from enroll.asgi.plain_http import refuse_plain_http
from enroll.errors import EnrollError, MalformedInput, PolicyDenied
from enroll.model import Issued, Outcome, Pending

from . import auth, statuses, wire
from .service import EstService, KeyAndOutcome
from .settings import EstSettings

log = logging.getLogger("enroll.est")


def _request_id(request: Request) -> str:
    return str(request.scope.get("state", {}).get("request_id", "-"))


def _issued(body: bytes) -> Response:
    return Response(body, media_type=wire.CERTS_ONLY,
                    headers={"content-transfer-encoding": "base64"})


def _answer(outcome: Outcome) -> Response:
    if isinstance(outcome, Issued):
        return _issued(wire.certs_only([outcome.certificate]))
    if isinstance(outcome, Pending):
        # RFC 7030 §4.2.3: accepted for manual approval; come back after Retry-After.
        return Response(b"", status_code=202,
                        headers={"retry-after": str(outcome.retry_after)})
    return statuses.error_response(PolicyDenied(outcome.reason or "request rejected"))


def routes(settings: EstSettings, services: list[EstService]) -> list[BaseRoute]:
    """Routes for every endpoint (RFC 7030 §3.2.2: ``/.well-known/est[/<label>]/<op>``)."""
    result: list[BaseRoute] = []
    for service in services:
        result.extend(_endpoint_routes(settings, service))
    return result


def _endpoint_routes(settings: EstSettings, service: EstService) -> list[BaseRoute]:
    header = settings.client_cert_header

    def transport_of(request: Request) -> auth.Transport:
        return auth.read_transport(request.scope, settings.proxy, header)

    def insecure(transport: auth.Transport) -> Response | None:
        if transport.secure:
            return None
        # RFC 7030 §3.3: EST runs over TLS; Basic passwords never travel in the clear.
        return statuses.text("EST is served over HTTPS only", 403)

    async def cacerts(request: Request) -> Response:
        # RFC 7030 §4.1: no authentication; the answer is the same for everyone.
        return _issued(service.cacerts_body)

    async def csrattrs(request: Request) -> Response:
        # RFC 7030 §4.5.2: 204 when the server has nothing to ask for.
        if service.csrattrs_der is None:
            return Response(b"", status_code=204)
        return Response(wire.b64(service.csrattrs_der), media_type=wire.CSRATTRS,
                        headers={"content-transfer-encoding": "base64"})

    def content_type_ok(request: Request) -> bool:
        ctype = request.headers.get("content-type", "")
        return ctype.split(";", 1)[0].strip().lower() == wire.PKCS10

    async def enrolling(request: Request, operation: str) -> Response:
        async def audit(reason: str, detail: str) -> None:
            await service.blocking.run(
                service.authority.record_refusal, f"est:{service.endpoint.label}", reason,
                peer_address(request.scope), None, {"operation": operation, "detail": detail})

        try:
            transport = transport_of(request)
        except MalformedInput as exc:  # a repeated certificate or proxy-secret header
            _log_refusal(request, operation, exc)
            await audit("malformed", exc.detail)
            return statuses.error_response(exc)
        refused = insecure(transport)
        if refused is not None:
            await audit("insecure", "not over TLS")
            return refused
        if not content_type_ok(request):
            await audit("unsupported_media_type", "wrong Content-Type")
            return statuses.text(f"expected Content-Type: {wire.PKCS10}", 415)
        body = await request.body()
        authorization = request.headers.get("authorization", "")
        try:
            if operation == "serverkeygen":
                result: KeyAndOutcome = await service.blocking.run(
                    service.serverkeygen, authorization, transport, body)
                return _keygen_answer(result)
            method = service.simpleenroll if operation == "simpleenroll" \
                else service.simplereenroll
            outcome = await service.blocking.run(method, authorization, transport, body)
        except Exception as exc:  # noqa: BLE001 - mapped in statuses, logged there
            _log_refusal(request, operation, exc)
            if isinstance(exc, EnrollError):
                await service.blocking.run(
                    service.authority.record_refusal, f"est:{service.endpoint.label}",
                    refusals.reason_code(exc), peer_address(request.scope),
                    refusals.actor_of(exc), {"operation": operation, "detail": exc.detail})
            return statuses.error_response(exc, _request_id(request))
        return _answer(outcome)

    async def simpleenroll(request: Request) -> Response:
        return await enrolling(request, "simpleenroll")

    async def simplereenroll(request: Request) -> Response:
        return await enrolling(request, "simplereenroll")

    async def serverkeygen(request: Request) -> Response:
        return await enrolling(request, "serverkeygen")

    async def fullcmc(request: Request) -> Response:
        # RFC 7030 §4.3 is optional; say so plainly rather than 404.
        return statuses.text("Full PKI Request messages (fullcmc, RFC 7030 §4.3) are not "
                             "implemented; use simpleenroll or simplereenroll", 501)

    path = service.endpoint.path
    # RFC 7030 §3.3: every EST operation, /cacerts included, runs over TLS.
    return refuse_plain_http([
        Route(f"{path}/cacerts", cacerts, methods=["GET"]),
        Route(f"{path}/csrattrs", csrattrs, methods=["GET"]),
        Route(f"{path}/simpleenroll", simpleenroll, methods=["POST"]),
        Route(f"{path}/simplereenroll", simplereenroll, methods=["POST"]),
        Route(f"{path}/serverkeygen", serverkeygen, methods=["POST"]),
        Route(f"{path}/fullcmc", fullcmc, methods=["POST"]),
    ], plain_http_refusal)


def plain_http_refusal(url: str) -> Response:
    """The answer on ``enroll serve``'s plain-HTTP listener (nothing is read)."""
    return statuses.text(f"EST is served over HTTPS only (RFC 7030 §3.3): {url}", 403)


def _keygen_answer(result: KeyAndOutcome) -> Response:
    outcome = result.outcome
    if isinstance(outcome, Issued) and result.key is not None:
        body, content_type = wire.multipart_key_and_cert(result.key, [outcome.certificate],
                                                         encrypted=result.encrypted)
        return Response(body, headers={"content-type": content_type,
                                       "cache-control": "no-store"})
    return _answer(outcome)


def _log_refusal(request: Request, operation: str, exc: BaseException) -> None:
    if isinstance(exc, EnrollError):
        # Client-safe detail only; never the credentials or the body.
        log.info("est %s refused: %s: %s", operation, type(exc).__name__, exc.detail,
                 extra={"request_id": _request_id(request)})

