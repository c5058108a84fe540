"""SCEP's own tables: RA keys (every generation of each endpoint's RA, shared by every
worker) and
one-time challenges. Certificates and requests never live here: they go through the
core's pipeline. Exactly-once rules are enforced by the database (primary keys and a
conditional UPDATE), not by locks in Python. Every function takes a `Tx` from
`Database.write()` / `Database.read()`.

One-time challenges are kept until they expire and are then deleted: each insert
purges a bounded batch of expired rows (used or not), so the table stays as small as
the challenges still live, without a scheduler.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Column, Index, Integer, LargeBinary, String, Table, Text

from enroll.store.columns import UTC_DT
from enroll.store.schema import metadata
from enroll.store.transaction import Tx

PURGE_BATCH = 100
"""Expired challenges deleted per insert at most: bounded work on the request path,
and still faster than any operator or MDM can create them."""

scep_ra_keys = Table(
    "scep_ra_keys", metadata,
    Column("endpoint", String(64), primary_key=True),
    Column("ca", String(64), primary_key=True),
    Column("generation", Integer, primary_key=True),
    Column("certificate_pem", Text, nullable=False),
    Column("key_blob", LargeBinary, nullable=False),
    Column("created_at", UTC_DT, nullable=False),
    # When this generation becomes current (GetCACert, CertRep signer); NULL: when it
    # was created (rows from before generations were kept).
    Column("activates_at", UTC_DT, nullable=True),
)

scep_challenges = Table(
    "scep_challenges", metadata,
    Column("digest", String(64), primary_key=True),
    Column("endpoint", String(64), nullable=False),
    Column("created_by", String(256), nullable=False),
    Column("created_at", UTC_DT, nullable=False),
    Column("expires_at", UTC_DT, nullable=False),
    Column("used_at", UTC_DT, nullable=True),
    Column("used_by", String(256), nullable=True),
    Index("ix_scep_challenges_expires_at", "expires_at"),
)


@dataclass(frozen=True, slots=True)
class StoredRA:
    endpoint: str
    ca: str
    generation: int
    certificate_pem: str
    key_blob: bytes
    activates_at: dt.datetime | None = None


_RA_COLUMNS = "endpoint, ca, generation, certificate_pem, key_blob, created_at, activates_at"


def _stored(row: Any) -> StoredRA:
    return StoredRA(endpoint=row["endpoint"], ca=row["ca"], generation=row["generation"],
                    certificate_pem=row["certificate_pem"], key_blob=bytes(row["key_blob"]),
                    activates_at=row["activates_at"] or row["created_at"])


def get_ra(tx: Tx, endpoint: str, ca: str, generation: int | None = None) -> StoredRA | None:
    """One generation of the RA of (endpoint, ca); without `generation`, the newest."""
    if generation is None:
        row = tx.one(f"SELECT {_RA_COLUMNS} FROM scep_ra_keys WHERE endpoint = ? "  # noqa: S608 - constant
                     "AND ca = ? ORDER BY generation DESC LIMIT 1", (endpoint, ca),
                     scep_ra_keys)
    else:
        row = tx.one(f"SELECT {_RA_COLUMNS} FROM scep_ra_keys WHERE endpoint = ? "  # noqa: S608 - constant
                     "AND ca = ? AND generation = ?", (endpoint, ca, generation),
                     scep_ra_keys)
    return None if row is None else _stored(row)


def ra_generations(tx: Tx, endpoint: str, ca: str) -> list[tuple[int, dt.datetime]]:
    """(generation, activates at) of every stored RA of (endpoint, ca), oldest first:
    what a worker reads on each use to agree with every other one."""
    rows = tx.all("SELECT generation, created_at, activates_at FROM scep_ra_keys WHERE "
                  "endpoint = ? AND ca = ? ORDER BY generation", (endpoint, ca),
                  scep_ra_keys)
    return [(int(r["generation"]), r["activates_at"] or r["created_at"]) for r in rows]


def insert_ra(tx: Tx, ra: StoredRA, now: dt.datetime) -> None:
    """Store a new generation. Raises IntegrityError if another worker stored this
    generation first (the primary key decides, not a lock)."""
    tx.insert(scep_ra_keys, {
        "endpoint": ra.endpoint, "ca": ra.ca, "generation": ra.generation,
        "certificate_pem": ra.certificate_pem, "key_blob": ra.key_blob, "created_at": now,
        "activates_at": ra.activates_at or now})


def insert_challenge(tx: Tx, *, digest: str, endpoint: str, created_by: str,
                     now: dt.datetime, expires_at: dt.datetime) -> None:
    """Store a one-time challenge, and purge up to `PURGE_BATCH` expired ones."""
    purge_expired_challenges(tx, now, limit=PURGE_BATCH)
    tx.insert(scep_challenges, {
        "digest": digest, "endpoint": endpoint, "created_by": created_by,
        "created_at": now, "expires_at": expires_at, "used_at": None, "used_by": None})


def consume_challenge(tx: Tx, *, digest: str, endpoint: str, now: dt.datetime,
                      used_by: str) -> bool:
    """Mark a one-time challenge used; True for exactly one caller, however many race."""
    return tx.run("UPDATE scep_challenges SET used_at = ?, used_by = ? WHERE digest = ? "
                  "AND endpoint = ? AND used_at IS NULL AND expires_at > ?",
                  (tx.when(now), used_by[:256], digest, endpoint, tx.when(now))) == 1


def release_challenge(tx: Tx, *, digest: str, endpoint: str, used_by: str) -> bool:
    """Undo `consume_challenge` for the request that consumed it and was then refused;
    the challenge keeps its expiry."""
    return tx.run("UPDATE scep_challenges SET used_at = NULL, used_by = NULL WHERE "
                  "digest = ? AND endpoint = ? AND used_by = ? AND used_at IS NOT NULL",
                  (digest, endpoint, used_by[:256])) == 1


def count_live_challenges(tx: Tx, endpoint: str, now: dt.datetime) -> int:
    """The endpoint's challenges still usable: unused and not expired."""
    return int(tx.scalar("SELECT count(*) FROM scep_challenges WHERE endpoint = ? AND "
                         "used_at IS NULL AND expires_at > ?", (endpoint, tx.when(now))))


def count_challenges(tx: Tx, endpoint: str | None = None, unused_only: bool = False) -> int:
    conditions = ["1 = 1"]
    params: list[str] = []
    if endpoint is not None:
        conditions.append("endpoint = ?")
        params.append(endpoint)
    if unused_only:
        conditions.append("used_at IS NULL")
    return int(tx.scalar("SELECT count(*) FROM scep_challenges WHERE "  # noqa: S608 - constant fragments
                         + " AND ".join(conditions), params))


def purge_expired_challenges(tx: Tx, before: dt.datetime, limit: int | None = None) -> int:
    """Delete challenges that expired before `before`, used or not (at most `limit` of
    them, oldest first); returns how many. An expired challenge can never be consumed
    again, so nothing reads it."""
    if limit is None:
        return tx.run("DELETE FROM scep_challenges WHERE expires_at < ?", (tx.when(before),))
    # A bounded DELETE, portable: PostgreSQL has no DELETE ... LIMIT.
    return tx.run("DELETE FROM scep_challenges WHERE digest IN (SELECT digest FROM "
                  "scep_challenges WHERE expires_at < ? ORDER BY expires_at LIMIT ?)",
                  (tx.when(before), int(limit)))


def ra_key_blobs(tx: Tx) -> list[tuple[str, str, bytes]]:
    """(endpoint, ca, key blob) of every RA generation, for re-sealing."""
    rows = tx.all("SELECT endpoint, ca, key_blob FROM scep_ra_keys "
                  "ORDER BY endpoint, ca, generation",
                  (), scep_ra_keys)
    return [(str(r["endpoint"]), str(r["ca"]), bytes(r["key_blob"])) for r in rows]


def replace_ra_key_blob(tx: Tx, endpoint: str, ca: str, old: bytes, new: bytes) -> bool:
    """Swap an RA's key blob only if it is still `old`."""
    return tx.run("UPDATE scep_ra_keys SET key_blob = ? WHERE endpoint = ? AND ca = ? AND "
                  "key_blob = ?", (new, endpoint, ca, old)) == 1
