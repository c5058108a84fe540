"""A loopback TCP proxy that injects faults between enroll and its PostgreSQL.

It runs its own asyncio loop in a daemon thread, so synchronous tests and bench/faults.py
drive it with plain calls:

- ``latency = 0.05``: every chunk is delivered 50 ms after it arrived, in each direction
  (a delay, not a throughput cap: chunks in flight overlap);
- ``cut()``: every open connection is reset (both sides see the connection die);
- ``refuse(seconds)``: for that long, new connections are reset as soon as accepted
  (the client sees its connection attempt fail at once).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import threading
import time
from collections.abc import Coroutine
from typing import Any


class FaultProxy:
    def __init__(self, upstream_port: int, upstream_host: str = "127.0.0.1") -> None:
        self.upstream = (upstream_host, upstream_port)
        self.latency = 0.0
        self.accepted = 0
        self.refused = 0
        self._refuse_until = 0.0
        self._writers: set[asyncio.StreamWriter] = set()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True,
                                        name="fault-proxy")
        self._thread.start()
        self._server: asyncio.Server = self._call(asyncio.start_server(
            self._handle, "127.0.0.1", 0))
        self.port: int = self._server.sockets[0].getsockname()[1]

    def _call(self, coro: Coroutine[Any, Any, Any]) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout=30)

    # -- faults ---------------------------------------------------------------------------

    def cut(self) -> int:
        """Reset every open connection; returns how many there were."""
        async def go() -> int:
            writers = list(self._writers)
            for writer in writers:
                _reset(writer)
            return len(writers)
        return int(self._call(go()))

    def refuse(self, seconds: float) -> None:
        """Reset new connections for `seconds` from now."""
        self._refuse_until = time.monotonic() + seconds

    @property
    def open_connections(self) -> int:
        return len(self._writers) // 2

    def close(self) -> None:
        async def go() -> None:
            self._server.close()
            for writer in list(self._writers):
                _reset(writer)
            # Finish every connection's tasks here: a coroutine left pending on a closed
            # loop raises when collected, in whichever later test is running then.
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await self._server.wait_closed()
        with contextlib.suppress(Exception):  # closing at teardown
            self._call(go())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
        self._loop.close()

    # -- plumbing -------------------------------------------------------------------------

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if time.monotonic() < self._refuse_until:
            self.refused += 1
            _reset(writer)
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        except OSError:
            self.refused += 1
            _reset(writer)
            return
        self.accepted += 1
        self._writers.update((writer, up_writer))
        try:
            await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))
        finally:
            for w in (writer, up_writer):
                self._writers.discard(w)
                _reset(w)

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Copy one direction, each chunk held until `latency` after it arrived."""
        queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

        async def deliver() -> None:
            while True:
                due, data = await queue.get()
                if not data:
                    return
                delay = due - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                writer.write(data)
                await writer.drain()

        sender = asyncio.ensure_future(deliver())
        try:
            while True:
                data = await reader.read(65536)
                queue.put_nowait((time.monotonic() + self.latency, data))
                if not data:
                    break
            await sender
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            sender.cancel()
            _reset(writer)


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with an RST (SO_LINGER 0), as a cut network or a refusing host shows."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    with contextlib.suppress(Exception):  # already closed
        writer.transport.abort()
