"""`enroll serve`: an HTTP and an HTTPS listener over one app, in one or more workers.

The parent binds both ports first (so port 0 works and the URLs are known before any
worker starts). With one worker it listens on those sockets itself. With several, every
worker binds its *own* listening sockets to the same ports with ``SO_REUSEPORT``, so the
kernel spreads new connections evenly over the workers; one shared listening socket
lets whichever event loop wakes first accept a whole burst of connections, which is why
a second worker used to add nothing. The parent's sockets stay bound but never listen
(they only hold the ports), so the kernel hands them no connections.

Each worker builds its own app (no migrations, the parent ran them) and runs two uvicorn
servers on uvloop with httptools, plus the periodic jobs (`enroll.scheduler`: CRL
refresh, recovery). Nothing a second worker needs lives in one worker's memory: all
state is in the database.

The parent supervises the workers: one that dies (killed, out of memory, crashed) is
logged with its exit code or signal and started again, after a back-off that doubles
for a worker that keeps dying soon after its start (`Supervisor`). SIGTERM/SIGINT stop
the restarts first, then every worker.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import multiprocessing.connection
import signal
import socket
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import uvicorn
import uvloop

from enroll import logs
from enroll.asgi import client_ca_names, tls_client_cert
from enroll.config import Config, from_raw

log = logging.getLogger("enroll.serve")
BACKLOG = 2048
STOP_TIMEOUT = 30.0
"""Seconds a worker has to stop after SIGTERM before the parent kills it."""


@dataclass(frozen=True)
class Listeners:
    http: socket.socket
    https: socket.socket


def bind(host: str, port: int, *, listen: bool = True) -> socket.socket:
    """A TCP socket bound to (host, port) with ``SO_REUSEPORT`` (so workers can bind
    their own to the same port); listening unless `listen` is False."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP explicitly: asyncio only sets TCP_NODELAY on accepted sockets whose
    # proto is IPPROTO_TCP; with proto 0, Nagle + delayed ACK add ~40 ms per response.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    if listen:
        sock.listen(BACKLOG)
    return sock


def with_bound_ports(config: Config, listeners: Listeners) -> Config:
    """Re-derive URLs when a port was 0 (the OS picked it)."""
    http_port = listeners.http.getsockname()[1]
    https_port = listeners.https.getsockname()[1]
    if (http_port, https_port) == (config.http_port, config.https_port):
        return config
    raw = dict(config.raw)
    raw["http_port"], raw["https_port"] = http_port, https_port
    if config.public_http_url.endswith(f":{config.http_port}"):
        raw.pop("public_http_url", None)
    if config.public_https_url.endswith(f":{config.https_port}"):
        raw.pop("public_https_url", None)
    return from_raw(raw, source=config.source)


@dataclass(frozen=True)
class TLSFiles:
    cert: Path
    key: Path
    client_cas: Path


class _HTTPSConfig(uvicorn.Config):
    """uvicorn's config whose SSL context also names the client CAs it accepts in the
    CertificateRequest (`enroll.asgi.client_ca_names`), so a device with several
    identities presents the one this listener trusts."""

    def load(self) -> None:
        super().load()
        if self.ssl is not None and self.ssl_ca_certs:
            client_ca_names.advertise_file(self.ssl, Path(self.ssl_ca_certs).read_bytes())


def uvicorn_configs(app: Any, tls: TLSFiles, log_level: str) -> tuple[uvicorn.Config,
                                                                        uvicorn.Config]:
    # proxy_headers off: uvicorn would otherwise rewrite the client address from
    # X-Forwarded-For sent by loopback peers; enroll's own `trusted_proxies` decides.
    common: dict[str, Any] = {"lifespan": "off", "log_config": None, "access_log": False,
                              "log_level": log_level, "timeout_keep_alive": 30,
                              "server_header": False, "proxy_headers": False}
    # The TLS peer certificate and the real socket peer reach the app as ASGI scope
    # extensions (enroll/asgi/tls_client_cert.py); EST client-cert auth needs them.
    common["http"] = tls_client_cert.protocol_class()
    http = uvicorn.Config(app, **common)
    https = _HTTPSConfig(app, ssl_certfile=str(tls.cert), ssl_keyfile=str(tls.key),
                           ssl_ca_certs=str(tls.client_cas), ssl_cert_reqs=ssl.CERT_OPTIONAL,
                           **common)
    return http, https


async def _serve(app: Any, listeners: Listeners, tls: TLSFiles, log_level: str) -> None:
    http_cfg, https_cfg = uvicorn_configs(app, tls, log_level)
    servers = [uvicorn.Server(http_cfg), uvicorn.Server(https_cfg)]
    # Each server captures SIGINT/SIGTERM while it runs; when one stops, stop the other.
    tasks = [asyncio.create_task(servers[0].serve(sockets=[listeners.http])),
             asyncio.create_task(servers[1].serve(sockets=[listeners.https]))]
    await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    for server in servers:
        server.should_exit = True
    await asyncio.gather(*tasks, return_exceptions=True)


def run_worker(config: Config, listeners: Listeners, tls: TLSFiles,
               run_migrations: bool = False) -> None:
    from enroll.app import create_app
    from enroll.scheduler import Scheduler, jobs_for, lease_taker

    logs.configure(config.log_format, config.log_level)
    app = create_app(config, run_migrations=run_migrations)
    ctx = app.state.enroll
    scheduler = Scheduler(jobs_for(ctx), lease=lease_taker(ctx))
    scheduler.start()
    try:
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            runner.run(_serve(app, listeners, tls, config.log_level))
    finally:
        scheduler.stop()
        ctx.frontend.blocking.close()
        ctx.db.dispose()


def _worker_entry(config: Config, host: str, http_port: int, https_port: int,
                  tls: TLSFiles) -> None:
    run_worker(config, Listeners(bind(host, http_port), bind(host, https_port)), tls)


def run(config: Config, listeners: Listeners, tls: TLSFiles) -> None:
    """Run `config.workers` workers until SIGINT/SIGTERM. `listeners` come from
    ``bind(..., listen=False)``: bound, holding the ports, not yet listening."""
    if config.workers == 1:
        listeners.http.listen(BACKLOG)
        listeners.https.listen(BACKLOG)
        run_worker(config, listeners, tls)
        return
    _share_metrics(config)
    mp = multiprocessing.get_context("spawn")
    host = listeners.http.getsockname()[0]
    ports = (listeners.http.getsockname()[1], listeners.https.getsockname()[1])

    def start(_slot: int) -> Any:
        proc = mp.Process(target=_worker_entry, args=(config, host, *ports, tls),
                          daemon=False)
        proc.start()
        return proc

    supervisor = Supervisor(config.workers, start, on_exit=_worker_metrics_done)
    signal.signal(signal.SIGINT, supervisor.stop)
    signal.signal(signal.SIGTERM, supervisor.stop)
    supervisor.run()


def exit_reason(exitcode: int | None) -> str:
    """How a worker ended, for the log: ``exit code 3`` or ``signal SIGKILL``."""
    if exitcode is None:
        return "unknown"
    if exitcode < 0:
        try:
            return f"signal {signal.Signals(-exitcode).name}"
        except ValueError:
            return f"signal {-exitcode}"
    return f"exit code {exitcode}"


class Supervisor:
    """Keeps `count` worker processes running until `stop()`.

    `start(slot)` starts a worker (a `multiprocessing.Process`-like object with
    ``sentinel``, ``exitcode``, ``pid``, ``is_alive()``, ``terminate()``, ``join()``).
    A worker that dies is restarted after `backoff` seconds, doubled (up to
    `max_backoff`) each time it dies again within `stable` seconds of its start, reset
    once it has run that long."""

    def __init__(self, count: int, start: Callable[[int], Any], *, backoff: float = 0.5,
                 max_backoff: float = 30.0, stable: float = 60.0,
                 on_exit: Callable[[int | None], None] | None = None) -> None:
        self.count = count
        self._start = start
        self._on_exit = on_exit
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.stable = stable
        self.procs: dict[int, Any] = {}
        self.restarts = 0
        self._started_at: dict[int, float] = {}
        self._delay: dict[int, float] = {}
        self._stopping = threading.Event()

    def stop(self, *_: Any) -> None:
        """Stop restarting, then terminate every worker (SIGTERM handler)."""
        self._stopping.set()
        for proc in list(self.procs.values()):
            if proc.is_alive():
                proc.terminate()

    def _spawn(self, slot: int) -> None:
        self.procs[slot] = self._start(slot)
        self._started_at[slot] = time.monotonic()

    def run(self) -> None:
        for slot in range(self.count):
            self._spawn(slot)
        due: dict[int, float] = {}  # slot -> when its restart is due
        while not self._stopping.is_set():
            timeout = max(0.0, min(due.values()) - time.monotonic()) if due else 1.0
            alive = {p.sentinel: slot for slot, p in self.procs.items() if slot not in due}
            ready = multiprocessing.connection.wait(list(alive), timeout=min(timeout, 1.0))
            for sentinel in ready:
                slot = alive[sentinel]
                proc = self.procs[slot]
                proc.join()
                self._exited(proc)
                if self._stopping.is_set():
                    break
                lived = time.monotonic() - self._started_at[slot]
                delay = self.backoff if lived >= self.stable else min(
                    self.max_backoff, self._delay.get(slot, self.backoff / 2) * 2)
                self._delay[slot] = delay
                log.error("worker %d (pid %s) died (%s) after %.1fs; restarting in %.1fs",
                          slot, proc.pid, exit_reason(proc.exitcode), lived, delay)
                due[slot] = time.monotonic() + delay
            now = time.monotonic()
            for slot in [s for s, when in due.items() if when <= now]:
                del due[slot]
                if self._stopping.is_set():
                    break
                self._spawn(slot)
                self.restarts += 1
                log.warning("worker %d restarted (pid %s)", slot, self.procs[slot].pid)
        for proc in self.procs.values():
            if proc.is_alive():
                proc.terminate()
        for proc in self.procs.values():
            proc.join(STOP_TIMEOUT)
            if proc.is_alive():  # stuck in shutdown: do not hang the parent
                log.error("worker (pid %s) did not stop in %ss; killing it", proc.pid,
                          STOP_TIMEOUT)
                proc.kill()
                proc.join()
            self._exited(proc)

    def _exited(self, proc: Any) -> None:
        if self._on_exit is not None:
            self._on_exit(proc.pid)


def _share_metrics(config: Config) -> None:
    """Workers write their counters to one directory, so a scrape of any worker sums
    them all (enroll.metrics, prometheus-client multiprocess mode)."""
    from enroll import metrics

    metrics.prepare_multiprocess(config.data_dir / "metrics")


def _worker_metrics_done(pid: int | None) -> None:
    from enroll import metrics

    if pid is not None:
        metrics.worker_exited(pid)
