"""The database handle: SQLite tuning, in-memory use, timestamps."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from enroll.store import migrate, queries
from enroll.store.columns import utc
from enroll.store.db import Database, normalise_url


def test_sqlite_file_runs_in_wal_mode_with_a_busy_timeout(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'sub' / 'enroll.db'}")
    try:
        with db.read() as tx:
            assert tx.scalar("PRAGMA journal_mode") == "wal"
            # FULL (2): a commit is on disk before the answer (NORMAL could lose the
            # last commits of a WAL database on power loss).
            assert tx.scalar("PRAGMA synchronous") == 2
            assert tx.scalar("PRAGMA busy_timeout") == 30000
            assert tx.scalar("PRAGMA foreign_keys") == 1
    finally:
        db.dispose()


def test_in_memory_sqlite_can_be_migrated_and_used() -> None:
    db = Database("sqlite://")
    try:
        migrate.upgrade(db)
        with db.read() as tx:
            assert queries.count_certificates(tx) == 0
    finally:
        db.dispose()


def test_timestamps_come_back_timezone_aware_utc() -> None:
    naive = dt.datetime(2030, 1, 2, 3, 4, 5)
    assert utc(naive) == naive.replace(tzinfo=dt.UTC)
    assert utc("2030-01-02 03:04:05.000000") == naive.replace(tzinfo=dt.UTC)
    paris = dt.datetime(2030, 1, 2, 4, 4, 5, tzinfo=dt.timezone(dt.timedelta(hours=1)))
    assert utc(paris) == paris and utc(paris).tzinfo is dt.UTC  # type: ignore[union-attr]
    assert utc(None) is None


def test_postgresql_urls_use_psycopg_3() -> None:
    assert normalise_url("postgresql://u@h/db") == "postgresql+psycopg://u@h/db"
    assert normalise_url("postgres://u@h/db") == "postgresql+psycopg://u@h/db"
    assert normalise_url("sqlite:///x.db") == "sqlite:///x.db"
