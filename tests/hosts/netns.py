"""Test hosts in network namespaces this test run creates, and a TCP forwarder.

`Host(index)` is a network namespace joined to the test's own namespace by a veth pair
on a private /30 (``10.231.<n>.1`` on our side, ``10.231.<n>.2`` inside). `cut()` takes
our end of the link down, so the host can reach nothing and nothing reaches it, as when
a machine drops off the network; `restore()` brings it back. Everything is removed on
`close()`.

`Forwarder` accepts on an address of ours and copies bytes to a loopback service (the
machine's PostgreSQL listens on 127.0.0.1 only, which a namespace cannot reach).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import threading


def ip(*args: str, netns: str | None = None) -> None:
    cmd = ["ip", *args] if netns is None else ["ip", "netns", "exec", netns, "ip", *args]
    subprocess.run(cmd, check=True, capture_output=True, timeout=10)


class Host:
    def __init__(self, index: int) -> None:
        tag = f"{os.getpid() % 100000}{index}"
        self.netns = f"enr{tag}"
        self.link = f"ve{tag}"
        net = 40 + (os.getpid() * 2 + index) % 200
        self.outer = f"10.231.{net}.1"
        self.address = f"10.231.{net}.2"
        ip("netns", "add", self.netns)
        try:
            ip("link", "add", self.link, "type", "veth", "peer", "name", f"{self.link}i")
            ip("link", "set", f"{self.link}i", "netns", self.netns)
            ip("addr", "add", f"{self.outer}/30", "dev", self.link)
            ip("link", "set", self.link, "up")
            ip("addr", "add", f"{self.address}/30", "dev", f"{self.link}i", netns=self.netns)
            ip("link", "set", f"{self.link}i", "up", netns=self.netns)
            ip("link", "set", "lo", "up", netns=self.netns)
            ip("route", "add", "default", "via", self.outer, netns=self.netns)
        except BaseException:
            self.close()
            raise

    def command(self, *argv: str) -> list[str]:
        """`argv` run inside this host."""
        return ["ip", "netns", "exec", self.netns, *argv]

    def cut(self) -> None:
        ip("link", "set", self.link, "down")

    def restore(self) -> None:
        ip("link", "set", self.link, "up")
        with contextlib.suppress(subprocess.CalledProcessError):  # back with the link
            ip("addr", "add", f"{self.outer}/30", "dev", self.link)

    def close(self) -> None:
        subprocess.run(["ip", "link", "del", self.link], capture_output=True, timeout=10,
                       check=False)
        subprocess.run(["ip", "netns", "del", self.netns], capture_output=True, timeout=10,
                       check=False)


class Forwarder:
    """Listen on (host, port) in a thread of its own; copy each connection to `target`."""

    def __init__(self, listen: list[str], target: tuple[str, int]) -> None:
        self._listen, self._target = listen, target
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._servers: list[asyncio.AbstractServer] = []
        self.port = 0
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("forwarder did not start")

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self._start())
        self._ready.set()
        self._loop.run_forever()

    async def _start(self) -> None:
        import socket

        probe = socket.socket()
        probe.bind((self._listen[0], 0))
        self.port = probe.getsockname()[1]
        probe.close()
        for host in self._listen:
            self._servers.append(await asyncio.start_server(self._copy, host, self.port))

    async def _copy(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self._target)
        except OSError:
            writer.close()
            return

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            except (OSError, asyncio.CancelledError):
                pass
            finally:
                dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    def close(self) -> None:
        async def stop() -> None:
            for server in self._servers:
                server.close()
            others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in others:
                task.cancel()
            await asyncio.gather(*others, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(stop(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()
