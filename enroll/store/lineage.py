"""The lineage's reads and the one write that re-links an identity renewal: which
certificate an identity holds live now, and the ``replaces``/``superseded_by`` links
between certificates (walked by `enroll.lineage`)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from enroll.store import queries
from enroll.store.schema import certificates
from enroll.store.transaction import Tx

MAX_RELINK = 16
"""How far a re-link follows ``superseded_by`` to the newest certificate."""

LINK_COLUMNS = ("serial, protocol, endpoint, profile, not_before, not_after, status, "
                "identity, replaces, superseded_by, link, created_at")


def live_serial(tx: Tx, identity: str, now: dt.datetime) -> tuple[str, str] | None:
    """(serial, profile) of the identity's current certificate if it is live (valid,
    not expired) and not yet replaced."""
    row: Any = tx.one(
        "SELECT i.serial, c.profile FROM identities i JOIN certificates c "
        "ON c.serial = i.serial WHERE i.identity = ? AND c.status = 'valid' "
        "AND c.not_after > ? AND c.superseded_by IS NULL",
        (identity, tx.when(now)), certificates)
    return None if row is None else (row["serial"], row["profile"])


def link_row(tx: Tx, serial: str) -> dict[str, Any] | None:
    """One certificate's place in its lineage (no DER: the walk reads many)."""
    row = tx.one(f"SELECT {LINK_COLUMNS} FROM certificates WHERE serial = ?",  # noqa: S608
                 (serial,), certificates)
    return None if row is None else dict(row)


def rows_of_identity(tx: Tx, identity: str, limit: int) -> list[dict[str, Any]]:
    """The identity's certificates, oldest first."""
    rows = tx.all(f"SELECT {LINK_COLUMNS} FROM certificates "  # noqa: S608
                  "WHERE identity = ? ORDER BY created_at, serial "
                  f"LIMIT {int(limit)}", (identity,), certificates)
    return [dict(r) for r in rows]


def relink(tx: Tx, serial: str, lost: str, now: dt.datetime) -> str | None:
    """A renewal linked by identity found `lost` already replaced (a concurrent issuance
    to the same identity committed first): link `serial` to the newest live certificate
    of that line instead, or to nothing. Never fails the issuance. Returns the serial
    now replaced, or None."""
    current = lost
    for _step in range(MAX_RELINK):
        row = link_row(tx, current)
        if row is None:
            break
        by = row["superseded_by"]
        if by is None:
            live = row["status"] == "valid" and row["not_after"] > now
            if live and current != serial and queries.supersede(tx, current, serial):
                tx.run("UPDATE certificates SET replaces = ? WHERE serial = ?",
                       (current, serial))
                return current
            break
        if by == serial:
            break
        current = by
    tx.run("UPDATE certificates SET replaces = NULL, link = NULL WHERE serial = ?",
           (serial,))
    return None
