"""What the lifecycle job (`enroll.lifecycle`) reads and records: identities whose current
certificate is due a notice, and the notices already given (table ``lifecycle_notices``).

Every read goes through ``identities`` (index ``(profile, not_after)``), so only each
identity's current certificate is considered: a device that renewed has a later
``not_after`` there and is never warned about the certificate it replaced. `claim`
inserts the notice row; the primary key ``(subject, notice)`` makes that the at-most-once
rule, whichever worker gets there first.
"""

from __future__ import annotations

import datetime as dt

from enroll.store.transaction import Tx

_DUE = ("SELECT serial FROM identities WHERE profile = ? AND status = 'valid' "
        "AND not_after > ? AND not_after <= ? AND NOT EXISTS (SELECT 1 FROM "
        "lifecycle_notices n WHERE n.subject = identities.serial AND n.notice = ?) "
        "ORDER BY not_after LIMIT ?")


def due(tx: Tx, profile: str, after: dt.datetime, until: dt.datetime, notice: str,
        limit: int) -> list[str]:
    """Serials of `profile`'s identities whose current, unrevoked certificate expires in
    (`after`, `until`] and has not had `notice`; soonest first, at most `limit`."""
    rows = tx.all(_DUE, (profile, tx.when(after), tx.when(until), notice, limit))
    return [str(r["serial"]) for r in rows]


def stragglers(tx: Tx, profile: str, to: str, endpoint: str | None,
               now: dt.datetime) -> int:
    """`profile`'s identities whose current certificate is live and was issued over
    another protocol than `to` (or, when `endpoint` is set, another endpoint)."""
    if endpoint is None:
        count = tx.scalar(
            "SELECT COUNT(*) FROM identities WHERE profile = ? AND status = 'valid' "
            "AND not_after > ? AND protocol <> ?", (profile, tx.when(now), to))
    else:
        count = tx.scalar(
            "SELECT COUNT(*) FROM identities WHERE profile = ? AND status = 'valid' "
            "AND not_after > ? AND (protocol <> ? OR endpoint <> ?)",
            (profile, tx.when(now), to, endpoint))
    return int(count or 0)


def claim(tx: Tx, subject: str, notice: str, now: dt.datetime) -> bool:
    """Record that `notice` was given about `subject`; False when it already was (by
    this worker or another: the row is the proof)."""
    return tx.run("INSERT INTO lifecycle_notices (subject, notice, at) VALUES (?, ?, ?) "
                  "ON CONFLICT (subject, notice) DO NOTHING",
                  (subject, notice, tx.when(now))) == 1


def given(tx: Tx, subject: str) -> list[str]:
    """The notices recorded about `subject` (oldest first)."""
    rows = tx.all("SELECT notice FROM lifecycle_notices WHERE subject = ? ORDER BY at, "
                  "notice", (subject,))
    return [str(r["notice"]) for r in rows]


def purge(tx: Tx, before: dt.datetime) -> int:
    """Delete the certificate notices recorded before `before` (never a migration
    deadline's); how many."""
    return tx.run("DELETE FROM lifecycle_notices WHERE at < ? AND notice NOT LIKE ?",
                  (tx.when(before), "migration.%"))
