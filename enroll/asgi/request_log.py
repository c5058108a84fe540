"""One structured log line and the latency metric per HTTP request, with a request id."""

from __future__ import annotations

import logging
import os
import secrets
import time

from enroll import metrics
from enroll.asgi.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger("enroll.http")
_PREFIXES = (("/scep", "scep"), ("/.well-known/est", "est"), ("/acme", "acme"))


def protocol_of(path: str) -> str:
    for prefix, name in _PREFIXES:
        if path.startswith(prefix):
            return name
    return "core"


class RequestLog:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = secrets.token_hex(8)
        scope.setdefault("state", {})["request_id"] = request_id
        started = time.perf_counter()
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"],
                                      (b"x-request-id", request_id.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            elapsed = time.perf_counter() - started
            path = scope.get("path", "")
            protocol = protocol_of(path[len(scope.get("root_path", "")):]
                                   if path.startswith(scope.get("root_path", "")) else path)
            metrics.REQUESTS.labels(protocol, f"{status // 100}xx").inc()
            metrics.LATENCY.labels(protocol).observe(elapsed)
            log.info("request", extra={"request_id": request_id, "method": scope.get("method"),
                                       "path": path, "status": status, "protocol": protocol,
                                       "ms": round(elapsed * 1000, 2), "worker": os.getpid()})
