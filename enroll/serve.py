"""`enroll serve`: an HTTP and an HTTPS listener over one app, in one or more workers.

Sockets are bound once in the parent (so port 0 works and every worker shares them);
each worker builds its own app (no migrations, the parent ran them) and runs two uvicorn
servers on the inherited sockets. Nothing a second worker needs lives in one worker's
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

from enroll import logs
from enroll.asgi import tls_client_cert
from enroll.config import Config, from_raw

log = logging.getLogger("enroll.serve")


@dataclass(frozen=True)
class Listeners:
    http: socket.socket
    https: socket.socket


def bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP explicitly: asyncio only sets TCP_NODELAY on accepted sockets whose
    # proto is IPPROTO_TCP; with proto 0, Nagle + delayed ACK add ~40 ms per response.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.set_inheritable(True)
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
    common: dict[str, Any] = {"lifespan": "off", "log_config": None, "access_log": False,
                              "log_level": log_level, "timeout_keep_alive": 30,
                              "server_header": False}
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
        asyncio.run(_serve(app, listeners, tls, config.log_level))
    finally:
        stop.set()
        ctx.db.dispose()


def _worker_entry(config: Config, http_fd: socket.socket, https_fd: socket.socket,
                  tls: TLSFiles) -> None:
    run_worker(config, Listeners(http_fd, https_fd), tls)


def run(config: Config, listeners: Listeners, tls: TLSFiles) -> None:
    """Run `config.workers` workers until SIGINT/SIGTERM."""
    if config.workers == 1:
        run_worker(config, listeners, tls)
        return
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_worker_entry, args=(config, listeners.http, listeners.https,
                                                      tls), daemon=False)
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
