"""The audit log as a hash chain: every chained event carries its place in the chain,
the previous event's hash and its own.

    hash = SHA-256( canonical(at, type, actor, request_id, serial, details) || prev_hash )

`canonical` is JSON with sorted keys and no whitespace over the values as they read back
from the store (timestamps as UTC ISO 8601 with microseconds, ``details`` through the
JSON column's own encoding), so a hash computed when an event is chained is recomputed
exactly by `verify`. The first event's ``prev_hash`` is `GENESIS`.

Writers never wait for the chain: `append` inserts the event unchained (no lock, so
issuances on every worker and host commit in parallel; a chain head locked by every
writer until its commit serialised them all, and at 50 ms of database latency cost more
than a request's timeout). `chain_pending` then seals the committed events that are not
yet chained, oldest id first: it locks the one-row ``audit_chain_head`` (``SELECT ...
FOR UPDATE``; SQLite's writer lock), gives each event the next ``chain_seq``, its
``prev_hash`` and ``hash``, and moves the head, in one transaction. Every worker's
scheduler runs it every few seconds and ``enroll audit verify`` runs it first; an event
committed late (a long transaction) is simply chained in a later batch.

Once chained, deleting, editing or reordering any event, or truncating the tail (the
head then names a sequence number and hash no event has), breaks the chain at a place
`verify` names. Until it is chained (seconds), an event is as unprotected as any row.
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
CHAIN_BATCH = 2000


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


def lock_head(tx: Tx) -> tuple[str, int]:
    """The chain head (last hash, last sequence number), locked for this transaction
    (the row is made by the migration; made here too, once, if a schema lacks it)."""
    lock = "" if tx.sqlite else " FOR UPDATE"
    sql = f"SELECT last_hash, last_seq FROM audit_chain_head WHERE id = ?{lock}"
    found = tx.one(sql, (HEAD_ID,))
    if found is None:
        tx.run("INSERT INTO audit_chain_head (id, last_hash, last_seq) VALUES (?, ?, 0) "
               "ON CONFLICT (id) DO NOTHING", (HEAD_ID, GENESIS))
        found = tx.one(sql, (HEAD_ID,))
        assert found is not None
    return str(found["last_hash"]), int(found["last_seq"])


def append(tx: Tx, *, at: dt.datetime, type: str, actor: str,
           request_id: str | None = None, serial: str | None = None,
           details: Mapping[str, Any] | None = None) -> None:
    """Insert one event, to be chained by the next `chain_pending` (takes no lock)."""
    tx.insert(audit_events, {"at": at, "type": type, "actor": actor,
                             "request_id": request_id, "serial": serial,
                             "details": dict(details or {})})


def chain_pending(tx: Tx, limit: int = CHAIN_BATCH) -> int:
    """Chain up to `limit` committed events not yet chained, oldest id first; returns
    how many. Concurrent callers queue on the head row (the second finds them done)."""
    prev, seq = lock_head(tx)
    rows = tx.all("SELECT id, at, type, actor, request_id, serial, details FROM "
                  f"audit_events WHERE chain_seq IS NULL ORDER BY id LIMIT {int(limit)}",
                  (), audit_events)
    for row in rows:
        seq += 1
        digest = event_hash(prev, at=row["at"], type=row["type"], actor=row["actor"],
                            request_id=row["request_id"], serial=row["serial"],
                            details=row["details"])
        tx.run("UPDATE audit_events SET chain_seq = ?, prev_hash = ?, hash = ? "
               "WHERE id = ? AND chain_seq IS NULL", (seq, prev, digest, row["id"]))
        prev = digest
    if rows:
        tx.run("UPDATE audit_chain_head SET last_hash = ?, last_seq = ? WHERE id = ?",
               (prev, seq, HEAD_ID))
    return len(rows)


def chain_all(db: Any) -> int:
    """`chain_pending` in batches until nothing is left (each batch one transaction);
    how many were chained. The scheduler's job and the first step of ``audit verify``."""
    total = 0
    while True:
        with db.write() as tx:
            done = chain_pending(tx)
        total += done
        if done < CHAIN_BATCH:
            return total


@dataclass(frozen=True, slots=True)
class Verdict:
    events: int
    """Chained events checked."""
    broken_id: int | None
    """The first event that does not verify (None: the chain is intact)."""
    problem: str
    pending: int = 0
    """Events stored but not chained yet (chained within seconds by any worker)."""

    @property
    def ok(self) -> bool:
        return self.broken_id is None and not self.problem


def verify(tx: Tx) -> Verdict:
    """Walk the chain in sequence order, in batches; the first event whose sequence
    number is not its predecessor's plus one, whose ``prev_hash`` is not its
    predecessor's hash, or whose own hash does not match its fields, is named. Finally
    the head must name the last event (else events were cut off).

    Safe on a live database: on PostgreSQL each batch sees what has committed by then,
    so events chained while the walk runs are walked too before the head is judged
    (the head and its events commit together)."""
    prev, last_seq, count = GENESIS, 0, 0
    while True:
        rows = tx.all("SELECT id, chain_seq, at, type, actor, request_id, serial, details, "
                      "prev_hash, hash FROM audit_events WHERE chain_seq > ? "
                      f"ORDER BY chain_seq LIMIT {VERIFY_BATCH}", (last_seq,), audit_events)
        for row in rows:
            count += 1
            if int(row["chain_seq"]) != last_seq + 1 or row["prev_hash"] != prev:
                return Verdict(count, row["id"], "its prev_hash is not the hash of the "
                               "event before it (an event was removed, added or reordered)")
            expected = event_hash(prev, at=row["at"], type=row["type"], actor=row["actor"],
                                  request_id=row["request_id"], serial=row["serial"],
                                  details=row["details"])
            if row["hash"] != expected:
                return Verdict(count, row["id"], "its hash does not match its fields "
                               "(the event was altered)")
            prev, last_seq = row["hash"], int(row["chain_seq"])
        if len(rows) == VERIFY_BATCH:
            continue
        head = tx.one("SELECT last_hash, last_seq FROM audit_chain_head WHERE id = ?",
                      (HEAD_ID,))
        head_hash, head_seq = (str(head["last_hash"]), int(head["last_seq"])) if head \
            else (GENESIS, 0)
        pending = int(tx.scalar("SELECT count(*) FROM audit_events WHERE chain_seq IS NULL"))
        if (head_hash, head_seq) == (prev, last_seq):
            return Verdict(count, None, "", pending)
        if head_seq <= last_seq or tx.scalar(
                "SELECT 1 FROM audit_events WHERE chain_seq > ? LIMIT 1",
                (last_seq,)) is None:
            return Verdict(count, None, "the chain head does not match the last event "
                           f"(number {last_seq}): events after it were removed", pending)
        # Events were chained during the walk: walk them too.
