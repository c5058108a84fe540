"""Headers a protocol needs on every error answer under its paths, whoever made it.

A 404 or 405 from the router, a 413 from `BodySizeLimit` and a 500 from `RequestFrame`
are answered outside any front-end's handler; ACME needs a ``Replay-Nonce`` on those too
(RFC 8555 §6.5: the client retries with it). A front-end marks its routes with
`add_on_errors(routes, prefix, make_headers)`; `create_app` collects the marks
(`collect`) and `ErrorHeaders`, the outermost layer, adds the headers `make_headers()`
returns to every answer of status 400 or more whose path is `prefix` or below it, unless
the answer already carries a header of that name. The core never names a protocol or a
path: it only matches prefixes it was handed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

from starlette.routing import BaseRoute

from enroll.asgi.types import ASGIApp, Message, Receive, Scope, Send

MARK = "enroll_error_headers"
MakeHeaders = Callable[[], Mapping[str, str]]


def add_on_errors(routes: Iterable[BaseRoute], prefix: str,
                  make_headers: MakeHeaders) -> list[BaseRoute]:
    """Mark `routes`: error answers under `prefix` get `make_headers()`."""
    marked = list(routes)
    for route in marked:
        setattr(route, MARK, (prefix.rstrip("/"), make_headers))
    return marked


def collect(routes: Iterable[BaseRoute]) -> dict[str, MakeHeaders]:
    """prefix -> header maker, from the marks on `routes`."""
    found: dict[str, MakeHeaders] = {}
    for route in routes:
        mark = getattr(route, MARK, None)
        if mark is not None:
            found.setdefault(mark[0], mark[1])
    return found


class ErrorHeaders:
    def __init__(self, app: ASGIApp, by_prefix: Mapping[str, MakeHeaders]) -> None:
        self.app = app
        # Longest prefix first: /acme/iot's maker wins over /acme's.
        self.prefixes = sorted(by_prefix.items(), key=lambda kv: -len(kv[0]))

    def _maker(self, scope: Scope) -> MakeHeaders | None:
        path = str(scope.get("path", ""))
        root = str(scope.get("root_path", ""))
        if root and path.startswith(root):
            path = path[len(root):]
        for prefix, maker in self.prefixes:
            if path == prefix or path.startswith(prefix + "/") or not prefix:
                return maker
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        maker = self._maker(scope) if scope["type"] == "http" else None
        if maker is None:
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start" and message["status"] >= 400:
                headers = list(message.get("headers", ()))
                present = {name.lower() for name, _ in headers}
                for name, value in maker().items():
                    key = name.lower().encode("latin-1")
                    if key not in present:
                        headers.append((key, value.encode("latin-1")))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)
