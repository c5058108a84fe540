"""SQLite's one writer: threads and processes queue on `WriterLock` and wake at once."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

from enroll.store.db import Database
from enroll.store.writer_lock import WriterLock

HOLD = 0.4


def test_a_second_process_waits_for_the_writer_and_then_runs(tmp_path: Path) -> None:
    db_path = str(tmp_path / "e.db")
    lock = WriterLock(db_path)
    holder = (
        "import sys, time\n"
        "from enroll.store.writer_lock import WriterLock\n"
        f"with WriterLock({db_path!r}):\n"
        "    print('held', flush=True)\n"
        f"    time.sleep({HOLD})\n")
    proc = subprocess.Popen([sys.executable, "-c", holder], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
        started = time.monotonic()
        with lock:
            waited = time.monotonic() - started
    finally:
        proc.wait(timeout=10)
        lock.close()
    assert waited >= HOLD * 0.5  # it did wait for the other process
    assert waited < HOLD + 2.0  # and did not sleep in a busy handler for long after


def test_threads_queue_and_the_lock_is_reentrant(tmp_path: Path) -> None:
    lock = WriterLock(str(tmp_path / "e.db"))
    inside = 0
    most = 0
    guard = threading.Lock()

    def writer() -> None:
        nonlocal inside, most
        for _ in range(20):
            with lock, lock:  # re-entrant within a thread
                with guard:
                    inside += 1
                    most = max(most, inside)
                time.sleep(0.001)
                with guard:
                    inside -= 1

    threads = [threading.Thread(target=writer) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    lock.close()
    assert most == 1


def test_two_databases_on_one_file_write_concurrently_without_errors(tmp_path: Path) -> None:
    from enroll.store import migrate

    url = f"sqlite:///{tmp_path / 'e.db'}"
    first, second = Database(url), Database(url)
    migrate.upgrade(first)
    errors: list[BaseException] = []

    def audit(db: Database, who: str) -> None:
        try:
            for i in range(50):
                with db.write() as tx:
                    tx.run("INSERT INTO audit_events (at, type, actor, details) "
                           "VALUES ('2026-01-01 00:00:00.000000', 't', ?, '{}')", (f"{who}{i}",))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=audit, args=(db, name))
               for db, name in ((first, "a"), (second, "b"))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    with first.read() as tx:
        count = tx.one("SELECT COUNT(*) AS n FROM audit_events")
    first.dispose()
    second.dispose()
    assert errors == []
    assert count is not None and count["n"] >= 100
