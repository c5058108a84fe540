"""Hot-path writes through the DBAPI cursor, for the issuance pipeline only.

SQLAlchemy Core costs ~200 µs of Python per statement on this path; the issuance
pipeline runs five statements in two transactions per certificate, so those five go
straight to the driver here. Values are encoded exactly as SQLAlchemy encodes them for
the same columns (SQLite: naive-UTC ``YYYY-MM-DD HH:MM:SS.ffffff`` text and JSON text;
PostgreSQL: native timestamptz and JSON), so every other query in `queries` reads them
back unchanged. Everything else uses SQLAlchemy.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from sqlalchemy.exc import IntegrityError

from enroll.store.db import Database, aware


class RawTx:
    """One transaction on a raw driver connection; SQL uses ``?`` placeholders."""

    def __init__(self, cursor: Any, sqlite: bool, integrity_error: type[Exception]) -> None:
        self.cursor = cursor
        self.sqlite = sqlite
        self._integrity_error = integrity_error

    def run(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Execute one statement; returns the row count. A unique-constraint violation
        is raised as SQLAlchemy's `IntegrityError`, whatever the driver."""
        if not self.sqlite:
            sql = sql.replace("?", "%s")
        try:
            self.cursor.execute(sql, params)
        except self._integrity_error as exc:
            raise IntegrityError(sql, params, exc) from exc
        return int(self.cursor.rowcount)

    execute = run

    def one(self, sql: str, params: Sequence[Any] = ()) -> Any:
        self.run(sql, params)
        return self.cursor.fetchone()

    def all(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        self.run(sql, params)
        return list(self.cursor.fetchall())

    def when(self, value: dt.datetime | None) -> Any:
        """A datetime as SQLAlchemy stores it in this column type."""
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

    def json_value(self, value: Any) -> str:
        return json.dumps(value, default=str)

    @property
    def json_param(self) -> str:
        return "?" if self.sqlite else "CAST(? AS JSON)"


@contextmanager
def _transaction(db: Database, write: bool) -> Iterator[RawTx]:
    # The pool's raw connection: no SQLAlchemy Connection object on this path.
    pooled = db.engine.raw_connection()
    try:
        dbapi = pooled.driver_connection
        assert dbapi is not None
        cursor = dbapi.cursor()
        module = db.engine.dialect.dbapi
        assert module is not None
        tx = RawTx(cursor, db.is_sqlite, module.IntegrityError)
        if db.is_sqlite:
            cursor.execute("BEGIN IMMEDIATE" if write else "BEGIN DEFERRED")
        try:
            yield tx
        except BaseException:
            if db.is_sqlite:
                cursor.execute("ROLLBACK")
            else:
                dbapi.rollback()
            raise
        else:
            if db.is_sqlite:
                cursor.execute("COMMIT")
            else:
                dbapi.commit()
        finally:
            cursor.close()
    finally:
        pooled.close()


@contextmanager
def raw_write(db: Database) -> Iterator[RawTx]:
    """BEGIN IMMEDIATE (SQLite) / implicit BEGIN (psycopg) … COMMIT, ROLLBACK on error.
    On SQLite the worker's writers queue on `Database.writer_lock` first."""
    with db.writer_lock, _transaction(db, write=True) as tx:
        yield tx


@contextmanager
def raw_read(db: Database) -> Iterator[RawTx]:
    """A read transaction (takes no write lock)."""
    with _transaction(db, write=False) as tx:
        yield tx


REQUEST_COLUMNS = ("id", "status", "profile", "ca", "protocol", "endpoint", "requester",
                   "auth_method", "transaction_id", "key_fingerprint", "subject", "sans",
                   "replaces", "reason", "certificate_serial", "csr_pem", "attributes",
                   "created_at", "updated_at")
CERTIFICATE_COLUMNS = ("serial", "ca", "request_id", "status", "profile", "protocol",
                       "requester", "subject", "sans", "key_fingerprint", "not_before",
                       "not_after", "revoked_at", "revocation_reason", "replaces", "der",
                       "created_at")
_JSON = {"sans", "attributes"}
_TIMES = {"created_at", "updated_at", "not_before", "not_after", "revoked_at"}


def _insert(tx: RawTx, table: str, columns: Sequence[str], values: Mapping[str, Any]) -> None:
    marks = ", ".join(tx.json_param if c in _JSON else "?" for c in columns)
    params = []
    for c in columns:
        v = values.get(c)
        if v is not None and c in _JSON:
            v = tx.json_value(v)
        elif v is not None and c in _TIMES:
            v = tx.when(v)
        params.append(v)
    tx.execute(f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})",  # noqa: S608
               params)


def insert_request(tx: RawTx, values: Mapping[str, Any]) -> None:
    _insert(tx, "requests", REQUEST_COLUMNS, values)


def insert_certificate(tx: RawTx, values: Mapping[str, Any]) -> None:
    _insert(tx, "certificates", CERTIFICATE_COLUMNS, values)


def mark_issued(tx: RawTx, request_id: str, serial: str, now: dt.datetime) -> bool:
    """approved -> issued, conditionally: False if the request was not approved."""
    return tx.execute("UPDATE requests SET status = 'issued', certificate_serial = ?, "
                      "updated_at = ? WHERE id = ? AND status = 'approved'",
                      (serial, tx.when(now), request_id)) == 1


def add_audit(tx: RawTx, *, at: dt.datetime, type: str, actor: str,
              request_id: str | None = None, serial: str | None = None,
              details: Mapping[str, Any] | None = None) -> None:
    # Only constant fragments are interpolated; values are bound parameters.
    tx.execute("INSERT INTO audit_events (at, type, actor, request_id, serial, details) "  # noqa: S608
               f"VALUES (?, ?, ?, ?, ?, {tx.json_param})",
               (tx.when(at), type, actor, request_id, serial, tx.json_value(details or {})))
