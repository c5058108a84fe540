"""`Tx`: the one transaction API of the store, at DBAPI-driver level.

Every repository function — the core's (`queries`) and each protocol's (``store.py``) —
takes a `Tx` opened by `Database.write()` or `Database.read()`. SQL is text with ``?``
placeholders (rewritten to ``%s`` for psycopg) and every value is a bound parameter.
Rows come back as dicts keyed by column name; pass the `Table` a query reads and its
timestamps, JSON, booleans and blobs come back decoded (`enroll.store.columns`).

SQLAlchemy Core costs ~200 µs of Python per statement, and an enrollment runs several,
so no statement here goes through its compiler; the SQLAlchemy tables are the schema
(for alembic and the column types), not the query path.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import select
import threading
import time
from collections.abc import Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine, Table
from sqlalchemy.exc import DBAPIError, IntegrityError

from enroll.errors import DatabaseUnavailable
from enroll.store import columns

log = logging.getLogger("enroll.store")

Row = dict[str, Any]
"""One result row: column name -> value."""


class UnknownColumn(ValueError):
    """A column name that is not on the fixed list a statement may interpolate."""


def checked(names: Collection[str], allowed: Collection[str], what: str) -> None:
    """Refuse (raise `UnknownColumn`) any name outside `allowed`. Column names are the
    only text ever interpolated into SQL; this check is what keeps that safe."""
    unknown = [n for n in names if n not in allowed]
    if unknown:
        raise UnknownColumn(f"{what}: not an allowed column: {', '.join(sorted(unknown))}")


_DECODERS: dict[tuple[str, bool], dict[str, columns.Decoder]] = {}
_INSERTS: dict[tuple[str, tuple[str, ...], bool], tuple[str, tuple[str, ...], tuple[str, ...]]] = {}


class Tx:
    """One open transaction on a pooled driver connection."""

    __slots__ = ("cursor", "sqlite", "_integrity_error")

    def __init__(self, cursor: Any, sqlite: bool, integrity_error: type[Exception]) -> None:
        self.cursor = cursor
        self.sqlite = sqlite
        self._integrity_error = integrity_error

    # -- statements -----------------------------------------------------------------------

    def run(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Execute one statement; returns the row count. A constraint violation is
        raised as SQLAlchemy's `IntegrityError`, whatever the driver."""
        if not self.sqlite:
            sql = sql.replace("%", "%%").replace("?", "%s")
        try:
            self.cursor.execute(sql, tuple(params))
        except self._integrity_error as exc:
            raise IntegrityError(sql, params, exc) from exc
        return int(self.cursor.rowcount)

    def one(self, sql: str, params: Sequence[Any] = (), table: Table | None = None
            ) -> Row | None:
        """The first row, or None. With `table`, its typed columns are decoded."""
        self.run(sql, params)
        values = self.cursor.fetchone()
        if values is None:
            return None
        row = dict(zip(self._names(), values, strict=True))
        return self._decode(row, table) if table is not None else row

    def all(self, sql: str, params: Sequence[Any] = (), table: Table | None = None
            ) -> list[Row]:
        """Every row. With `table`, its typed columns are decoded."""
        self.run(sql, params)
        names = self._names()
        rows = [dict(zip(names, values, strict=True)) for values in self.cursor.fetchall()]
        if table is not None:
            for row in rows:
                self._decode(row, table)
        return rows

    def scalar(self, sql: str, params: Sequence[Any] = ()) -> Any:
        """The first column of the first row, or None."""
        self.run(sql, params)
        values = self.cursor.fetchone()
        return None if values is None else values[0]

    def insert(self, table: Table, values: Mapping[str, Any]) -> None:
        """INSERT one row; keys must be columns of `table` (else `UnknownColumn`), and
        values are encoded for their column type."""
        names = tuple(values)
        sql, times, jsons = self._insert_sql(table, names)
        params = [values[n] for n in names]
        if times or jsons:
            for i, n in enumerate(names):
                v = params[i]
                if v is None:
                    continue
                if n in times:
                    params[i] = columns.encode_time(v, self.sqlite)
                elif n in jsons:
                    params[i] = columns.encode_json(v)
        self.run(sql, params)

    def update(self, table: Table, values: Mapping[str, Any], where: str,
               params: Sequence[Any] = (), *, allowed: Collection[str]) -> int:
        """``UPDATE table SET <values> WHERE <where>``; returns the row count. The keys of
        `values` must be in `allowed` (a fixed list of the caller's) and columns of
        `table`, else `UnknownColumn`; values are encoded for their column type."""
        checked(values, allowed, table.name)
        checked(values, table.c.keys(), table.name)
        sets = []
        bound: list[Any] = []
        for name, value in values.items():
            if columns.is_json(table, name):
                sets.append(f"{name} = {self.json_param}")
                bound.append(None if value is None else columns.encode_json(value))
            elif columns.is_time(table, name):
                sets.append(f"{name} = ?")
                bound.append(columns.encode_time(value, self.sqlite))
            else:
                sets.append(f"{name} = ?")
                bound.append(value)
        return self.run(f"UPDATE {table.name} SET {', '.join(sets)} WHERE {where}",  # noqa: S608
                        (*bound, *params))

    # -- values for hand-written statements -----------------------------------------------

    def when(self, value: dt.datetime | None) -> Any:
        """A datetime as a parameter for a `UTC_DT` column."""
        return columns.encode_time(value, self.sqlite)

    def json(self, value: Any) -> str:
        """A value as a parameter for a JSON column (use `json_param` as its mark)."""
        return columns.encode_json(value)

    @property
    def json_param(self) -> str:
        """The placeholder of a JSON parameter."""
        return "?" if self.sqlite else "CAST(? AS JSON)"

    # -- internals ------------------------------------------------------------------------

    def _names(self) -> list[str]:
        return [d[0] for d in self.cursor.description]

    def _decode(self, row: Row, table: Table) -> Row:
        key = (table.name, self.sqlite)
        found = _DECODERS.get(key)
        if found is None:
            found = _DECODERS[key] = columns.decoders(table, self.sqlite)
        for name, decode in found.items():
            value = row.get(name)
            if value is not None:
                row[name] = decode(value)
        return row

    def _insert_sql(self, table: Table, names: tuple[str, ...]
                    ) -> tuple[str, tuple[str, ...], tuple[str, ...]]:
        key = (table.name, names, self.sqlite)
        cached = _INSERTS.get(key)
        if cached is None:
            checked(names, table.c.keys(), table.name)
            jsons = tuple(n for n in names if columns.is_json(table, n))
            times = tuple(n for n in names if columns.is_time(table, n))
            marks = ", ".join(self.json_param if n in jsons else "?" for n in names)
            sql = f"INSERT INTO {table.name} ({', '.join(names)}) VALUES ({marks})"  # noqa: S608
            cached = _INSERTS[key] = (sql, times, jsons)
        return cached


class ThreadConnections:
    """One driver connection per thread, kept open between transactions.

    Checking a connection out of SQLAlchemy's pool and back in costs ~0.4 ms of Python
    per transaction (two per issuance); a worker has a fixed set of threads (the
    event loop's and the `BlockingPool`'s), so each keeps its own connection instead.
    The connections are detached from the pool (SQLAlchemy's connect listeners, e.g.
    SQLite's PRAGMAs, have run on them); `close_all` closes them, and a connection that
    failed at the driver level is dropped so the thread's next transaction reconnects.

    With ``check_idle`` (PostgreSQL) a kept connection is looked at before each use, as
    the pool's pre-ping would but without a round trip: an idle connection has nothing
    to read, so a readable socket means the server said goodbye (a restart sends
    ``57P01 terminating connection``, a cut proxy an EOF) and the connection is replaced
    before the transaction starts, instead of failing the client's request.
    """

    def __init__(self, engine: Engine, *, check_idle: bool = False) -> None:
        self._engine = engine
        self._check_idle = check_idle
        dbapi = engine.dialect.dbapi
        # What a failed connection attempt raises: the driver's own errors come through
        # the pool unwrapped, SQLAlchemy's wrapper from a connect listener.
        self._connect_errors: tuple[type[BaseException], ...] = (
            DBAPIError, dbapi.OperationalError, dbapi.InterfaceError) if dbapi else (DBAPIError,)
        self._local = threading.local()
        self._all: list[Any] = []
        self._lock = threading.Lock()
        self._generation = 0

    def get(self) -> Any:
        conn = getattr(self._local, "conn", None)
        if conn is not None and self._check_idle and not _idle_and_open(conn):
            self.drop(conn)
            conn = None
        if conn is None or getattr(self._local, "generation", -1) != self._generation:
            try:
                fairy = self._engine.raw_connection()
            except self._connect_errors as exc:
                raise unavailable(exc) from exc
            conn = fairy.driver_connection
            if conn is None:
                raise RuntimeError("the connection pool gave no driver connection")
            fairy.detach()
            with self._lock:
                self._all.append(conn)
            self._local.conn, self._local.generation = conn, self._generation
        return conn

    def drop(self, conn: Any) -> None:
        """Forget (and close) a connection that failed."""
        if getattr(self._local, "conn", None) is conn:
            self._local.conn = None
        with self._lock:
            if conn in self._all:
                self._all.remove(conn)
        with contextlib.suppress(Exception):  # it is already broken
            conn.close()

    def close_all(self) -> None:
        with self._lock:
            conns, self._all = self._all, []
            self._generation += 1
        for conn in conns:
            with contextlib.suppress(Exception):  # closing at shutdown
                conn.close()


@contextmanager
def transaction(connections: ThreadConnections, module: Any, sqlite: bool,
                write: bool) -> Iterator[Tx]:
    """BEGIN IMMEDIATE (write) / DEFERRED (read) on SQLite, psycopg's implicit BEGIN on
    PostgreSQL; COMMIT on success, ROLLBACK on error. Takes no lock (see `Database`).

    A read on PostgreSQL runs in autocommit: under READ COMMITTED every statement takes
    its own snapshot anyway, so BEGIN and COMMIT would only add two round trips (each a
    GIL hand-off) and give no consistency a read-only block could use. On SQLite a read
    transaction does hold one snapshot for all its statements (WAL).

    A database that is down, cut off, full or locked past the busy timeout raises
    `DatabaseUnavailable` (the doors answer 503 / serverInternal / a SCEP FAILURE); the
    driver's error is its cause, for the log. The connection is dropped (the next
    transaction reconnects) and nothing of the transaction is kept. Any other driver
    error (a bad statement) is a bug and propagates as it is."""
    dbapi = connections.get()
    autocommit = not sqlite and not write
    try:
        if autocommit:
            dbapi.autocommit = True
        cursor = dbapi.cursor()
        tx = Tx(cursor, sqlite, module.IntegrityError)
        try:
            if sqlite:
                cursor.execute("BEGIN IMMEDIATE" if write else "BEGIN DEFERRED")
            try:
                yield tx
            except BaseException:
                # The first error is the one to report: a ROLLBACK on a connection the
                # server already closed (or that SQLite rolled back itself, after
                # SQLITE_FULL) fails too, and the connection is dropped below anyway.
                with contextlib.suppress(module.Error):
                    if sqlite:
                        cursor.execute("ROLLBACK")
                    elif not autocommit:
                        dbapi.rollback()
                raise
            else:
                if sqlite:
                    cursor.execute("COMMIT")
                elif not autocommit:
                    dbapi.commit()
        finally:
            with contextlib.suppress(module.Error):
                cursor.close()
            if autocommit:
                dbapi.autocommit = False
    except (module.OperationalError, module.InterfaceError) as exc:
        # The connection itself may be gone (server restart, network): do not reuse it.
        connections.drop(dbapi)
        if sqlite and not _sqlite_outage(exc):
            raise  # SQLITE_ERROR and friends: a bad statement, not an outage
        raise unavailable(exc) from exc


UNAVAILABLE = "the database is unavailable right now; retry later"
"""The client-safe detail of every `DatabaseUnavailable` (the driver's text is logged)."""


class _OutageLog:
    """One warning per outage, not one per failed transaction: the first failure is
    logged with the driver's reason, then at most one line every `every` seconds with
    how many failures it stands for."""

    def __init__(self, every: float = 5.0) -> None:
        self.every = every
        self._lock = threading.Lock()
        self._last = -every
        self._since = 0

    def failed(self, exc: BaseException) -> None:
        now = time.monotonic()
        with self._lock:
            self._since += 1
            if now - self._last < self.every:
                return
            count, self._since, self._last = self._since, 0, now
        log.warning("database unavailable (%d failed transaction%s): %s: %s", count,
                    "" if count == 1 else "s", type(exc).__name__,
                    str(exc).strip().replace("\n", " ")[:300])


_outages = _OutageLog()


def unavailable(exc: BaseException) -> DatabaseUnavailable:
    """The error a transaction raises for a driver failure `exc` that is an outage;
    the driver's reason goes to the log (rate-limited), never to the client."""
    _outages.failed(exc)
    return DatabaseUnavailable(UNAVAILABLE)

# SQLite result codes (the primary code, the low byte of an extended one) that say the
# file or its disk cannot be used right now, as opposed to a bad statement.
_SQLITE_OUTAGES = frozenset({
    5,   # SQLITE_BUSY: the lock did not come free within the busy timeout
    6,   # SQLITE_LOCKED
    7,   # SQLITE_NOMEM
    8,   # SQLITE_READONLY: e.g. the filesystem was remounted read-only
    10,  # SQLITE_IOERR
    13,  # SQLITE_FULL: the disk is full
    14,  # SQLITE_CANTOPEN
    15,  # SQLITE_PROTOCOL
})


def _sqlite_outage(exc: BaseException) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    return isinstance(code, int) and (code & 0xFF) in _SQLITE_OUTAGES


def _idle_and_open(conn: Any) -> bool:
    """True when a kept psycopg connection still looks usable: not closed or broken,
    and nothing waiting on its socket (an idle connection is sent nothing)."""
    if getattr(conn, "closed", False) or getattr(conn, "broken", False):
        return False
    try:
        fd = conn.fileno()
    except Exception:  # noqa: BLE001 - any failure here means "do not reuse it"
        return False
    poller = select.poll()
    poller.register(fd, select.POLLIN | select.POLLPRI)
    return not poller.poll(0)
