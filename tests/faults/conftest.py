"""Fixtures of the fault suite: a private PostgreSQL 15 (never the shared one on 5432),
a fresh database on it per test, and a fault proxy in front of it."""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import pytest
from faultproxy import FaultProxy
from privatepg import PrivatePostgres


@pytest.fixture(scope="session")
def private_pg() -> Iterator[PrivatePostgres]:
    """One private server for the session; tests may restart, stop and start it (each
    leaves it running)."""
    pg = PrivatePostgres()
    pg.start()
    yield pg
    pg.destroy()


@pytest.fixture
def pg_database(private_pg: PrivatePostgres) -> str:
    """The name of a fresh database on the private server (it is running)."""
    if not private_pg.running():
        private_pg.start()
    name = f"f_{secrets.token_hex(4)}"
    private_pg.create_database(name)
    return name


@pytest.fixture
def fault_proxy(private_pg: PrivatePostgres) -> Iterator[FaultProxy]:
    proxy = FaultProxy(private_pg.port)
    yield proxy
    proxy.close()
