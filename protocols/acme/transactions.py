"""Transactions for ACME's repository (`store`): the core's raw DBAPI transactions.

SQLAlchemy Core costs 200-400 µs of Python per statement and an ACME request runs
several, so the repository talks to the driver through `enroll.store.raw`, which
encodes values exactly as SQLAlchemy does for the same columns. On SQLite every write
transaction of the worker — ACME's and the core's — queues on `Database.writer_lock`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from enroll.store.db import Database
from enroll.store.raw import RawTx as Tx
from enroll.store.raw import raw_read as read
from enroll.store.raw import raw_write as write

__all__ = ["Tx", "read", "serialized", "write"]


@contextmanager
def serialized(db: Database) -> Iterator[None]:
    """Hold the worker's SQLite writer lock around a core call that writes several
    times (submit, revoke), so it runs as one queued unit. A no-op on PostgreSQL."""
    with db.writer_lock:
        yield
