"""`enroll serve`: an HTTP and an HTTPS listener over one app, in one or more workers.

The parent binds both ports first (so port 0 works and the URLs are known before any
worker starts). With one worker it listens on those sockets itself. With several, every
worker binds its *own* listening sockets to the same ports with ``SO_REUSEPORT``, so the
kernel spreads new connections evenly over the workers; one shared listening socket
lets whichever event loop wakes first accept a whole burst of connections, which is why
a second worker used to add nothing. The parent's sockets stay bound but never listen
(they only hold the ports), so the kernel hands them no connections.

Each worker builds its own app (no migrations, the parent ran them) and runs two uvicorn
servers on uvloop with httptools. Nothing a second worker needs lives in one worker's
memory: all state is in the database.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import signal
import socket
import ssl
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import uvicorn
import uvloop

from enroll import logs
from enroll.asgi import tls_client_cert
from enroll.config import Config, from_raw

log = logging.getLogger("enroll.serve")
BACKLOG = 2048


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
    https = uvicorn.Config(app, ssl_certfile=str(tls.cert), ssl_keyfile=str(tls.key),
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


def _crl_timer(ctx: Any, interval: float, stop: threading.Event) -> None:
    while not stop.wait(interval):
        try:
            ctx.crls.refresh_due()
        except Exception:
            log.exception("scheduled CRL refresh failed")


def run_worker(config: Config, listeners: Listeners, tls: TLSFiles,
               run_migrations: bool = False) -> None:
    from enroll.app import create_app

    logs.configure(config.log_format, config.log_level)
    app = create_app(config, run_migrations=run_migrations)
    ctx = app.state.enroll
    stop = threading.Event()
    interval = max(10.0, min(ca.crl_refresh for ca in config.cas.values()) / 2)
    timer = threading.Thread(target=_crl_timer, args=(ctx, interval, stop), daemon=True)
    timer.start()
    try:
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            runner.run(_serve(app, listeners, tls, config.log_level))
    finally:
        stop.set()
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
    ctx = multiprocessing.get_context("spawn")
    host = listeners.http.getsockname()[0]
    ports = (listeners.http.getsockname()[1], listeners.https.getsockname()[1])
    procs = [ctx.Process(target=_worker_entry, args=(config, host, *ports, tls), daemon=False)
             for _ in range(config.workers)]
    for p in procs:
        p.start()
    stopping = threading.Event()

    def _stop(*_: Any) -> None:
        stopping.set()
        for p in procs:
            if p.is_alive():
                p.terminate()

    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGTERM, _stop)
    for p in procs:
        p.join()
        _worker_metrics_done(p.pid)


def _share_metrics(config: Config) -> None:
    """Workers write their counters to one directory, so a scrape of any worker sums
    them all (enroll.metrics, prometheus-client multiprocess mode)."""
    from enroll import metrics

    metrics.prepare_multiprocess(config.data_dir / "metrics")


def _worker_metrics_done(pid: int | None) -> None:
    from enroll import metrics

    if pid is not None:
        metrics.worker_exited(pid)
