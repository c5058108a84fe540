"""The audit log as a hash chain: every event carries the previous event's hash and its own.

    hash = SHA-256( canonical(at, type, actor, request_id, serial, details) || prev_hash )

`canonical` is JSON with sorted keys and no whitespace over the values as they read back
from the store (timestamps as UTC ISO 8601 with microseconds, ``details`` through the
JSON column's own encoding), so a hash computed at insert time is recomputed exactly by
`verify`. The first event's ``prev_hash`` is `GENESIS`.

One writer extends the chain at a time: `append` reads the one-row ``audit_chain_head``
(``SELECT ... FOR UPDATE`` on PostgreSQL, so concurrent transactions of every worker
queue on that row until the holder commits; on SQLite the database's writer lock already
serialises every write transaction) and moves it to the new event in the same
transaction as the event, so the head and the last event always commit together. The
event ids are the chain's order; deleting, editing or reordering any event, or
truncating the tail (the head then names a hash no event has), breaks the chain at a
place `verify` names.
"""

# ruff: noqa: S608 - the SQL below interpolates only constants (placeholders, limits,
# FOR UPDATE); every value is a bound parameter.
from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from enroll.store import columns
from enroll.store.schema import audit_events
from enroll.store.transaction import Tx

GENESIS = "0" * 64
HEAD_ID = 1
VERIFY_BATCH = 2000


def canonical(*, at: dt.datetime, type: str, actor: str, request_id: str | None,
              serial: str | None, details: Any) -> bytes:
    """The bytes an event's hash covers (besides the previous hash)."""
    stamp = at.astimezone(dt.UTC).isoformat(timespec="microseconds") if at.tzinfo \
        else at.replace(tzinfo=dt.UTC).isoformat(timespec="microseconds")
    # Through the JSON column's encoding and back: what is hashed is what is stored.
    stored = json.loads(columns.encode_json(details if details is not None else {}))
    return json.dumps({"at": stamp, "type": type, "actor": actor, "request_id": request_id,
                       "serial": serial, "details": stored}, sort_keys=True,
                      separators=(",", ":"), ensure_ascii=False).encode()


def event_hash(prev_hash: str, **fields: Any) -> str:
    return hashlib.sha256(canonical(**fields) + prev_hash.encode()).hexdigest()


def lock_head(tx: Tx) -> str:
    """The chain head's hash, locked for this transaction (the row is made by the
    migration; made here too, once, if a schema lacks it)."""
    lock = "" if tx.sqlite else " FOR UPDATE"
    sql = f"SELECT last_hash FROM audit_chain_head WHERE id = ?{lock}"
    found = tx.scalar(sql, (HEAD_ID,))
    if found is None:
        tx.run("INSERT INTO audit_chain_head (id, last_hash) VALUES (?, ?) "
               "ON CONFLICT (id) DO NOTHING", (HEAD_ID, GENESIS))
        found = tx.scalar(sql, (HEAD_ID,))
    return str(found)


def append(tx: Tx, *, at: dt.datetime, type: str, actor: str,
           request_id: str | None = None, serial: str | None = None,
           details: Mapping[str, Any] | None = None) -> str:
    """Insert one event at the end of the chain; returns its hash."""
    body = dict(details or {})
    prev = lock_head(tx)
    digest = event_hash(prev, at=at, type=type, actor=actor, request_id=request_id,
                        serial=serial, details=body)
    tx.insert(audit_events, {"at": at, "type": type, "actor": actor,
                             "request_id": request_id, "serial": serial, "details": body,
                             "prev_hash": prev, "hash": digest})
    tx.run("UPDATE audit_chain_head SET last_hash = ? WHERE id = ?", (digest, HEAD_ID))
    return digest


@dataclass(frozen=True, slots=True)
class Verdict:
    events: int
    """Events checked."""
    broken_id: int | None
    """The first event that does not verify (None: the chain is intact)."""
    problem: str

    @property
    def ok(self) -> bool:
        return self.broken_id is None and not self.problem


def verify(tx: Tx) -> Verdict:
    """Walk the chain in id order, in batches; the first event whose ``prev_hash`` is
    not its predecessor's hash, or whose own hash does not match its fields, is named.
    Finally the head must name the last event's hash (else events were cut off).

    Safe on a live database: on PostgreSQL each batch sees what has committed by then,
    so events appended while the walk runs are walked too before the head is judged
    (the head and its event commit together)."""
    prev = GENESIS
    last_id = 0
    count = 0
    while True:
        rows = tx.all("SELECT id, at, type, actor, request_id, serial, details, prev_hash, "
                      "hash FROM audit_events WHERE id > ? ORDER BY id "
                      f"LIMIT {VERIFY_BATCH}", (last_id,), audit_events)
        for row in rows:
            count += 1
            if row["prev_hash"] != prev:
                return Verdict(count, row["id"], "its prev_hash is not the hash of the "
                               "event before it (an event was removed, added or reordered)")
            expected = event_hash(prev, at=row["at"], type=row["type"], actor=row["actor"],
                                  request_id=row["request_id"], serial=row["serial"],
                                  details=row["details"])
            if row["hash"] != expected:
                return Verdict(count, row["id"], "its hash does not match its fields "
                               "(the event was altered)")
            prev = row["hash"]
            last_id = row["id"]
        if len(rows) == VERIFY_BATCH:
            continue
        head = tx.scalar("SELECT last_hash FROM audit_chain_head WHERE id = ?", (HEAD_ID,))
        if (head or GENESIS) == prev:
            return Verdict(count, None, "")
        if tx.scalar("SELECT 1 FROM audit_events WHERE id > ? LIMIT 1", (last_id,)) is None:
            return Verdict(count, None, "the chain head does not match the last event "
                           f"(id {last_id}): events after it were removed")
        # Events were appended during the walk: walk them too.
