"""Shared fixtures.

- ``db_url``: a fresh database per test, parametrised over a SQLite file and, when
  ``ENROLL_TEST_DATABASE_URL`` points at PostgreSQL, a fresh schema there.
- ``make_config``: a validated `Config` in a temp data dir (tests pass overrides).
- ``context`` / ``app`` / ``client``: the composed engine, its ASGI app, an httpx client
  over ASGI (no network).
- ``enroll_server``: a real ``enroll serve`` subprocess on free loopback ports.
- ``require_binary``: an interop client, skipped when missing unless
  ``ENROLL_REQUIRE_INTEROP=1`` (CI), which turns the skip into a failure.
"""

from __future__ import annotations

import copy
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from enroll import config as config_mod

PASSPHRASE = "test passphrase for CA keys"  # noqa: S105 - tests only
PG_URL = os.environ.get("ENROLL_TEST_DATABASE_URL", "")


def _backends() -> list[Any]:
    params: list[Any] = ["sqlite"]
    params.append(pytest.param("postgresql", marks=pytest.mark.postgres) if PG_URL else
                  pytest.param("postgresql", marks=[pytest.mark.postgres, pytest.mark.skip(
                      reason="ENROLL_TEST_DATABASE_URL not set")]))
    return params


@pytest.fixture(params=_backends())
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'enroll.db'}"
        return
    yield from _pg_schema_url()


def _pg_schema_url() -> Iterator[str]:
    import sqlalchemy

    from enroll.store.db import normalise_url

    schema = f"t_{secrets.token_hex(6)}"
    admin = sqlalchemy.create_engine(normalise_url(PG_URL), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
    sep = "&" if "?" in PG_URL else "?"
    try:
        yield f"{PG_URL}{sep}options=-csearch_path%3D{schema}"
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP SCHEMA "{schema}" CASCADE')
        admin.dispose()


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh PostgreSQL schema (skips when ENROLL_TEST_DATABASE_URL is not set)."""
    if not PG_URL:
        pytest.skip("ENROLL_TEST_DATABASE_URL not set")
    yield from _pg_schema_url()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'enroll.db'}"


ConfigFactory = Callable[..., config_mod.Config]


@pytest.fixture
def make_config(tmp_path: Path, db_url: str) -> ConfigFactory:
    """`make_config(profiles={...}, scep={...}, ...)`: top-level tables are replaced or
    merged into the embedded default; returns a validated Config."""

    def factory(**overrides: Any) -> config_mod.Config:
        raw = copy.deepcopy(config_mod.default_raw_config())
        raw.update({"data_dir": str(tmp_path / "data"), "database_url": db_url,
                    "ca_passphrase": PASSPHRASE, "http_port": 8080, "https_port": 8443})
        for key, value in overrides.items():
            if key == "extra_profiles":
                raw["profiles"].update(value)
            else:
                raw[key] = value
        return config_mod.from_raw(raw)

    return factory


@pytest.fixture
def context(make_config: ConfigFactory) -> Iterator[Any]:
    from enroll.context import build_context

    ctx = build_context(make_config())
    yield ctx
    ctx.db.dispose()


@pytest.fixture
def app(make_config: ConfigFactory) -> Iterator[Any]:
    from enroll.app import create_app

    application = create_app(make_config())
    yield application
    application.state.enroll.db.dispose()


@pytest.fixture
def client(app: Any) -> Iterator[Any]:
    import httpx

    transport = httpx.ASGITransport(app=app)

    class SyncOverAsync:
        """Tiny sync facade over httpx.AsyncClient + ASGITransport."""

        def __init__(self) -> None:
            import anyio

            self._anyio = anyio

        def request(self, method: str, url: str, **kw: Any) -> httpx.Response:
            async def go() -> httpx.Response:
                async with httpx.AsyncClient(transport=transport,
                                             base_url="http://testserver") as c:
                    return await c.request(method, url, **kw)

            return self._anyio.run(go)

        def get(self, url: str, **kw: Any) -> httpx.Response:
            return self.request("GET", url, **kw)

        def post(self, url: str, **kw: Any) -> httpx.Response:
            return self.request("POST", url, **kw)

        def head(self, url: str, **kw: Any) -> httpx.Response:
            return self.request("HEAD", url, **kw)

    yield SyncOverAsync()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class RunningServer:
    data_dir: Path
    process: subprocess.Popen[bytes]
    endpoints: dict[str, Any]
    log_path: Path
    extra_env: dict[str, str] | None = None

    @property
    def http_url(self) -> str:
        return str(self.endpoints["http_url"])

    @property
    def https_url(self) -> str:
        return str(self.endpoints["https_url"])

    @property
    def tls_ca(self) -> str:
        return str(self.endpoints["tls_ca_bundle"])

    def enroll(self, *args: str) -> subprocess.CompletedProcess[str]:
        """Run an `enroll` CLI command against this server's data dir."""
        return subprocess.run([sys.executable, "-m", "enroll.cli.main", "--data-dir",
                               str(self.data_dir), *args], capture_output=True, text=True,
                              timeout=120, env=_child_env(self.data_dir, self.extra_env or {}),
                              check=False)


def _child_env(data_dir: Path, extra: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("ENROLL_") and k not in
           ("SSL_CERT_FILE", "CURL_CA_BUNDLE", "REQUESTS_CA_BUNDLE")}
    env["ENROLL_DATA_DIR"] = str(data_dir)
    env.update(extra)
    return env


def start_server(data_dir: Path, extra_env: dict[str, str] | None = None,
                 args: tuple[str, ...] = (), timeout: float = 60.0) -> RunningServer:
    http_port, https_port = free_port(), free_port()
    data_dir.mkdir(parents=True, exist_ok=True)
    log_path = data_dir / "serve.log"
    endpoints_file = data_dir / "endpoints.json"
    if endpoints_file.exists():
        endpoints_file.unlink()
    env = _child_env(data_dir, extra_env or {})
    proc = subprocess.Popen(
        [sys.executable, "-m", "enroll.cli.main", "serve", "--http-port", str(http_port),
         "--https-port", str(https_port), *args],
        stdout=open(log_path, "wb"), stderr=subprocess.STDOUT, env=env)  # noqa: SIM115
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"enroll serve exited: {log_path.read_text()[-4000:]}")
        if endpoints_file.exists():
            try:
                endpoints = json.loads(endpoints_file.read_text())
                r = httpx.get(f"{endpoints['http_url']}/health", timeout=2, trust_env=False)
                if r.status_code == 200:
                    return RunningServer(data_dir, proc, endpoints, log_path, extra_env)
            except (ValueError, httpx.HTTPError):
                pass
        time.sleep(0.2)
    proc.kill()
    raise RuntimeError(f"enroll serve did not start: {log_path.read_text()[-4000:]}")


def stop_server(server: RunningServer) -> None:
    server.process.terminate()
    try:
        server.process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        server.process.kill()
        server.process.wait(timeout=5)


@pytest.fixture
def enroll_server(tmp_path: Path) -> Iterator[RunningServer]:
    """A real `enroll serve` on free loopback ports with the embedded default."""
    server = start_server(tmp_path / "data")
    yield server
    stop_server(server)


@pytest.fixture
def server_factory() -> Iterator[Callable[..., RunningServer]]:
    """`server_factory(data_dir, extra_env={...}, args=(...))` starts `enroll serve`;
    every server started is stopped at teardown."""
    started: list[RunningServer] = []

    def factory(data_dir: Path, extra_env: dict[str, str] | None = None,
                args: tuple[str, ...] = ()) -> RunningServer:
        server = start_server(data_dir, extra_env, args)
        started.append(server)
        return server

    yield factory
    for server in started:
        stop_server(server)


def require_binary(name: str) -> str:
    path = shutil.which(name)
    if path:
        return path
    if os.environ.get("ENROLL_REQUIRE_INTEROP") == "1":
        pytest.fail(f"interop client {name!r} is required (ENROLL_REQUIRE_INTEROP=1) "
                    "but not installed")
    pytest.skip(f"interop client {name!r} not installed")
