"""The hash chain over audit events: built on every insert, verified by `enroll audit
verify`, kept valid by concurrent writers, and laid over existing rows by the migration.
On a SQLite file and on PostgreSQL (``db_url``)."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from harness import child_env
from sqlalchemy import text

from enroll import config as config_mod
from enroll import refusals
from enroll.context import AppContext, build_context
from enroll.embedded import init_data_dir
from enroll.model import Issued
from enroll.plugin_loader import build_plugin_manager
from enroll.store import audit_chain, migrate, queries
from enroll.store.db import Database
from enroll.store.schema import audit_events
from enroll.testing import make_csr, request


def verdict(ctx: AppContext) -> audit_chain.Verdict:
    """What ``enroll audit verify`` does: chain what has committed, then walk it."""
    audit_chain.chain_all(ctx.db)
    with ctx.db.read() as tx:
        return audit_chain.verify(tx)


def issue(ctx: AppContext, n: int = 1) -> list[Issued]:
    """`n` issuances, then the workers' chaining job (so the events are in the chain)."""
    out = []
    for i in range(n):
        outcome = ctx.authority.submit(request(make_csr(dns=[f"h{i}.example.com"])))
        assert isinstance(outcome, Issued)
        out.append(outcome)
    audit_chain.chain_all(ctx.db)
    return out


def test_writers_take_no_lock_and_the_chainer_seals_committed_events(
        build: Callable[..., AppContext]) -> None:
    ctx = build()
    audit_chain.chain_all(ctx.db)
    with ctx.db.write() as tx:
        queries.add_audit(tx, at=ctx.clock.now(), type="test.one", actor="t")
        queries.add_audit(tx, at=ctx.clock.now(), type="test.two", actor="t")
        assert tx.scalar("SELECT count(*) FROM audit_events WHERE chain_seq IS NULL") == 2
    with ctx.db.read() as tx:
        before = audit_chain.verify(tx)
    assert before.ok and before.pending == 2  # stored, not chained yet
    assert audit_chain.chain_all(ctx.db) == 2
    assert audit_chain.chain_all(ctx.db) == 0  # a second chainer finds nothing
    after = verdict(ctx)
    assert after.ok and after.pending == 0 and after.events == before.events + 2


def event_ids(ctx: AppContext) -> list[int]:
    with ctx.db.read() as tx:
        return [e.id for e in queries.list_audit(tx)]


def test_each_event_stores_the_previous_hash_and_its_own(
        build: Callable[..., AppContext]) -> None:
    ctx = build()
    issue(ctx, 2)
    with ctx.db.read() as tx:
        rows = tx.all("SELECT id, prev_hash, hash FROM audit_events ORDER BY chain_seq")
        head = tx.scalar("SELECT last_hash FROM audit_chain_head WHERE id = 1")
    assert len(rows) >= 4  # CA creation, request.approved and certificate.issued twice
    assert rows[0]["prev_hash"] == audit_chain.GENESIS
    for before, after in zip(rows, rows[1:], strict=False):
        assert after["prev_hash"] == before["hash"]
        assert len(after["hash"]) == 64
    assert head == rows[-1]["hash"]
    result = verdict(ctx)
    assert result.ok and result.events == len(rows)


@pytest.mark.parametrize("tamper", ["details", "actor", "at"])
def test_an_altered_event_is_named(build: Callable[..., AppContext], tamper: str) -> None:
    ctx = build()
    issue(ctx, 2)
    victim = event_ids(ctx)[2]
    change = {"details": "details = '{\"profile\": \"other\"}'",
              "actor": "actor = 'someone-else'",
              "at": "at = (SELECT min(e.at) FROM audit_events e)"}[tamper]
    with ctx.db.write() as tx:
        assert tx.run(f"UPDATE audit_events SET {change} WHERE id = ?", (victim,)) == 1  # noqa: S608
    result = verdict(ctx)
    assert not result.ok
    assert result.broken_id == victim
    assert "altered" in result.problem


def test_a_removed_event_breaks_the_chain_at_its_successor(
        build: Callable[..., AppContext]) -> None:
    ctx = build()
    issue(ctx, 2)
    ids = event_ids(ctx)
    with ctx.db.write() as tx:
        tx.run("DELETE FROM audit_events WHERE id = ?", (ids[1],))
    result = verdict(ctx)
    assert result.broken_id == ids[2]
    assert "removed" in result.problem


def test_a_truncated_tail_is_found_by_the_chain_head(build: Callable[..., AppContext]) -> None:
    ctx = build()
    issue(ctx, 2)
    ids = event_ids(ctx)
    with ctx.db.write() as tx:
        tx.run("DELETE FROM audit_events WHERE id = ?", (ids[-1],))
    result = verdict(ctx)
    assert not result.ok and result.broken_id is None
    assert "events after it were removed" in result.problem


def test_concurrent_issuance_on_threads_keeps_the_chain_valid(
        build: Callable[..., AppContext]) -> None:
    ctx = build()
    n = 12
    barrier = threading.Barrier(n)

    def work(i: int) -> Any:
        barrier.wait(timeout=30)
        return ctx.authority.submit(request(make_csr(dns=[f"c{i}.example.com"])))

    with ThreadPoolExecutor(max_workers=n) as pool:
        results = list(pool.map(work, range(n)))
    assert all(isinstance(r, Issued) for r in results)
    result = verdict(ctx)
    assert result.ok, result
    with ctx.db.read() as tx:
        issued = tx.scalar("SELECT count(*) FROM audit_events WHERE type = "
                           "'certificate.issued'")
    assert issued == n


def test_verify_on_a_live_database_sees_no_break_while_events_are_appended(
        build: Callable[..., AppContext]) -> None:
    ctx = build()
    stop = threading.Event()

    def issue_until_stopped() -> int:
        n = 0
        while not stop.is_set() and n < 40:
            ctx.authority.submit(request(make_csr(dns=[f"l{n}.example.com"])))
            n += 1
        return n

    with ThreadPoolExecutor(max_workers=2) as pool:
        writers = [pool.submit(issue_until_stopped) for _ in range(2)]
        verdicts = [verdict(ctx) for _ in range(15)]
        stop.set()
        assert sum(w.result() for w in writers) > 0
    assert all(v.ok for v in verdicts), [v for v in verdicts if not v.ok]
    assert verdict(ctx).ok


# -- through the CLI ----------------------------------------------------------------------

@pytest.fixture
def cli_dir(tmp_path: Path, db_url: str) -> Iterator[tuple[Path, dict[str, str]]]:
    """An initialised data dir on the parametrised database, and the env naming it."""
    data = tmp_path / "data"
    env = {"ENROLL_DATABASE_URL": db_url}
    assert init_data_dir(data, build_plugin_manager()) is not None
    build_context(config_mod.load(None, env, data_dir=data), create=True).db.dispose()
    yield data, env


def enroll_cli(data: Path, env: dict[str, str], *args: str
               ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "enroll.cli.main", "--data-dir", str(data),
                           *args], capture_output=True, text=True, timeout=120,
                          env=child_env(**env), check=False)


def test_audit_verify_passes_then_names_the_tampered_event(
        cli_dir: tuple[Path, dict[str, str]]) -> None:
    data, env = cli_dir
    ctx = build_context(config_mod.load(None, env, data_dir=data))
    try:
        issue(ctx, 3)
        ok = enroll_cli(data, env, "audit", "verify")
        assert ok.returncode == 0, ok.stderr
        assert ok.stdout.startswith("audit chain intact: ")
        # The export carries each event's hash: a SIEM can hold the chain's last link.
        last = json.loads(enroll_cli(data, env, "audit", "export").stdout.splitlines()[-1])
        with ctx.db.read() as tx:
            assert last["hash"] == tx.scalar("SELECT last_hash FROM audit_chain_head")
        victim = event_ids(ctx)[3]
        with ctx.db.write() as tx:
            tx.run("UPDATE audit_events SET actor = 'mallory' WHERE id = ?", (victim,))
    finally:
        ctx.db.dispose()
    broken = enroll_cli(data, env, "audit", "verify")
    assert broken.returncode == 1
    assert broken.stderr.startswith(f"audit chain broken at event {victim}: ")


# -- the migration ------------------------------------------------------------------------

def test_the_migration_chains_events_stored_before_it(db_url: str) -> None:
    from alembic import command

    db = Database(db_url)
    try:
        with migrate.migration_lock(db):
            command.upgrade(migrate.alembic_config(db), "0005_core_key_blocklist")
        with db.engine.begin() as conn:
            for i in range(5):
                conn.execute(text("INSERT INTO audit_events (at, type, actor, request_id, "
                                  "serial, details) VALUES (:at, 'old.event', :actor, NULL, "
                                  "NULL, :details)"),
                             {"at": f"2025-01-0{i + 1} 10:00:00.000000", "actor": f"a{i}",
                              "details": json.dumps({"n": i, "text": "café"})})
        migrate.upgrade(db)
        with db.read() as tx:
            result = audit_chain.verify(tx)
            assert result.ok and result.events == 5, result
            last = queries.list_audit(tx)[-1].at
        # New events extend the migrated chain.
        with db.write() as tx:
            queries.add_audit(tx, at=last, type="new.event", actor="x")
        audit_chain.chain_all(db)
        with db.read() as tx:
            result = audit_chain.verify(tx)
        assert result.ok and result.events == 6, result
    finally:
        db.dispose()


WORKER = """
import sys
from pathlib import Path
from enroll.context import build_context
from enroll.model import Issued
from enroll.testing import make_csr, request, test_config

ctx = build_context(test_config(Path(sys.argv[1]), sys.argv[2], http_port=8080,
                                https_port=8443))
for i in range(int(sys.argv[4])):
    name = f"w{sys.argv[3]}-{i}.example.com"
    assert isinstance(ctx.authority.submit(request(make_csr(dns=[name]))), Issued)
    ctx.authority.record_refusal("est:default", "unauthorized", sys.argv[3], None, {})
ctx.authority.flush_refusals()
ctx.db.dispose()
"""


def test_worker_processes_extend_one_chain(tmp_path: Path, db_url: str,
                                           build: Callable[..., AppContext]) -> None:
    ctx = build()  # the schema and the CAs, as `enroll serve` leaves them
    data_dir = Path(ctx.config.data_dir)
    workers = [subprocess.Popen([sys.executable, "-c", WORKER, str(data_dir), db_url,
                                 str(n), "8"], env=child_env(), stderr=subprocess.PIPE,
                                text=True) for n in range(3)]
    for worker in workers:
        _, err = worker.communicate(timeout=240)
        assert worker.returncode == 0, err
    result = verdict(ctx)
    assert result.ok, result
    with ctx.db.read() as tx:
        assert tx.scalar("SELECT count(*) FROM audit_events WHERE type = "
                         "'certificate.issued'") == 24
    with ctx.db.read() as tx:
        rows = refusals.open_counts(tx)
        closed = tx.all("SELECT details FROM audit_events WHERE type = 'request.refused'",
                        (), audit_events)
    # Every worker's held counts written (a run across a minute boundary has closed, and
    # chained, its first window already).
    assert sum(r["count"] for r in rows) + sum(c["details"]["count"] for c in closed) == 24
    assert ctx.authority.close_refusal_windows(
        ctx.clock.now() + dt.timedelta(minutes=2)) == len(rows)
    assert verdict(ctx).ok
