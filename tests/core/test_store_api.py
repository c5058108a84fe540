"""The one transaction API (`Database.write()` / `read()` -> `Tx`): rows by column name,
column names checked against fixed lists, UTC timestamps on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pytest
from sqlalchemy.exc import IntegrityError

from enroll.store import Database, Tx, UnknownColumn, migrate
from enroll.store.schema import audit_events, requests

PARIS = dt.timezone(dt.timedelta(hours=1))


@pytest.fixture
def db(db_url: str) -> Iterator[Database]:
    database = Database(db_url)
    migrate.upgrade(database)
    yield database
    database.dispose()


def _request(tx: Tx, request_id: str, when: dt.datetime) -> None:
    tx.insert(requests, {
        "id": request_id, "status": "pending", "profile": "p", "ca": "c",
        "protocol": "est", "endpoint": "", "requester": "r", "auth_method": "basic",
        "transaction_id": None, "key_fingerprint": "f", "subject": "CN=x",
        "sans": ["dns:x.example"], "replaces": None, "reason": "", "certificate_serial": None,
        "csr_pem": "pem", "attributes": {"k": 1}, "created_at": when, "updated_at": when})


def test_rows_come_back_by_column_name_and_decoded_by_column_type(db: Database) -> None:
    when = dt.datetime(2030, 1, 2, 4, 4, 5, 123456, tzinfo=PARIS)
    with db.write() as tx:
        _request(tx, "r1", when)
    with db.read() as tx:
        row = tx.one("SELECT attributes, created_at, id, sans FROM requests WHERE id = ?",
                     ("r1",), requests)
    assert row == {"id": "r1", "sans": ["dns:x.example"], "attributes": {"k": 1},
                   "created_at": when}
    assert row["created_at"].tzinfo is dt.UTC


def test_utc_timestamps_round_trip_and_compare_in_sql(db: Database) -> None:
    early = dt.datetime(2030, 1, 1, 0, 0, tzinfo=dt.UTC)
    late = dt.datetime(2030, 1, 1, 0, 30, tzinfo=PARIS)  # 23:30 UTC the day before
    with db.write() as tx:
        _request(tx, "early", early)
        _request(tx, "late-paris", late)
    with db.read() as tx:
        rows = tx.all("SELECT id, created_at FROM requests WHERE created_at < ? "
                      "ORDER BY created_at", (tx.when(early),), requests)
    assert rows == [{"id": "late-paris", "created_at": late}]
    assert rows[0]["created_at"] == dt.datetime(2029, 12, 31, 23, 30, tzinfo=dt.UTC)


def test_insert_refuses_a_column_the_table_does_not_have(db: Database) -> None:
    with pytest.raises(UnknownColumn), db.write() as tx:
        tx.insert(audit_events, {"at": dt.datetime.now(dt.UTC), "type": "t", "actor": "a",
                                 "details": {}, "1=1; DROP TABLE requests; --": "x"})
    with db.read() as tx:
        assert tx.scalar("SELECT count(*) FROM audit_events") == 0


def test_update_refuses_a_column_outside_its_fixed_list(db: Database) -> None:
    now = dt.datetime.now(dt.UTC)
    with db.write() as tx:
        _request(tx, "r1", now)
    with pytest.raises(UnknownColumn, match="requester"), db.write() as tx:
        tx.update(requests, {"status": "approved", "requester": "mallory"}, "id = ?",
                  ("r1",), allowed={"status"})
    with db.write() as tx:
        assert tx.update(requests, {"status": "approved", "updated_at": now}, "id = ?",
                         ("r1",), allowed={"status", "updated_at"}) == 1
        row = tx.one("SELECT status, requester FROM requests WHERE id = ?", ("r1",))
    assert row == {"status": "approved", "requester": "r"}


def test_the_column_check_is_not_an_assert() -> None:
    # `python -O` strips assert statements; the whitelist must still refuse.
    import ast
    import inspect

    from enroll.store import transaction

    tree = ast.parse(inspect.getsource(transaction))
    assert not [n for n in ast.walk(tree) if isinstance(n, ast.Assert)]


def test_a_failed_write_rolls_back_and_constraint_errors_are_integrity_errors(
        db: Database) -> None:
    now = dt.datetime.now(dt.UTC)
    with db.write() as tx:
        _request(tx, "r1", now)
    with pytest.raises(IntegrityError), db.write() as tx:
        _request(tx, "r2", now)
        _request(tx, "r1", now)
    with db.read() as tx:
        assert [r["id"] for r in tx.all("SELECT id FROM requests ORDER BY id")] == ["r1"]


def test_sql_with_a_literal_percent_sign_runs_on_both_drivers(db: Database) -> None:
    with db.write() as tx:
        _request(tx, "r1", dt.datetime.now(dt.UTC))
    with db.read() as tx:
        assert tx.scalar("SELECT count(*) FROM requests WHERE requester LIKE 'r%' "
                         "AND id = ?", ("r1",)) == 1
