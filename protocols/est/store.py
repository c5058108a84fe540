"""EST's own tables: Basic users managed from the CLI, and server-generated keys.

- ``est_users``: (endpoint label, user name) -> password hash, added with
  ``enroll est user add``; users in the config file work without it.
- ``est_server_keys``: a key made by /serverkeygen, AES-GCM encrypted. Kept while its
  request waits for approval (the client comes back for it), and for good when the
  endpoint archives keys (``archive_keys = true``) so an operator can recover it with
  ``enroll est archive export``.

Certificates and requests never live here: they go through the core's pipeline.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import (
    Boolean,
    Column,
    Connection,
    DateTime,
    LargeBinary,
    String,
    Table,
    delete,
    insert,
    select,
    update,
)

from enroll.store.db import aware
from enroll.store.schema import metadata

UTC_DT = DateTime(timezone=True)

est_users = Table(
    "est_users", metadata,
    Column("endpoint", String(64), primary_key=True),
    Column("username", String(128), primary_key=True),
    Column("password_hash", String(256), nullable=False),
    Column("created_at", UTC_DT, nullable=False),
)

est_server_keys = Table(
    "est_server_keys", metadata,
    Column("request_id", String(36), primary_key=True),
    Column("endpoint", String(64), nullable=False),
    Column("serial", String(40), nullable=True, index=True),
    Column("key_type", String(16), nullable=False),
    Column("encrypted_key", LargeBinary, nullable=False),
    Column("archived", Boolean, nullable=False),
    Column("created_at", UTC_DT, nullable=False),
)


@dataclass(frozen=True, slots=True)
class StoredKey:
    request_id: str
    endpoint: str
    serial: str | None
    key_type: str
    encrypted_key: bytes
    archived: bool
    created_at: dt.datetime


def get_user_hash(conn: Connection, endpoint: str, username: str) -> str | None:
    row = conn.execute(select(est_users.c.password_hash).where(
        est_users.c.endpoint == endpoint, est_users.c.username == username)).first()
    return None if row is None else str(row[0])


def put_user(conn: Connection, endpoint: str, username: str, password_hash: str,
             now: dt.datetime) -> bool:
    """Add a user or replace its password; True if it was new."""
    result = conn.execute(update(est_users).where(
        est_users.c.endpoint == endpoint, est_users.c.username == username).values(
        password_hash=password_hash))
    if result.rowcount == 1:
        return False
    conn.execute(insert(est_users).values(endpoint=endpoint, username=username,
                                          password_hash=password_hash, created_at=now))
    return True


def delete_user(conn: Connection, endpoint: str, username: str) -> bool:
    result = conn.execute(delete(est_users).where(est_users.c.endpoint == endpoint,
                                                  est_users.c.username == username))
    return result.rowcount == 1


def list_users(conn: Connection, endpoint: str | None = None) -> list[tuple[str, str]]:
    query = select(est_users.c.endpoint, est_users.c.username).order_by(
        est_users.c.endpoint, est_users.c.username)
    if endpoint is not None:
        query = query.where(est_users.c.endpoint == endpoint)
    return [(str(r[0]), str(r[1])) for r in conn.execute(query)]


def _key(row: object) -> StoredKey:
    return StoredKey(row.request_id, row.endpoint, row.serial, row.key_type,  # type: ignore[attr-defined]
                     bytes(row.encrypted_key), bool(row.archived),  # type: ignore[attr-defined]
                     aware(row.created_at))  # type: ignore[attr-defined, arg-type]


def insert_key(conn: Connection, *, request_id: str, endpoint: str, serial: str | None,
               key_type: str, encrypted_key: bytes, archived: bool, now: dt.datetime) -> None:
    conn.execute(insert(est_server_keys).values(
        request_id=request_id, endpoint=endpoint, serial=serial, key_type=key_type,
        encrypted_key=encrypted_key, archived=archived, created_at=now))


def get_key_by_request(conn: Connection, request_id: str) -> StoredKey | None:
    row = conn.execute(select(est_server_keys).where(
        est_server_keys.c.request_id == request_id)).first()
    return None if row is None else _key(row)


def get_key_by_serial(conn: Connection, serial: str) -> StoredKey | None:
    row = conn.execute(select(est_server_keys).where(
        est_server_keys.c.serial == serial, est_server_keys.c.archived.is_(True))).first()
    return None if row is None else _key(row)


def set_key_serial(conn: Connection, request_id: str, serial: str) -> None:
    conn.execute(update(est_server_keys).where(
        est_server_keys.c.request_id == request_id).values(serial=serial))


def forget_delivered_key(conn: Connection, request_id: str) -> None:
    """Drop a key that was only kept until its client collected it (not archived)."""
    conn.execute(delete(est_server_keys).where(est_server_keys.c.request_id == request_id,
                                               est_server_keys.c.archived.is_(False)))


def count_keys(conn: Connection) -> int:
    from sqlalchemy import func

    return int(conn.execute(select(func.count()).select_from(est_server_keys)).scalar_one())
