"""The database handle: one engine per process, pooled, SQLite tuned for concurrency.

`Database.write()` and `Database.read()` are the store's one transaction API: each
yields a `Tx` (`enroll.store.transaction`) that every repository function takes, the
core's and each protocol's. SQLite runs in WAL mode with a busy timeout; write
transactions start with ``BEGIN IMMEDIATE`` so two writers queue on the lock instead of
failing when a read transaction tries to upgrade. PostgreSQL uses psycopg 3 with a
connection pool. The engine itself is for alembic (`enroll.store.migrate`) only.

A database that is down, cut off, full or locked makes a transaction raise
`enroll.errors.DatabaseUnavailable` (the doors' "try later"); kept PostgreSQL
connections the server closed are replaced before use (`ThreadConnections`).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url

from enroll.errors import ConfigError
from enroll.store.transaction import ThreadConnections, Tx, transaction
from enroll.store.writer_lock import WriterLock

CONNECT_TIMEOUT = 5
"""Seconds a PostgreSQL connection attempt may take (``?connect_timeout=`` overrides)."""


def normalise_url(url: str) -> str:
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


class Database:
    def __init__(self, url: str) -> None:
        self.url = normalise_url(url)
        parsed = make_url(self.url)
        self.is_sqlite = parsed.get_backend_name() == "sqlite"
        kwargs: dict[str, Any] = {}
        if self.is_sqlite:
            kwargs["connect_args"] = {"timeout": 30, "check_same_thread": False,
                                      "isolation_level": None}
            if parsed.database and parsed.database != ":memory:":
                Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
                kwargs["pool_size"] = 16
                kwargs["max_overflow"] = 32
            # An in-memory database lives in one connection (SingletonThreadPool),
            # which takes no pool sizes.
        else:
            kwargs.update(pool_size=10, max_overflow=20, pool_pre_ping=True)
            if "connect_timeout" not in parsed.query:
                # A connection attempt to an unreachable server fails in bounded time
                # (DatabaseUnavailable, a 503) instead of holding a worker thread.
                kwargs["connect_args"] = {"connect_timeout": CONNECT_TIMEOUT}
        try:
            self.engine: Engine = create_engine(self.url, **kwargs)
        except Exception as exc:  # noqa: BLE001 - bad driver/URL is a config problem
            raise ConfigError("database_url", f"cannot use this database URL: {exc}") from exc
        # SQLite has one writer at a time: writers queue on `WriterLock` (threads and
        # worker processes alike) instead of sleeping in SQLite's busy handler.
        sqlite_file = (parsed.database if self.is_sqlite and parsed.database
                       and parsed.database != ":memory:" else None)
        self.writer_lock: AbstractContextManager[Any] = (
            WriterLock(sqlite_file) if self.is_sqlite else nullcontext())
        if self.is_sqlite:
            self._tune_sqlite()
        self._connections = ThreadConnections(self.engine, check_idle=not self.is_sqlite)
        self._dbapi: Any = self.engine.dialect.dbapi

    def _tune_sqlite(self) -> None:
        @event.listens_for(self.engine, "connect")
        def _connect(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=FULL")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

        @event.listens_for(self.engine, "begin")
        def _begin(conn: Connection) -> None:
            mode = conn.get_execution_options().get("enroll_begin", "IMMEDIATE")
            conn.exec_driver_sql(f"BEGIN {mode}")

    @contextmanager
    def write(self) -> Iterator[Tx]:
        """A read-write transaction, committed on success, rolled back on error. On
        SQLite every writer (threads and worker processes) queues on `writer_lock`."""
        with self.writer_lock, transaction(self._connections, self._dbapi, self.is_sqlite,
                                           write=True) as tx:
            yield tx

    @contextmanager
    def read(self) -> Iterator[Tx]:
        """A read-only transaction (does not take SQLite's write lock)."""
        with transaction(self._connections, self._dbapi, self.is_sqlite, write=False) as tx:
            yield tx

    def dispose(self) -> None:
        self._connections.close_all()
        self.engine.dispose()
        if isinstance(self.writer_lock, WriterLock):
            self.writer_lock.close()

