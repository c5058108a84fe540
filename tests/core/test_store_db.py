"""The database handle: SQLite tuning, in-memory use, timestamps."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from sqlalchemy import text

from enroll.store import migrate, queries
from enroll.store.db import Database, aware, normalise_url


def test_sqlite_file_runs_in_wal_mode_with_a_busy_timeout(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'sub' / 'enroll.db'}")
    try:
        with db.read() as conn:
            assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
            assert conn.execute(text("PRAGMA busy_timeout")).scalar() == 30000
            assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1
    finally:
        db.dispose()


def test_in_memory_sqlite_can_be_migrated_and_used() -> None:
    db = Database("sqlite://")
    try:
        migrate.upgrade(db)
        with db.read() as conn:
            assert queries.count_certificates(conn) == 0
    finally:
        db.dispose()


def test_timestamps_come_back_timezone_aware_utc() -> None:
    naive = dt.datetime(2030, 1, 2, 3, 4, 5)
    assert aware(naive) == naive.replace(tzinfo=dt.UTC)
    paris = dt.datetime(2030, 1, 2, 4, 4, 5, tzinfo=dt.timezone(dt.timedelta(hours=1)))
    assert aware(paris) == paris and aware(None) is None


def test_postgresql_urls_use_psycopg_3() -> None:
    assert normalise_url("postgresql://u@h/db") == "postgresql+psycopg://u@h/db"
    assert normalise_url("postgres://u@h/db") == "postgresql+psycopg://u@h/db"
    assert normalise_url("sqlite:///x.db") == "sqlite:///x.db"
