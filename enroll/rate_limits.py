"""One rate-limit facility for every door, shared by every worker through the database.

A limit is a `Rate` (``"10/15m"``: at most 10 events in any 15 minutes) on a *name* (what
is counted: ``est.auth_failures``) and a *subject* (whom it is counted against: a source
address, an account, an account and a name). Front-ends use two calls:

- `RateLimits.check(...)` before the expensive work: raises `RateLimited` (with
  ``retry_after``) when a subject is over its rate. It only reads: one indexed SELECT for
  all the subjects it is given, and none at all for a subject this worker already saw
  refused (an in-process memo until its Retry-After), so a throttled client costs no
  scrypt, no RSA decryption and no SQL write.
- `RateLimits.hit(...)` when a counted event happens (a failed password, a new account):
  one upsert per subject, in the transaction that writes the event when there is one.

Counting is a sliding window approximated by two fixed windows (the current one and the
one before it, weighted by how much of it still lies inside the window), as most shared
rate limiters do: two rows per subject at most, exact at the window edges, never letting
more than the rate through in any window length. Rows outlive their window by one
period and are then swept (`sweep`: every worker's scheduler, and `hit` every few hundred
writes of its own).

Settings: `rates(table, key, defaults)` parses one endpoint's ``rate_limits`` table
(``name = "N/period"`` or ``"off"``), so every limit is configurable per endpoint and
has a safe default that the front-end declares.
"""

from __future__ import annotations

import hashlib
import math
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from enroll.clock import Clock
from enroll.config_values import as_duration, as_table, check_keys
from enroll.errors import ConfigError, RateLimited
from enroll.store.db import Database
from enroll.store.transaction import Tx

MAX_SUBJECT = 200
MEMO_ENTRIES = 10_000
SWEEP_EVERY = 500


@dataclass(frozen=True, slots=True)
class Rate:
    """At most `count` events in any `period` seconds."""

    count: int
    period: int

    def __str__(self) -> str:
        return f"{self.count}/{self.period}s"


def parse_rate(value: Any, key: str) -> Rate | None:
    """``"N/period"`` (period a duration: ``30s``, ``15m``, ``3h``, ``1d``) or ``"off"``."""
    if value in ("off", False):
        return None
    text = value if isinstance(value, str) else ""
    count, sep, period = text.partition("/")
    if not sep or not count.strip().isdigit():
        raise ConfigError(key, f'expected a rate like "10/15m" or "off", got {value!r}')
    number = int(count)
    if not 1 <= number <= 1_000_000_000:
        raise ConfigError(key, "the count of a rate is 1 to 1,000,000,000")
    return Rate(number, as_duration(period.strip(), key, maximum=366 * 86400))


def rates(value: Any, key: str, defaults: Mapping[str, Rate | None]) -> dict[str, Rate | None]:
    """One endpoint's ``rate_limits`` table over the front-end's `defaults` (which also
    name the allowed keys)."""
    table = as_table(value if value is not None else {}, key)
    check_keys(table, set(defaults), key)
    out = dict(defaults)
    for name, raw in table.items():
        out[name] = parse_rate(raw, f"{key}.{name}")
    return out


def _row_key(name: str, subject: str) -> str:
    if len(subject) > MAX_SUBJECT or not subject.isprintable():
        subject = "sha256:" + hashlib.sha256(subject.encode("utf-8", "surrogatepass")
                                             ).hexdigest()
    return f"{name}|{subject}"


@dataclass(frozen=True, slots=True)
class Limit:
    """One subject under one rate: what `check` and `hit` take."""

    name: str
    subject: str
    rate: Rate | None
    what: str = ""
    """What is counted, for the refusal's text ("failed validations for …"); `check`'s
    own `what` when empty."""

    @property
    def key(self) -> str:
        return _row_key(self.name, self.subject)


def over(rate: Rate, now: float, current: int, previous: int) -> int | None:
    """Seconds until one more event fits (if no more are counted meanwhile), or None if
    it fits now."""
    into = (now % rate.period) / rate.period
    if current + previous * (1.0 - into) < rate.count:
        return None
    if current < rate.count:
        # The previous window's weight falls until current + previous*(1-f) < count.
        fits_at = 1.0 - (rate.count - current) / previous
        return max(1, math.ceil((fits_at - into) * rate.period) + 1)
    # This window is full: in the next one it weighs as the previous window, and one
    # more fits once current*(1-f) < count.
    to_next = rate.period - now % rate.period
    return max(1, math.ceil(to_next + (1.0 - rate.count / current) * rate.period) + 1)


class RateLimits:
    """The facility (thread-safe; one per worker, state in the database)."""

    def __init__(self, db: Database, clock: Clock) -> None:
        self._db = db
        self._clock = clock
        self._memo: dict[str, float] = {}
        self._lock = threading.Lock()
        self._writes = 0

    def _remembered(self, key: str) -> int | None:
        until = self._memo.get(key)
        if until is None:
            return None
        left = until - time.monotonic()
        if left <= 0:
            self._memo.pop(key, None)
            return None
        return max(1, math.ceil(left))

    def _remember(self, key: str, seconds: int) -> None:
        with self._lock:
            if len(self._memo) >= MEMO_ENTRIES:
                self._memo.clear()
            self._memo[key] = time.monotonic() + seconds

    def check(self, limits: Iterable[Limit], what: str) -> None:
        """Raise `RateLimited` ("too many `what`…", with ``retry_after``) if any of
        `limits` is at its rate. Reads only."""
        active = [lim for lim in limits if lim.rate is not None]
        if not active:
            return
        for lim in active:
            wait = self._remembered(lim.key)
            if wait is not None:
                raise _refusal(what, wait, lim)
        now = self._clock.now().timestamp()
        slots = {lim.key: _slots(lim.rate, now) for lim in active if lim.rate is not None}
        counts = self._counts(slots)
        for lim in active:
            assert lim.rate is not None
            cur, prev = slots[lim.key]
            wait = over(lim.rate, now, counts.get((lim.key, cur), 0),
                        counts.get((lim.key, prev), 0))
            if wait is not None:
                self._remember(lim.key, wait)
                raise _refusal(what, wait, lim)

    def _counts(self, slots: Mapping[str, tuple[int, int]]) -> dict[tuple[str, int], int]:
        keys = list(slots)
        wanted = sorted({s for pair in slots.values() for s in pair})
        # Only placeholders are interpolated; every value is a bound parameter.
        sql = (f"SELECT k, slot, count FROM rate_counters WHERE k IN "  # noqa: S608
               f"({', '.join('?' * len(keys))}) AND slot IN ({', '.join('?' * len(wanted))})")
        with self._db.read() as tx:
            rows = tx.all(sql, [*keys, *wanted])
        return {(str(r["k"]), int(r["slot"])): int(r["count"]) for r in rows}

    def hit(self, limits: Iterable[Limit], tx: Tx | None = None) -> None:
        """Count one event against each of `limits`: in `tx` when given (the
        transaction that writes the event itself: no commit of its own), else in one
        transaction of its own."""
        active = [lim for lim in limits if lim.rate is not None]
        if not active:
            return
        if tx is not None:
            self._count(tx, active)  # no sweep here: it would open a second writer
            return
        with self._db.write() as own:
            self._count(own, active)
        self._after_write()

    def _count(self, tx: Tx, active: list[Limit]) -> None:
        now = self._clock.now().timestamp()
        for lim in active:
            assert lim.rate is not None
            slot = int(now // lim.rate.period)
            expires = (slot + 2) * lim.rate.period
            tx.run("INSERT INTO rate_counters (k, slot, count, expires_at) "
                   "VALUES (?, ?, 1, ?) ON CONFLICT (k, slot) DO UPDATE "
                   "SET count = rate_counters.count + 1", (lim.key, slot, expires))

    def _after_write(self) -> None:
        with self._lock:
            self._writes += 1
            due = self._writes % SWEEP_EVERY == 0
        if due:
            self.sweep()

    def clear(self, name: str, subject: str) -> int:
        """Forget every count of `subject` under `name` (an operator lifting a lockout).
        Other workers' memos of the refusal last until their Retry-After at most."""
        return self.clear_key(_row_key(name, subject))

    def clear_key(self, key: str) -> int:
        """`clear` by the key `counters` lists (``<limit>|<subject>``)."""
        with self._lock:
            self._memo.pop(key, None)
        with self._db.write() as tx:
            return tx.run("DELETE FROM rate_counters WHERE k = ?", (key,))

    def counters(self, limit: int = 1000) -> list[dict[str, Any]]:
        """The live counts, busiest first: key, events in the windows still read, and
        when the newest window ends."""
        now = int(self._clock.now().timestamp())
        with self._db.read() as tx:
            rows = tx.all("SELECT k, sum(count) AS events, max(expires_at) AS until "
                          "FROM rate_counters WHERE expires_at >= ? GROUP BY k "
                          "ORDER BY events DESC, k LIMIT ?", (now, limit))
        return [{"key": str(r["k"]), "events": int(r["events"]), "until": int(r["until"])}
                for r in rows]

    def sweep(self) -> int:
        """Delete the rows whose windows no check reads any more."""
        now = int(self._clock.now().timestamp())
        with self._db.write() as tx:
            return tx.run("DELETE FROM rate_counters WHERE expires_at < ?", (now,))


def _slots(rate: Rate | None, now: float) -> tuple[int, int]:
    assert rate is not None
    slot = int(now // rate.period)
    return slot, slot - 1


def _refusal(what: str, wait: int, lim: Limit) -> RateLimited:
    return RateLimited(f"too many {lim.what or what}; retry after {wait} s",
                       retry_after=wait, limit=lim.name)
