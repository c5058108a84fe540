"""HTTP routes of the core: health, CA certificates, CRLs, OCSP, metrics, and the MDM
events receiver (`enroll.device_events`, HTTPS only, when ``[events]`` is configured)."""

from __future__ import annotations

import base64
import binascii
import logging
import urllib.parse

from cryptography.hazmat.primitives import serialization
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Route

from enroll import device_events, metrics, ocsp_http
from enroll.asgi.request_frame import label_routes
from enroll.context import AppContext
from enroll.errors import MalformedInput, NotFound
from enroll.metrics_store import StoreGauges

log = logging.getLogger("enroll.http")
PEM = serialization.Encoding.PEM
DER = serialization.Encoding.DER


def core_routes(ctx: AppContext) -> list[BaseRoute]:
    def health(request: Request) -> Response:
        try:
            with ctx.db.read() as tx:
                tx.scalar("SELECT 1")
        except Exception:
            log.exception("health check: database unreachable")
            return JSONResponse({"status": "unavailable"}, status_code=503)
        return JSONResponse({"status": "ok"})

    def ca_list(request: Request) -> Response:
        base = str(request.base_url).rstrip("/")
        return JSONResponse([{
            "name": name,
            "subject": ctx.cas.get(name).certificate.subject.rfc4514_string(),
            "pem": f"{base}/ca/{name}.pem", "der": f"{base}/ca/{name}.der",
            "chain": f"{base}/ca/{name}/chain.pem", "crl": f"{base}/crl/{name}.crl",
        } for name in ctx.cas.names()])

    def ca_cert(request: Request) -> Response:
        name, fmt = request.path_params["name"], request.path_params["fmt"]
        try:
            cert = ctx.cas.get(name).certificate
        except NotFound:
            return PlainTextResponse("no such CA\n", status_code=404)
        if fmt == "der":
            return Response(cert.public_bytes(DER), media_type="application/pkix-cert")
        return Response(cert.public_bytes(PEM), media_type="application/x-pem-file")

    def ca_chain(request: Request) -> Response:
        try:
            chain = ctx.cas.get(request.path_params["name"]).chain
        except NotFound:
            return PlainTextResponse("no such CA\n", status_code=404)
        return Response(b"".join(c.public_bytes(PEM) for c in chain),
                        media_type="application/pem-certificate-chain")

    async def crl(request: Request) -> Response:
        name, fmt = request.path_params["name"], request.path_params["fmt"]
        try:
            der = await ctx.frontend.blocking.run(ctx.crls.current, name)
        except NotFound:
            return PlainTextResponse("no such CA\n", status_code=404)
        if fmt == "pem":
            body = b"-----BEGIN X509 CRL-----\n" + base64.encodebytes(der) + \
                b"-----END X509 CRL-----\n"
            return Response(body, media_type="application/x-pem-file")
        return Response(der, media_type="application/pkix-crl")

    async def ocsp_post(request: Request) -> Response:
        body = await request.body()
        return await _ocsp(body, request)

    async def ocsp_get(request: Request) -> Response:
        # RFC 6960 Appendix A.1: GET {url}/{url-encoding of base-64 DER request}
        raw = urllib.parse.unquote(request.path_params["encoded"])
        if len(raw) > 12000:
            return PlainTextResponse("OCSP request too large\n", status_code=414)
        try:
            body = base64.b64decode(raw, validate=False)
        except (binascii.Error, ValueError):
            return PlainTextResponse("malformed OCSP request\n", status_code=400)
        return await _ocsp(body, request)

    async def _ocsp(body: bytes, request: Request) -> Response:
        try:
            answer = await ctx.frontend.blocking.run(ctx.ocsp.answer, body)
        except MalformedInput:
            return PlainTextResponse("malformed OCSP request\n", status_code=400)
        headers = ocsp_http.caching_headers(answer, ctx.clock.now())
        if ocsp_http.not_modified(headers, request.headers.get("if-none-match")):
            return Response(status_code=304, headers=headers)
        return Response(answer.der, media_type="application/ocsp-response", headers=headers)

    gauges = StoreGauges(ctx.db, ctx.cas, ctx.clock, ctx.config.profiles)

    async def metrics_view(request: Request) -> Response:
        body = await ctx.frontend.blocking.run(metrics.scrape, gauges)
        return Response(body, media_type=CONTENT_TYPE_LATEST)

    return [
        Route("/health", health, methods=["GET"]),
        Route("/ca", ca_list, methods=["GET"]),
        Route("/ca/{name}.{fmt:str}", ca_cert, methods=["GET"]),
        Route("/ca/{name}/chain.pem", ca_chain, methods=["GET"]),
        Route("/crl/{name}.{fmt:str}", crl, methods=["GET"]),
        Route("/ocsp", ocsp_post, methods=["POST"]),
        Route("/ocsp/{encoded:path}", ocsp_get, methods=["GET"]),
        Route("/metrics", metrics_view, methods=["GET"]),
        # Bearer tokens travel in clear on plain HTTP: this one is HTTPS only.
        *label_routes(device_events.routes(ctx), "events",
                      https_url=ctx.config.public_https_url),
    ]
