"""EST's own tables: Basic users managed from the CLI, and server-generated keys.

- ``est_users``: (endpoint label, user name) -> password hash, added with
  ``enroll est user add``; users in the config file work without it.
- ``est_server_keys``: a key made by /serverkeygen, AES-GCM encrypted. Kept while its
  request waits for approval (the client comes back for it), and for good when the
  endpoint archives keys (``archive_keys = true``) so an operator can recover it with
  ``enroll est archive export``. ``client_request`` is what identifies the client's
  request (requester, template key and names; see `service.transaction_id`),
  ``requester`` who asked, and ``delivered_at`` when the key went over the wire: a key
  is sent once, to its requester (`mark_delivered` is a conditional UPDATE), and an
  archived key is never sent again.

Certificates and requests never live here: they go through the core's pipeline. Every
function takes a `Tx` from `Database.write()` / `Database.read()`.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import Boolean, Column, Index, LargeBinary, String, Table

from enroll.store.columns import UTC_DT
from enroll.store.schema import metadata
from enroll.store.transaction import Row, Tx

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
    Column("client_request", String(256), nullable=True),
    Column("requester", String(512), nullable=True),
    Column("delivered_at", UTC_DT, nullable=True),
    Index("ix_est_server_keys_client_request", "endpoint", "client_request"),
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
    client_request: str | None = None
    requester: str | None = None
    delivered_at: dt.datetime | None = None


def get_user_hash(tx: Tx, endpoint: str, username: str) -> str | None:
    value = tx.scalar("SELECT password_hash FROM est_users WHERE endpoint = ? AND "
                      "username = ?", (endpoint, username))
    return None if value is None else str(value)


def put_user(tx: Tx, endpoint: str, username: str, password_hash: str,
             now: dt.datetime) -> bool:
    """Add a user or replace its password; True if it was new."""
    if tx.run("UPDATE est_users SET password_hash = ? WHERE endpoint = ? AND username = ?",
              (password_hash, endpoint, username)) == 1:
        return False
    tx.insert(est_users, {"endpoint": endpoint, "username": username,
                          "password_hash": password_hash, "created_at": now})
    return True


def delete_user(tx: Tx, endpoint: str, username: str) -> bool:
    return tx.run("DELETE FROM est_users WHERE endpoint = ? AND username = ?",
                  (endpoint, username)) == 1


def list_users(tx: Tx, endpoint: str | None = None) -> list[tuple[str, str]]:
    where, params = ("WHERE endpoint = ? ", (endpoint,)) if endpoint is not None else ("", ())
    rows = tx.all(f"SELECT endpoint, username FROM est_users {where}"  # noqa: S608 - constant
                  "ORDER BY endpoint, username", params)
    return [(str(r["endpoint"]), str(r["username"])) for r in rows]


_KEY = ("request_id, endpoint, serial, key_type, encrypted_key, archived, created_at, "
        "client_request, requester, delivered_at")


def _key(row: Row) -> StoredKey:
    return StoredKey(request_id=row["request_id"], endpoint=row["endpoint"],
                     serial=row["serial"], key_type=row["key_type"],
                     encrypted_key=row["encrypted_key"], archived=row["archived"],
                     created_at=row["created_at"], client_request=row["client_request"],
                     requester=row["requester"], delivered_at=row["delivered_at"])


def insert_key(tx: Tx, *, request_id: str, endpoint: str, serial: str | None,
               key_type: str, encrypted_key: bytes, archived: bool, now: dt.datetime,
               client_request: str | None = None, requester: str | None = None,
               delivered_at: dt.datetime | None = None) -> None:
    tx.insert(est_server_keys, {
        "request_id": request_id, "endpoint": endpoint, "serial": serial,
        "key_type": key_type, "encrypted_key": encrypted_key, "archived": archived,
        "created_at": now, "client_request": client_request, "requester": requester,
        "delivered_at": delivered_at})


def undelivered_keys(tx: Tx, endpoint: str, client_request: str,
                     requester: str) -> list[StoredKey]:
    """Keys made for this client request and not sent yet (waiting for approval, or
    issued while the client was away), newest first."""
    rows = tx.all(f"SELECT {_KEY} FROM est_server_keys WHERE endpoint = ? AND "  # noqa: S608
                  "client_request = ? AND requester = ? AND delivered_at IS NULL "
                  "ORDER BY created_at DESC, request_id", (endpoint, client_request, requester),
                  est_server_keys)
    return [_key(r) for r in rows]


def mark_delivered(tx: Tx, request_id: str, serial: str, now: dt.datetime) -> bool:
    """Record that the key of `request_id` is being sent; True for exactly one caller."""
    return tx.run("UPDATE est_server_keys SET delivered_at = ?, serial = ? WHERE "
                  "request_id = ? AND delivered_at IS NULL",
                  (tx.when(now), serial, request_id)) == 1


def get_key_by_request(tx: Tx, request_id: str) -> StoredKey | None:
    row = tx.one(f"SELECT {_KEY} FROM est_server_keys WHERE request_id = ?",  # noqa: S608
                 (request_id,), est_server_keys)
    return None if row is None else _key(row)


def get_key_by_serial(tx: Tx, serial: str) -> StoredKey | None:
    row = tx.one(f"SELECT {_KEY} FROM est_server_keys WHERE serial = ? AND "  # noqa: S608
                 "archived = ?", (serial, True), est_server_keys)
    return None if row is None else _key(row)


def set_key_serial(tx: Tx, request_id: str, serial: str) -> None:
    """The certificate a kept key belongs to, once issued (for ``archive export``)."""
    tx.run("UPDATE est_server_keys SET serial = ? WHERE request_id = ?", (serial, request_id))


def forget_delivered_key(tx: Tx, request_id: str) -> None:
    """Drop a key that was only kept until its client collected it (not archived), or
    whose certificate can no longer be collected (revoked or expired before that)."""
    tx.run("DELETE FROM est_server_keys WHERE request_id = ? AND archived = ?",
           (request_id, False))


def count_keys(tx: Tx) -> int:
    return int(tx.scalar("SELECT count(*) FROM est_server_keys"))


def key_blobs(tx: Tx) -> list[tuple[str, bytes]]:
    """(request id, sealed key) of every kept key, for re-sealing."""
    rows = tx.all("SELECT request_id, encrypted_key FROM est_server_keys ORDER BY request_id",
                  (), est_server_keys)
    return [(str(r["request_id"]), bytes(r["encrypted_key"])) for r in rows]


def replace_key_blob(tx: Tx, request_id: str, old: bytes, new: bytes) -> bool:
    """Swap a kept key's blob only if it is still `old`."""
    return tx.run("UPDATE est_server_keys SET encrypted_key = ? WHERE request_id = ? AND "
                  "encrypted_key = ?", (new, request_id, old)) == 1
