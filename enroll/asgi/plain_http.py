"""Which front-end routes ``enroll serve``'s plain-HTTP listener serves; a refusal for
the others.

Every route a plugin contributes is HTTPS-only unless the plugin marks it with
`allow_plain_http` (SCEP does: its messages carry their own protection, and devices
speak it over HTTP). On the plain-HTTP listener an HTTPS-only route answers a refusal
that names the same URL on the HTTPS listener: the front-end's own, set with
`refuse_plain_http` (ACME answers a problem document), or `default_refusal`, 403 with
a short text. Nothing behind the refusal runs: no body is read, nothing is stored.
The core's own routes (CA certificates, CRLs, OCSP, health, metrics) are not gated.

"The plain-HTTP listener" is a connection ``enroll serve`` accepted without TLS: the
``enroll.transport`` scope extension (`enroll.asgi.tls_client_cert`) without the
``tls`` one. An app embedded under another ASGI server gets no such extension and
serves whatever scope it is given: TLS is the embedder's listener's business (a
rewritten ``scope["scheme"]`` is not evidence either way, so it is not read).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from starlette.routing import BaseRoute

from enroll.asgi.types import ASGIApp, Receive, Scope, Send

PLAIN_HTTP_OK = "enroll_plain_http"
REFUSAL = "enroll_plain_http_refusal"
Refusal = Callable[[str], ASGIApp]
"""The HTTPS URL of the refused request -> an ASGI app that answers the refusal."""


def allow_plain_http(routes: Iterable[BaseRoute]) -> list[BaseRoute]:
    """Mark `routes` as served on the plain-HTTP listener too."""
    marked = list(routes)
    for route in marked:
        setattr(route, PLAIN_HTTP_OK, True)
    return marked


def refuse_plain_http(routes: Iterable[BaseRoute], refusal: Refusal) -> list[BaseRoute]:
    """Mark `routes` HTTPS-only (the default) with the front-end's own refusal."""
    marked = list(routes)
    for route in marked:
        setattr(route, REFUSAL, refusal)
    return marked


def plain_http_ok(route: BaseRoute) -> bool:
    return getattr(route, PLAIN_HTTP_OK, False) is True


def refusal_of(route: BaseRoute) -> Refusal:
    refusal: Refusal | None = getattr(route, REFUSAL, None)
    return refusal if refusal is not None else default_refusal


def on_plain_listener(scope: Mapping[str, Any]) -> bool:
    """Did ``enroll serve`` accept this request on its plain-HTTP listener?"""
    extensions = scope.get("extensions")
    if not isinstance(extensions, Mapping) or "enroll.transport" not in extensions:
        return False
    return not extensions.get("tls")


def https_url(https_base: str, scope: Mapping[str, Any]) -> str:
    """The URL of this request on the HTTPS listener (``public_https_url``)."""
    path = str(scope.get("root_path", "")) + _route_path(scope)
    query = scope.get("query_string", b"")
    suffix = "?" + query.decode("latin-1") if query else ""
    return f"{https_base}{path}{suffix}"[:2048]


def _route_path(scope: Mapping[str, Any]) -> str:
    path = str(scope.get("path", ""))
    root = str(scope.get("root_path", ""))
    return path[len(root):] if root and path.startswith(root) else path


def default_refusal(url: str) -> ASGIApp:
    body = f"served over HTTPS only: {url}\n".encode()

    async def answer(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 403,
                    "headers": [(b"content-type", b"text/plain; charset=utf-8"),
                                (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})

    return answer


class HttpsOnly:
    """One route's app behind the gate: on the plain-HTTP listener, the refusal."""

    def __init__(self, app: ASGIApp, https_base: str, refusal: Refusal) -> None:
        self.app = app
        self.https_base = https_base
        self.refusal = refusal

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and on_plain_listener(scope):
            await self.refusal(https_url(self.https_base, scope))(scope, receive, send)
            return
        await self.app(scope, receive, send)
