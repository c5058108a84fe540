"""The frame around every HTTP request: request id, mount root, metrics, errors, log.

One plain ASGI layer does what four did (Starlette's error middleware, a mount-root fix,
a request logger, an id header), because each layer costs a closure per message:

- a request id, in ``scope["state"]["request_id"]`` and the ``x-request-id`` header;
- ``app_root_path`` reset to ``root_path``: Starlette's `Mount` keeps the *parent's* root
  there, but enroll's own links (ACME directory, CA and CRL URLs) must carry enroll's
  own mount point;
- the protocol label: a front-end's routes are wrapped by `label_routes` with the
  plugin's name, so a custom path (``/mdm/scep``) is counted under its protocol; the
  core never lists protocol paths; given ``https_url``, `label_routes` also puts each
  route the front-end did not mark plain-HTTP-safe behind `enroll.asgi.plain_http`'s
  gate (refused on ``enroll serve``'s plain-HTTP listener);
- Starlette's `HTTPException` (what its router raises for an unknown path, 404, or a
  method a route does not take, 405, because the router runs outside Starlette's
  exception middleware) is answered with its own status and a short text, not 500;
- `enroll.errors.Unavailable` that escapes a handler (a database outage in a core route
  or anywhere a front-end did not map it) is a server fault the client may retry:
  503 with ``Retry-After`` and its client-safe detail (the store logs the cause);
- any other exception that escapes a handler is logged with the request id and answered
  500 with only that id (no traceback, no detail);
- one log line per request only when ``log_requests = true``.
"""

from __future__ import annotations

import logging
import os
import secrets
import time
from collections.abc import Iterable
from typing import Any

from starlette.exceptions import HTTPException
from starlette.routing import BaseRoute

from enroll import metrics
from enroll.asgi import plain_http
from enroll.asgi.types import ASGIApp, Message, Receive, Scope, Send
from enroll.errors import Unavailable

log = logging.getLogger("enroll.http")
CORE = "core"
_INFO = "enroll.request"


def label_routes(routes: Iterable[BaseRoute], protocol: str, *,
                 https_url: str | None = None) -> list[BaseRoute]:
    """Tag each route so requests it handles are counted (and logged) under `protocol`.
    With `https_url` (the HTTPS listener's base URL), a route not marked
    `plain_http.allow_plain_http` answers its refusal on the plain-HTTP listener."""
    labelled = []
    for route in routes:
        inner: Any = getattr(route, "app", None)
        if inner is not None:
            if https_url is not None and not plain_http.plain_http_ok(route):
                inner = plain_http.HttpsOnly(inner, https_url, plain_http.refusal_of(route))
            route.app = _Labelled(inner, protocol)  # type: ignore[attr-defined]
        labelled.append(route)
    return labelled


class _Labelled:
    def __init__(self, app: ASGIApp, protocol: str) -> None:
        self.app = app
        self.protocol = protocol

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        info = scope.get(_INFO)
        if info is not None:
            info["protocol"] = self.protocol
        await self.app(scope, receive, send)


class RequestFrame:
    def __init__(self, app: ASGIApp, *, log_requests: bool = False) -> None:
        self.app = app
        self.log_requests = log_requests
        self._pid = os.getpid()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = secrets.token_hex(8)
        info: dict[str, Any] = {"protocol": CORE, "status": 500, "started": False}
        scope = dict(scope)
        scope["app_root_path"] = scope.get("root_path", "")
        scope.setdefault("state", {})["request_id"] = request_id
        scope[_INFO] = info
        started = time.perf_counter()
        id_header = (b"x-request-id", request_id.encode())

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                info["status"] = message["status"]
                info["started"] = True
                message["headers"] = [*message.get("headers", ()), id_header]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except HTTPException as exc:
            if info["started"]:
                raise
            await _http_error(send_with_id, exc)
        except Unavailable as exc:
            log.info("unavailable: %s", exc.detail, extra={"request_id": request_id})
            if info["started"]:
                raise
            await _unavailable(send_with_id, exc, request_id)
        except Exception:
            log.exception("unhandled error", extra={"request_id": request_id})
            if not info["started"]:
                await _internal_error(send_with_id, request_id)
            else:
                raise
        finally:
            elapsed = time.perf_counter() - started
            protocol, status = info["protocol"], info["status"]
            metrics.observe_request(protocol, status, elapsed)
            if self.log_requests:
                log.info("request", extra={
                    "request_id": request_id, "method": scope.get("method"),
                    "path": scope.get("path", ""), "status": status, "protocol": protocol,
                    "ms": round(elapsed * 1000, 2), "worker": self._pid})


async def _http_error(send: Send, exc: HTTPException) -> None:
    body = f"{exc.detail}\n".encode()
    headers = [(k.lower().encode("latin-1"), v.encode("latin-1"))
               for k, v in (exc.headers or {}).items()]
    await send({"type": "http.response.start", "status": exc.status_code,
                "headers": [(b"content-type", b"text/plain; charset=utf-8"),
                            (b"content-length", str(len(body)).encode()), *headers]})
    await send({"type": "http.response.body", "body": body})


RETRY_AFTER_SECONDS = 5
"""``Retry-After`` of a 503 for an `Unavailable` (a database restart takes seconds)."""


async def _unavailable(send: Send, exc: Unavailable, request_id: str) -> None:
    body = f"{exc.detail} (request {request_id})\n".encode()
    await send({"type": "http.response.start", "status": 503,
                "headers": [(b"content-type", b"text/plain; charset=utf-8"),
                            (b"content-length", str(len(body)).encode()),
                            (b"retry-after", str(RETRY_AFTER_SECONDS).encode())]})
    await send({"type": "http.response.body", "body": body})


async def _internal_error(send: Send, request_id: str) -> None:
    body = f"internal error (request {request_id})\n".encode()
    await send({"type": "http.response.start", "status": 500,
                "headers": [(b"content-type", b"text/plain; charset=utf-8"),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
