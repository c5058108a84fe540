"""`enroll.asgi.plain_http`: plugin routes are HTTPS-only on `enroll serve`'s plain-HTTP
listener unless marked, with the plugin's own refusal or the default 403; the core's
routes and an embedded app (no listener extension) are not gated."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import anyio
import httpx
from harness import with_transport
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from enroll import config as config_mod
from enroll.app import create_app
from enroll.asgi.plain_http import allow_plain_http, refuse_plain_http
from enroll.door import FrontEnd
from enroll.hookspecs import hookimpl

REACHED: list[str] = []


class Doors:
    @hookimpl
    def enroll_routes(self, frontend: FrontEnd) -> list[Route]:
        def handler(request: Any) -> Any:
            REACHED.append(request.url.path)
            return PlainTextResponse("ok")

        return [
            *allow_plain_http([Route("/open", handler)]),
            Route("/secret", handler, methods=["GET", "POST"]),
            *refuse_plain_http([Route("/own", handler)],
                               lambda url: PlainTextResponse(f"go to {url}", 421)),
        ]


def _get(app: Any, path: str, method: str = "GET") -> httpx.Response:
    async def go() -> httpx.Response:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                     base_url="http://testserver") as client:
            return await client.request(method, path)

    return anyio.run(go)


def test_routes_are_gated_on_the_plain_listener_only(
        make_config: Callable[..., config_mod.Config]) -> None:
    app = create_app(make_config(public_https_url="https://pki.example:8443"),
                     extra_plugins=[Doors()])
    plain = with_transport(app, None, None, tls=False)
    tls = with_transport(app, None, None, tls=True)
    try:
        REACHED.clear()
        assert _get(plain, "/open").text == "ok"
        r = _get(plain, "/secret?x=1", "POST")
        assert r.status_code == 403
        assert r.text == "served over HTTPS only: https://pki.example:8443/secret?x=1\n"
        r = _get(plain, "/own")
        assert (r.status_code, r.text) == (421, "go to https://pki.example:8443/own")
        assert REACHED == ["/open"]  # nothing behind a refusal ran
        for path in ("/secret", "/own"):
            assert _get(tls, path).text == "ok"
            assert _get(app, path).text == "ok"  # embedded: no listener extension
        # The core's routes are not gated; an unknown path is still 404.
        assert _get(plain, "/ca/issuing.pem").status_code == 200
        assert _get(plain, "/health").status_code == 200
        assert _get(plain, "/nothing").status_code == 404
    finally:
        app.state.enroll.db.dispose()
