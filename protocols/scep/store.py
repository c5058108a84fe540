"""SCEP's own tables: RA keys (one per endpoint and CA, shared by every worker) and
one-time challenges. Certificates and requests never live here: they go through the
core's pipeline. Exactly-once rules are enforced by the database (primary keys and a
conditional UPDATE), not by locks in Python.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import (
    Column,
    Connection,
    DateTime,
    Index,
    Integer,
    LargeBinary,
    String,
    Table,
    Text,
    func,
    insert,
    select,
    update,
)

from enroll.store.schema import metadata

UTC_DT = DateTime(timezone=True)

scep_ra_keys = Table(
    "scep_ra_keys", metadata,
    Column("endpoint", String(64), primary_key=True),
    Column("ca", String(64), primary_key=True),
    Column("generation", Integer, nullable=False),
    Column("certificate_pem", Text, nullable=False),
    Column("key_blob", LargeBinary, nullable=False),
    Column("created_at", UTC_DT, nullable=False),
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


def get_ra(conn: Connection, endpoint: str, ca: str) -> StoredRA | None:
    row = conn.execute(select(scep_ra_keys).where(
        scep_ra_keys.c.endpoint == endpoint, scep_ra_keys.c.ca == ca)).first()
    if row is None:
        return None
    return StoredRA(row.endpoint, row.ca, row.generation, row.certificate_pem,
                    bytes(row.key_blob))


def insert_ra(conn: Connection, ra: StoredRA, now: dt.datetime) -> None:
    """Raises IntegrityError if another worker stored one first."""
    conn.execute(insert(scep_ra_keys).values(
        endpoint=ra.endpoint, ca=ra.ca, generation=ra.generation,
        certificate_pem=ra.certificate_pem, key_blob=ra.key_blob, created_at=now))


def replace_ra(conn: Connection, ra: StoredRA, previous_generation: int,
               now: dt.datetime) -> bool:
    """Swap in a renewed RA only if nobody renewed it first."""
    result = conn.execute(update(scep_ra_keys).where(
        scep_ra_keys.c.endpoint == ra.endpoint, scep_ra_keys.c.ca == ra.ca,
        scep_ra_keys.c.generation == previous_generation).values(
        generation=ra.generation, certificate_pem=ra.certificate_pem,
        key_blob=ra.key_blob, created_at=now))
    return result.rowcount == 1


def insert_challenge(conn: Connection, *, digest: str, endpoint: str, created_by: str,
                     now: dt.datetime, expires_at: dt.datetime) -> None:
    conn.execute(insert(scep_challenges).values(
        digest=digest, endpoint=endpoint, created_by=created_by, created_at=now,
        expires_at=expires_at, used_at=None, used_by=None))


def consume_challenge(conn: Connection, *, digest: str, endpoint: str, now: dt.datetime,
                      used_by: str) -> bool:
    """Mark a one-time challenge used; True for exactly one caller, however many race."""
    result = conn.execute(update(scep_challenges).where(
        scep_challenges.c.digest == digest, scep_challenges.c.endpoint == endpoint,
        scep_challenges.c.used_at.is_(None),
        scep_challenges.c.expires_at > now).values(used_at=now, used_by=used_by[:256]))
    return result.rowcount == 1


def count_challenges(conn: Connection, endpoint: str | None = None,
                     unused_only: bool = False) -> int:
    query = select(func.count()).select_from(scep_challenges)
    if endpoint is not None:
        query = query.where(scep_challenges.c.endpoint == endpoint)
    if unused_only:
        query = query.where(scep_challenges.c.used_at.is_(None))
    return int(conn.execute(query).scalar_one())


def purge_expired_challenges(conn: Connection, before: dt.datetime) -> int:
    from sqlalchemy import delete

    result = conn.execute(delete(scep_challenges).where(scep_challenges.c.expires_at < before))
    return int(result.rowcount)

