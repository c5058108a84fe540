"""Raw DBAPI transactions for ACME's repository (`store`).

SQLAlchemy Core costs 200-400 µs of Python per statement; an ACME request runs several,
so the repository talks to the DBAPI cursor (as `enroll.store.raw` does for the issuance
path). Values are encoded as SQLAlchemy encodes these columns, so the migration, the CLI
and ad-hoc SQLAlchemy reads see the same data."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy.exc import IntegrityError

from enroll.store.db import Database, aware

_SQLITE_WRITER = threading.Lock()


class Tx:
    """One transaction on a raw driver connection; SQL is written with ``?``."""

    def __init__(self, cursor: Any, sqlite: bool, integrity: type[Exception]) -> None:
        self.cursor = cursor
        self.sqlite = sqlite
        self._integrity = integrity

    def run(self, sql: str, params: tuple[Any, ...] = ()) -> int:
        if not self.sqlite:
            sql = sql.replace("?", "%s")
        try:
            self.cursor.execute(sql, params)
        except self._integrity as exc:
            raise IntegrityError(sql, params, exc) from exc
        return int(self.cursor.rowcount)

    def one(self, sql: str, params: tuple[Any, ...] = ()) -> Any:
        self.run(sql, params)
        return self.cursor.fetchone()

    def all(self, sql: str, params: tuple[Any, ...] = ()) -> list[Any]:
        self.run(sql, params)
        return list(self.cursor.fetchall())

    def when(self, value: dt.datetime | None) -> Any:
        if value is None or not self.sqlite:
            return value
        return value.astimezone(dt.UTC).replace(tzinfo=None).isoformat(
            sep=" ", timespec="microseconds")

    def parse_when(self, value: Any) -> dt.datetime | None:
        if value is None:
            return None
        if isinstance(value, str):
            value = dt.datetime.fromisoformat(value)
        return aware(value)


@contextmanager
def _tx(db: Database, write: bool) -> Iterator[Tx]:
    raw = db.engine.raw_connection()
    try:
        cursor = raw.cursor()
        module = db.engine.dialect.dbapi
        assert module is not None
        tx = Tx(cursor, db.is_sqlite, module.IntegrityError)
        if db.is_sqlite:
            cursor.execute("BEGIN IMMEDIATE" if write else "BEGIN DEFERRED")
        try:
            yield tx
        except BaseException:
            if db.is_sqlite:
                cursor.execute("ROLLBACK")
            else:
                raw.rollback()
            raise
        if db.is_sqlite:
            cursor.execute("COMMIT")
        else:
            raw.commit()
    finally:
        raw.close()


@contextmanager
def serialized(db: Database) -> Iterator[None]:
    """Hold this worker's SQLite writer lock around a core call that writes (submit,
    revoke), so it queues behind ACME's own writes instead of sleeping in SQLite's busy
    handler. A no-op on PostgreSQL."""
    if not db.is_sqlite:
        yield
        return
    with _SQLITE_WRITER:
        yield


@contextmanager
def read(db: Database) -> Iterator[Tx]:
    """A read transaction (no write lock)."""
    with _tx(db, write=False) as tx:
        yield tx


@contextmanager
def write(db: Database) -> Iterator[Tx]:
    """A write transaction. On SQLite, this worker's threads queue on a lock first: a
    thread waiting in SQLite's busy handler sleeps in steps of up to 100 ms, which turns
    contention into seconds of latency; a Python lock wakes the next writer as soon as
    the previous one commits. Other workers still meet the busy timeout."""
    if not db.is_sqlite:
        with _tx(db, write=True) as tx:
            yield tx
        return
    with _SQLITE_WRITER, _tx(db, write=True) as tx:
        yield tx
