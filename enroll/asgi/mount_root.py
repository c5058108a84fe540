"""Make ``request.base_url`` and ``url_for`` include the prefix enroll is mounted under.

Starlette's `Mount` keeps the *parent's* root in ``app_root_path`` so a parent's
``url_for`` works; for enroll's own links (ACME directory, CA and CRL URLs) the base must
be enroll's own mount point, so this resets ``app_root_path`` to ``root_path``.
"""

from __future__ import annotations

from enroll.asgi.types import ASGIApp, Receive, Scope, Send


class MountRoot:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            scope = dict(scope)
            scope["app_root_path"] = scope.get("root_path", "")
        await self.app(scope, receive, send)
