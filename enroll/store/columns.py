"""Column types shared by every table, and how their values cross the driver.

One UTC timestamp type (`UTC_DT`) serves the core's tables and every protocol's. The
transaction API (`enroll.store.transaction`) talks to the DBAPI driver, so it encodes and
decodes values itself, exactly as SQLAlchemy does for the same column types (alembic and
ad-hoc SQLAlchemy reads see the same bytes):

- `UTC_DT`: PostgreSQL ``timestamptz``; SQLite text ``YYYY-MM-DD HH:MM:SS.ffffff``, naive
  UTC. Read back, it is always a timezone-aware UTC `datetime`.
- `JSON`: PostgreSQL ``json`` (the driver decodes it); SQLite JSON text.
- `Boolean`: SQLite returns 0/1; `LargeBinary`: some drivers return `memoryview`.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from typing import Any

from sqlalchemy import JSON, Boolean, DateTime, LargeBinary, Table

UTC_DT = DateTime(timezone=True)
"""The timestamp column type of every table: timezone-aware, stored as UTC."""


def utc(value: Any) -> dt.datetime | None:
    """A stored timestamp as an aware UTC datetime (SQLite text or naive: UTC)."""
    if value is None:
        return None
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    if not isinstance(value, dt.datetime):
        raise TypeError(f"not a timestamp: {type(value).__name__}")
    if value.tzinfo is None:
        return value.replace(tzinfo=dt.UTC)
    return value.astimezone(dt.UTC)


def encode_time(value: dt.datetime | None, sqlite: bool) -> Any:
    """A datetime as the driver must receive it for a `UTC_DT` column. A naive value is
    taken as UTC (the clock only makes aware ones)."""
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    if not sqlite:
        return value
    return value.astimezone(dt.UTC).replace(tzinfo=None).isoformat(
        sep=" ", timespec="microseconds")


def encode_json(value: Any) -> str:
    return json.dumps(value, default=str)


def _decode_json_text(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str | bytes) else value


def _passthrough(value: Any) -> Any:
    return value


Decoder = Callable[[Any], Any]


def decoders(table: Table, sqlite: bool) -> dict[str, Decoder]:
    """Column name -> decoder for the columns of `table` whose driver value is not the
    Python value already."""
    found: dict[str, Decoder] = {}
    for column in table.columns:
        kind = column.type
        if isinstance(kind, DateTime):
            found[column.name] = utc
        elif isinstance(kind, JSON):
            found[column.name] = _decode_json_text if sqlite else _passthrough
        elif isinstance(kind, Boolean):
            found[column.name] = bool
        elif isinstance(kind, LargeBinary):
            found[column.name] = bytes
    return {name: fn for name, fn in found.items() if fn is not _passthrough}


def is_time(table: Table, name: str) -> bool:
    return isinstance(table.c[name].type, DateTime)


def is_json(table: Table, name: str) -> bool:
    return isinstance(table.c[name].type, JSON)
