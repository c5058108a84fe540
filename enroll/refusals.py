"""Refusals in the audit trail, aggregated so a flood costs a bounded number of rows.

A front-end refuses a request (bad CSR, failed authentication, policy, throttling) and
calls `Door.record_refusal(door, reason, source, actor, details)`. Refusals are counted
in ``audit_refusals``, one row per (window, door, reason, source, actor), updated in
place: the first refusal of a key in a window inserts its row (keeping its `details` as
the sample), every further one adds to its count (`Authority.record_refusal` holds
repeats in the worker and adds them in one write every few seconds:
`enroll.refusal_buffer`). A window holds at most
`MAX_KEYS_PER_WINDOW` keys; once full, further new keys are counted in one overflow row
per (door, reason) with source and actor ``*``. So a window costs at most
``MAX_KEYS_PER_WINDOW`` rows plus one per (door, reason), however many refusals arrive.

A window is open for `WINDOW_SECONDS`. Once it has passed, its rows are *closed*: each
becomes one ``request.refused`` event of the hash-chained audit log (`enroll.store.audit_chain`)
carrying its count, first and last time and sample details, and is deleted from
``audit_refusals``. Closing happens on the next refusal that opens a new key, and in
`close_windows` (``Authority.close_refusal_windows``, run by the sweep and by
``enroll requests list`` / ``enroll audit verify``). Until its window closes a refusal
is counted but not yet chained (at most one window plus the sweep interval).

`attributed` is how the authenticated actor travels with a refusal: a front-end that
authenticated the requester wraps the rest of the work in it, and any `EnrollError`
leaving the block carries ``actor``.
"""

# ruff: noqa: S608 - the SQL below interpolates only constants (placeholders, limits,
# FOR UPDATE); every value is a bound parameter.
from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from enroll import errors
from enroll.store import audit_chain
from enroll.store.schema import audit_refusals
from enroll.store.transaction import Tx

WINDOW_SECONDS = 60
MAX_KEYS_PER_WINDOW = 256
OVERFLOW = "*"
UNAUTHENTICATED = "unauthenticated"
MAX_DETAIL_KEYS = 8
MAX_DETAIL_TEXT = 200

_CODES: dict[type[errors.EnrollError], str] = {
    errors.MalformedInput: "malformed",
    errors.BadCSR: "bad_csr",
    errors.Unauthorized: "unauthorized",
    errors.MigrationRequired: "migration_required",
    errors.PolicyDenied: "policy_denied",
    errors.NotFound: "not_found",
    errors.Conflict: "conflict",
    errors.RateLimited: "rate_limited",
    errors.Unavailable: "unavailable",
}


def reason_code(exc: BaseException) -> str:
    """A short code for a refusal: the core error class it is (``bad_csr``,
    ``unauthorized``…); front-ends may pass a finer one of their own."""
    for cls in type(exc).__mro__:
        code = _CODES.get(cls)
        if code is not None:
            return str(code)
    return type(exc).__name__[:64]


def actor_of(exc: BaseException) -> str | None:
    """The authenticated actor an `attributed` block gave the refusal, if any."""
    actor = getattr(exc, "actor", None)
    return actor if isinstance(actor, str) else None


@contextmanager
def attributed(actor: str) -> Iterator[None]:
    """Any `EnrollError` raised in the block is a refusal of `actor` (the innermost
    attribution wins)."""
    try:
        yield
    except errors.EnrollError as exc:
        if actor_of(exc) is None:
            exc.actor = actor  # type: ignore[attr-defined]
        raise


def window_start(now: dt.datetime, seconds: int = WINDOW_SECONDS) -> dt.datetime:
    epoch = int(now.timestamp())
    return dt.datetime.fromtimestamp(epoch - epoch % seconds, dt.UTC)


def bounded_details(details: Mapping[str, Any] | None) -> dict[str, Any]:
    """At most `MAX_DETAIL_KEYS` entries, each text cut to `MAX_DETAIL_TEXT`: a client
    controls some of these, and a refusal must stay cheap to store."""
    out: dict[str, Any] = {}
    for key, value in list((details or {}).items())[:MAX_DETAIL_KEYS]:
        if not isinstance(value, int | float | bool) and value is not None:
            value = str(value)[:MAX_DETAIL_TEXT]
        out[str(key)[:64]] = value
    return out


def key_of(door: str, reason: str, source: str | None, actor: str | None
           ) -> tuple[str, str, str, str]:
    """The stored form of a refusal's key (bounded; None is stored as '')."""
    return door[:128], reason[:64], (source or "")[:64], (actor or "")[:512]


def record(tx: Tx, now: dt.datetime, door: str, reason: str, source: str | None,
           actor: str | None, details: Mapping[str, Any] | None, *, count: int = 1,
           window: dt.datetime | None = None) -> None:
    """Count `count` refusals (at `now`) in the window starting at `window` (default:
    the current one); see the module docstring."""
    start = window or window_start(now)
    key = key_of(door, reason, source, actor)
    if _bump(tx, start, now, key, count):
        return
    close_windows(tx, now)
    keys = int(tx.scalar("SELECT count(*) FROM audit_refusals WHERE window_start = ?",
                         (tx.when(start),)))
    if keys >= MAX_KEYS_PER_WINDOW:
        key = (key[0], key[1], OVERFLOW, OVERFLOW)
        if _bump(tx, start, now, key, count):
            return
    # Two workers may open the same key at once: the loser of the insert counts into
    # the winner's row.
    tx.run("INSERT INTO audit_refusals (window_start, door, reason, source, actor, count, "
           f"first_at, last_at, details) VALUES (?, ?, ?, ?, ?, ?, ?, ?, {tx.json_param}) "
           "ON CONFLICT (window_start, door, reason, source, actor) DO UPDATE SET "
           "count = audit_refusals.count + excluded.count, last_at = excluded.last_at",
           (tx.when(start), *key, count, tx.when(now), tx.when(now),
            tx.json(bounded_details(details))))


def _bump(tx: Tx, start: dt.datetime, now: dt.datetime,
          key: tuple[str, str, str, str], count: int) -> bool:
    return tx.run("UPDATE audit_refusals SET count = count + ?, last_at = ? "
                  "WHERE window_start = ? AND door = ? AND reason = ? AND source = ? "
                  "AND actor = ?", (count, tx.when(now), tx.when(start), *key)) == 1


def close_windows(tx: Tx, now: dt.datetime) -> int:
    """Chain every row of the windows that have passed (one ``request.refused`` event
    each) and delete them; returns how many were closed."""
    start = window_start(now)
    if tx.scalar("SELECT 1 FROM audit_refusals WHERE window_start < ? LIMIT 1",
                 (tx.when(start),)) is None:
        return 0
    # Queue on the chain head first: two closers never chain the same rows twice (the
    # second reads the rows again once the first has committed, and finds them gone).
    audit_chain.lock_head(tx)
    rows = tx.all("SELECT id, window_start, door, reason, source, actor, count, first_at, "
                  "last_at, details FROM audit_refusals WHERE window_start < ? ORDER BY id",
                  (tx.when(start),), audit_refusals)
    for row in rows:
        audit_chain.append(
            tx, at=row["last_at"], type="request.refused",
            actor=row["actor"] or UNAUTHENTICATED,
            details={"door": row["door"], "reason": row["reason"],
                     "source": row["source"] or None, "count": int(row["count"]),
                     "first_at": row["first_at"].isoformat(),
                     "last_at": row["last_at"].isoformat(),
                     "window_start": row["window_start"].isoformat(),
                     "window_seconds": WINDOW_SECONDS, "sample": row["details"] or {}})
        tx.run("DELETE FROM audit_refusals WHERE id = ?", (row["id"],))
    return len(rows)


def open_counts(tx: Tx) -> list[dict[str, Any]]:
    """The rows of the windows not yet closed (for operators and tests)."""
    return tx.all("SELECT window_start, door, reason, source, actor, count, first_at, "
                  "last_at, details FROM audit_refusals ORDER BY id", (), audit_refusals)
