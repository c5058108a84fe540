"""Fixtures for the core suite: test vectors, store counts, and opening an AppContext
on the data directory of a running `enroll serve`."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from harness import child_env

from enroll import config as config_mod
from enroll.context import AppContext, build_context
from enroll.embedded import init_data_dir
from enroll.plugin_loader import build_plugin_manager
from enroll.store import queries

VECTORS = Path(__file__).resolve().parent.parent / "vectors" / "core"


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    """An initialised data dir: config, schema and CAs (what ``enroll init`` leaves)."""
    data = tmp_path / "data"
    assert init_data_dir(data, build_plugin_manager()) is not None
    build_context(config_mod.load(None, {}, data_dir=data)).db.dispose()
    return data


@pytest.fixture
def vector() -> Callable[[str], bytes]:
    """`vector("openssl_rsa1024.csr.pem")` -> the file's bytes (see the vectors README)."""
    return lambda name: (VECTORS / name).read_bytes()


@pytest.fixture
def stored() -> Callable[[AppContext], tuple[int, int]]:
    """`stored(ctx)` -> (certificates, requests) rows in the store."""

    def count(ctx: AppContext) -> tuple[int, int]:
        with ctx.db.read() as conn:
            return queries.count_certificates(conn), queries.count_requests(conn)

    return count


@pytest.fixture
def open_data_dir() -> Iterator[Callable[..., AppContext]]:
    """`open_data_dir(path, env={})`: an AppContext on a data dir (as the CLI opens it);
    disposed at teardown."""
    opened: list[AppContext] = []

    def factory(data_dir: Path, env: dict[str, str] | None = None) -> AppContext:
        ctx = build_context(config_mod.load(None, env or {}, data_dir=data_dir))
        opened.append(ctx)
        return ctx

    yield factory
    for ctx in opened:
        ctx.db.dispose()


@pytest.fixture
def run_cli() -> Callable[..., subprocess.CompletedProcess[str]]:
    """`run_cli(data_dir, *args, env={})`: the `enroll` CLI as a subprocess."""

    def run(data_dir: Path, *args: str, env: dict[str, str] | None = None,
            check: bool = True) -> subprocess.CompletedProcess[str]:
        done = subprocess.run([sys.executable, "-m", "enroll.cli.main", "--data-dir",
                               str(data_dir), *args], capture_output=True, text=True,
                              timeout=120, env=child_env(**(env or {})), check=False)
        if check:
            assert done.returncode == 0, (args, done.stdout, done.stderr)
        return done

    return run



@pytest.fixture
def build(make_config: Callable[..., config_mod.Config]) -> Iterator[Callable[..., AppContext]]:
    """`build(extra_plugins=[...], clock=..., **config_overrides)`: an AppContext on the
    parametrised database (SQLite file / PostgreSQL); disposed at teardown."""
    opened: list[AppContext] = []

    def factory(*, extra_plugins: tuple[object, ...] | list[object] = (),
                clock: Any = None, **overrides: Any) -> AppContext:
        ctx = build_context(make_config(**overrides), extra_plugins=extra_plugins, clock=clock)
        opened.append(ctx)
        return ctx

    yield factory
    for ctx in opened:
        ctx.db.dispose()


@pytest.fixture
def sqlite_context(tmp_path: Path, sqlite_url: str) -> Iterator[AppContext]:
    """The embedded default on a SQLite file only, for tests about certificate contents
    that do not depend on the database."""
    from enroll.testing import test_config

    ctx = build_context(test_config(tmp_path / "data", sqlite_url))
    yield ctx
    ctx.db.dispose()
