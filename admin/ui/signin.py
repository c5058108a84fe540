"""Placeholder sign-in pages (the console helper replaces this module)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from . import web


async def home(request: Request) -> Response:
    await web.principal(request)
    return web.render(request, "error.html", message="home")


async def login(request: Request) -> Response:
    return web.render(request, "error.html", message="login")


async def logout(request: Request) -> Response:
    return web.redirect(request, "ui:login")


def routes() -> list[BaseRoute]:
    return [Route("/", home, name="ui:home"), Route("/login", login, name="ui:login"),
            Route("/logout", logout, methods=["POST"], name="ui:logout")]
