"""Refusal counts held in the process between writes, so a flood costs few SQL writes.

The first refusal of a key (window, door, reason, source, actor) seen by this process is
written at once (the operator sees it, and it opens the row); the ones after it are
counted here and added to the row in one write at most every `FLUSH_SECONDS` per key,
when the window changes, or when `Authority.flush_refusals` runs (the sweep, ``enroll
requests list``, ``enroll audit verify``). A throttled client hammering one endpoint
therefore costs one SQL write per key every few seconds per worker, not one per request.
What is held is lost if the process dies: at most `FLUSH_SECONDS` of repeats of keys
already recorded (never a key's first refusal). At most `MAX_KEYS` keys are held; past
that every refusal is written directly.
"""

from __future__ import annotations

import datetime as dt
import threading
from dataclasses import dataclass

from enroll.refusals import window_start

FLUSH_SECONDS = 5
MAX_KEYS = 4096
Key = tuple[dt.datetime, str, str, str, str]
"""(window start, door, reason, source, actor), as `enroll.refusals` keys its rows."""


@dataclass
class _Held:
    written_at: dt.datetime
    count: int = 0
    last_at: dt.datetime | None = None


@dataclass(frozen=True, slots=True)
class Batch:
    key: Key
    count: int
    last_at: dt.datetime


class RefusalBuffer:
    def __init__(self, flush_seconds: int = FLUSH_SECONDS, max_keys: int = MAX_KEYS) -> None:
        self._flush = dt.timedelta(seconds=flush_seconds)
        self._max_keys = max_keys
        self._lock = threading.Lock()
        self._held: dict[Key, _Held] = {}
        self._next_scan: dt.datetime | None = None
        self._window: dt.datetime | None = None

    def add(self, now: dt.datetime, key: Key) -> bool:
        """Count one refusal; True if the caller must write it now (its key's first
        here, or the buffer is full), False if it is held."""
        with self._lock:
            held = self._held.get(key)
            if held is None:
                if len(self._held) < self._max_keys:
                    self._held[key] = _Held(written_at=now)
                return True
            held.count += 1
            held.last_at = now
            return False

    def due(self, now: dt.datetime, *, everything: bool = False) -> list[Batch]:
        """The held counts to write now: those held longer than the flush interval and
        all of a window that has passed (all of them with `everything`). Keys of past
        windows are forgotten once written. Scans at most once per flush interval
        unless the window changed."""
        current = window_start(now)
        with self._lock:
            if not everything and self._window == current and self._next_scan is not None \
                    and now < self._next_scan:
                return []
            self._window, self._next_scan = current, now + self._flush
            out: list[Batch] = []
            for key, held in list(self._held.items()):
                old = key[0] < current
                if held.count and held.last_at is not None and (
                        everything or old or now - held.written_at >= self._flush):
                    out.append(Batch(key, held.count, held.last_at))
                    held.count, held.last_at, held.written_at = 0, None, now
                if old and not held.count:
                    del self._held[key]
            return out

    def restore(self, batches: list[Batch]) -> None:
        """Put back counts whose write failed (they are written with the next ones)."""
        with self._lock:
            for batch in batches:
                held = self._held.setdefault(batch.key, _Held(written_at=batch.last_at))
                held.count += batch.count
                held.last_at = max(batch.last_at, held.last_at or batch.last_at)
