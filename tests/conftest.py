"""Shared fixtures.

- ``db_url``: a fresh database per test, parametrised over a SQLite file and, when
  ``ENROLL_TEST_DATABASE_URL`` points at PostgreSQL, a fresh schema there.
- ``make_config``: a validated `Config` in a temp data dir (tests pass overrides), made
  by `enroll.testing.test_config` on the parametrised database.
- ``context`` / ``app`` / ``client``: the composed engine, its ASGI app, an httpx client
  over ASGI (no network).
- ``harness_factory``: a `harness.Harness` (app, context, requests in-process) per call,
  from `make_config`; the SCEP, EST and ACME suites' fixtures are thin calls to it.
- ``enroll_server``: a real ``enroll serve`` subprocess on free loopback ports.
- ``local_dns`` / ``responder``: the DNS and http-01 responder on loopback that the ACME
  validator of a test app is pointed at (ACME, cross-door and fuzz suites).
- Helpers tests import (``harness.require_binary`` for interop clients, the protocol
  conveniences) live in tests/harness.py, which has a unique module name.
"""

from __future__ import annotations

import copy
import os
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from harness import Harness, LocalDns, RunningServer, pg_schema_url, start_server, stop_server

from enroll import config as config_mod
from enroll.testing import test_config
from enroll.testing.acme_client import Http01Responder

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
    yield from pg_schema_url()


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh PostgreSQL schema (skips when ENROLL_TEST_DATABASE_URL is not set)."""
    if not PG_URL:
        pytest.skip("ENROLL_TEST_DATABASE_URL not set")
    yield from pg_schema_url()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'enroll.db'}"


@pytest.fixture
def local_dns() -> Iterator[LocalDns]:
    """A DNS on loopback for the ACME validator (every A query is 127.0.0.1)."""
    server = LocalDns()
    yield server
    server.close()


@pytest.fixture
async def responder() -> AsyncIterator[Http01Responder]:
    """Answers http-01 on loopback; point the validator's ``http01_port`` at its port."""
    http01 = Http01Responder()
    await http01.start()
    yield http01
    await http01.close()


ConfigFactory = Callable[..., config_mod.Config]


@pytest.fixture
def make_config(tmp_path: Path, db_url: str) -> ConfigFactory:
    """`make_config(profiles={...}, scep={...}, extra_profiles={...}, ...)`: top-level
    tables replace the embedded default's, `extra_profiles` are added to its profiles;
    returns a validated Config."""

    def factory(*, extra_profiles: dict[str, Any] | None = None,
                **overrides: Any) -> config_mod.Config:
        if extra_profiles:
            profiles = overrides.get("profiles") or config_mod.default_raw_config()["profiles"]
            overrides["profiles"] = {**copy.deepcopy(profiles), **extra_profiles}
        return test_config(tmp_path / "data", db_url,
                           **{"http_port": 8080, "https_port": 8443, **overrides})

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
def client(app: Any) -> Iterator[Harness]:
    """Requests through `app` in-process (the same client as the protocol suites')."""
    h = Harness(app)
    yield h
    h.close()


@pytest.fixture
def harness_factory(make_config: ConfigFactory) -> Iterator[Callable[..., Harness]]:
    """`harness_factory(clock=..., base_url=..., listener=..., extra_plugins=...,
    **make_config_overrides)`:
    the app built from `make_config(...)` in a `Harness`; every one is closed at
    teardown. Protocol suites pass their section (`harness.scep_section(...)` …)."""
    from enroll.app import create_app

    made: list[Harness] = []

    def factory(*, clock: Any = None, base_url: str = "http://testserver",
                listener: bool = False, extra_plugins: tuple[object, ...] = (),
                **overrides: Any) -> Harness:
        h = Harness(create_app(make_config(**overrides), clock=clock,
                               extra_plugins=extra_plugins), base_url, listener=listener)
        made.append(h)
        return h

    yield factory
    for h in made:
        h.close()


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
