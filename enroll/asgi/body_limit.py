"""Refuse request bodies over a limit before anything parses them (413).

A declared ``Content-Length`` over the limit is refused before the app runs. A body
without one (chunked) is counted as the app reads it: past the limit the read raises,
and whatever the app does with that (a handler may catch it and answer 500, 400 or a
protocol's own error document) the client gets 413, because once the limit is crossed
this layer answers in place of the app. Only when the app had already started its
answer before reading on (never the case for enroll's handlers) is the connection left
to the server to close.
"""

from __future__ import annotations

from enroll.asgi.types import ASGIApp, Message, Receive, Scope, Send


class BodySizeLimit:
    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    too_big = int(value) > self.max_bytes
                except ValueError:
                    too_big = True
                if too_big:
                    await _refuse(send)
                    return
        seen = 0
        exceeded = False
        started = False

        async def limited_receive() -> Message:
            nonlocal seen, exceeded
            if exceeded:
                raise TooLarge
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    exceeded = True
                    raise TooLarge
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if exceeded and not started:
                return  # the 413 goes out instead, below
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except Exception:
            if not exceeded:
                raise
            # What the app raised follows from the refused read: the answer is 413.
        if exceeded and not started:
            await _refuse(send)


class TooLarge(Exception):
    """Raised by the wrapped ``receive`` once the body passes the limit."""


async def _refuse(send: Send) -> None:
    body = b"request body too large\n"
    await send({"type": "http.response.start", "status": 413,
                "headers": [(b"content-type", b"text/plain"),
                            (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})
