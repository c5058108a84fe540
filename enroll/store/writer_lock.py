"""SQLite's one writer, queued in the open instead of in SQLite's busy handler.

The rule (docs/architecture.md, "Writes"): on SQLite every write transaction holds the
database's `WriterLock` from ``BEGIN IMMEDIATE`` to ``COMMIT``; nothing else serialises
work. Threads of one worker queue on a re-entrant lock; worker processes (and CLI
commands) queue on an ``flock`` of ``<database>-writer.lock`` beside the file. Both wake
the next writer the moment the previous one commits. Without them a writer that finds
the database locked sleeps in SQLite's busy handler, in steps of up to 100 ms, which is
what turned two workers into one.

PostgreSQL takes concurrent writers; exactly-once rules are constraints and conditional
updates there, so no lock is taken at all.
"""

from __future__ import annotations

import fcntl
import os
import threading
from types import TracebackType


class WriterLock:
    """Re-entrant within a thread; exclusive across threads and processes."""

    def __init__(self, database_path: str | None) -> None:
        self._lock = threading.RLock()
        self._depth = 0
        self._path = f"{database_path}-writer.lock" if database_path else None
        self._fd: int | None = None

    def __enter__(self) -> WriterLock:
        self._lock.acquire()
        if self._depth == 0 and self._path is not None:
            try:
                if self._fd is None:
                    self._fd = os.open(self._path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC,
                                       0o600)
                fcntl.flock(self._fd, fcntl.LOCK_EX)  # blocks without the GIL
            except BaseException:
                self._lock.release()
                raise
        self._depth += 1
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._depth -= 1
        if self._depth == 0 and self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
        self._lock.release()

    def close(self) -> None:
        """Close the lock file (it is opened again by the next writer, if any)."""
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None
