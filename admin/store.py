"""The operators' door's own tables.

- ``admin_tokens``: API tokens. The secret is 256 random bits, so a SHA-256 of it is
  enough to store (nothing to brute-force); the token's public ``id`` finds the row and
  the digest is compared in constant time. ``revoked_at`` ends a token at once.
- ``admin_users``: console users: an scrypt password hash, the role, the TOTP seed sealed
  with the CA passphrase (`enroll.crypto.sealing`, resealed on passphrase rotation) and
  ``session_epoch``, which signed session cookies carry: signing out or a password reset
  bumps it and ends every session of that user on every worker.
- ``admin_keys``: the console's cookie-signing key, one row, sealed like the TOTP seeds,
  made by the first worker that needs it (an INSERT that loses the race reads the winner's).

Every function takes a `Tx` from `Database.write()` / `Database.read()`.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import Column, Integer, LargeBinary, String, Table

from enroll.store.columns import UTC_DT
from enroll.store.schema import metadata
from enroll.store.transaction import Row, Tx

admin_tokens = Table(
    "admin_tokens", metadata,
    Column("id", String(24), primary_key=True),
    Column("name", String(128), nullable=False, unique=True),
    Column("role", String(16), nullable=False),
    Column("secret_sha256", String(64), nullable=False),
    Column("created_at", UTC_DT, nullable=False),
    Column("created_by", String(256), nullable=False),
    Column("expires_at", UTC_DT, nullable=True),
    Column("revoked_at", UTC_DT, nullable=True),
    Column("last_used_at", UTC_DT, nullable=True),
)

admin_users = Table(
    "admin_users", metadata,
    Column("username", String(128), primary_key=True),
    Column("role", String(16), nullable=False),
    Column("password_hash", String(256), nullable=False),
    Column("totp_sealed", LargeBinary, nullable=True),
    Column("totp_enrolled_at", UTC_DT, nullable=True),
    Column("totp_last_step", Integer, nullable=True),
    Column("session_epoch", Integer, nullable=False),
    Column("created_at", UTC_DT, nullable=False),
)

admin_keys = Table(
    "admin_keys", metadata,
    Column("name", String(32), primary_key=True),
    Column("sealed", LargeBinary, nullable=False),
    Column("created_at", UTC_DT, nullable=False),
)

TABLES = (admin_tokens, admin_users, admin_keys)


@dataclass(frozen=True, slots=True)
class Token:
    id: str
    name: str
    role: str
    secret_sha256: str
    created_at: dt.datetime
    created_by: str
    expires_at: dt.datetime | None
    revoked_at: dt.datetime | None
    last_used_at: dt.datetime | None

    def live(self, now: dt.datetime) -> bool:
        return self.revoked_at is None and (self.expires_at is None or now < self.expires_at)


@dataclass(frozen=True, slots=True)
class User:
    username: str
    role: str
    password_hash: str
    totp_sealed: bytes | None
    totp_enrolled_at: dt.datetime | None
    totp_last_step: int | None
    session_epoch: int
    created_at: dt.datetime


_TOKEN = ("id, name, role, secret_sha256, created_at, created_by, "  # noqa: S105 - columns
          "expires_at, revoked_at, last_used_at")
_USER = ("username, role, password_hash, totp_sealed, totp_enrolled_at, totp_last_step, "
         "session_epoch, created_at")


def _token(row: Row) -> Token:
    return Token(**{k: row[k] for k in _TOKEN.split(", ")})


def _user(row: Row) -> User:
    return User(**{k: row[k] for k in _USER.split(", ")})


# -- tokens ---------------------------------------------------------------------------

def insert_token(tx: Tx, token: Token) -> None:
    tx.insert(admin_tokens, {k: getattr(token, k) for k in _TOKEN.split(", ")})


def token_by_id(tx: Tx, token_id: str) -> Token | None:
    row = tx.one(f"SELECT {_TOKEN} FROM admin_tokens WHERE id = ?",  # noqa: S608 - constant
                 (token_id,), admin_tokens)
    return None if row is None else _token(row)


def token_by_name(tx: Tx, name: str) -> Token | None:
    row = tx.one(f"SELECT {_TOKEN} FROM admin_tokens WHERE name = ?",  # noqa: S608 - constant
                 (name,), admin_tokens)
    return None if row is None else _token(row)


def list_tokens(tx: Tx) -> list[Token]:
    rows = tx.all(f"SELECT {_TOKEN} FROM admin_tokens ORDER BY created_at, name",  # noqa: S608
                  (), admin_tokens)
    return [_token(r) for r in rows]


def revoke_token(tx: Tx, name: str, now: dt.datetime) -> bool:
    return tx.run("UPDATE admin_tokens SET revoked_at = ? WHERE name = ? AND revoked_at IS NULL",
                  (tx.when(now), name)) == 1


def touch_token(tx: Tx, token_id: str, now: dt.datetime) -> None:
    tx.run("UPDATE admin_tokens SET last_used_at = ? WHERE id = ?", (tx.when(now), token_id))


# -- users ----------------------------------------------------------------------------

def get_user(tx: Tx, username: str) -> User | None:
    row = tx.one(f"SELECT {_USER} FROM admin_users WHERE username = ?",  # noqa: S608 - constant
                 (username,), admin_users)
    return None if row is None else _user(row)


def list_users(tx: Tx) -> list[User]:
    rows = tx.all(f"SELECT {_USER} FROM admin_users ORDER BY username",  # noqa: S608 - constant
                  (), admin_users)
    return [_user(r) for r in rows]


def put_user(tx: Tx, username: str, role: str, password_hash: str, now: dt.datetime) -> bool:
    """Add a user, or reset its password and role (which ends its sessions and its second
    factor: it enrols TOTP again). True if the user is new."""
    if tx.run("UPDATE admin_users SET role = ?, password_hash = ?, totp_sealed = NULL, "
              "totp_enrolled_at = NULL, totp_last_step = NULL, "
              "session_epoch = session_epoch + 1 WHERE username = ?",
              (role, password_hash, username)) == 1:
        return False
    tx.insert(admin_users, {"username": username, "role": role, "password_hash": password_hash,
                            "totp_sealed": None, "totp_enrolled_at": None,
                            "totp_last_step": None, "session_epoch": 1, "created_at": now})
    return True


def delete_user(tx: Tx, username: str) -> bool:
    return tx.run("DELETE FROM admin_users WHERE username = ?", (username,)) == 1


def set_totp(tx: Tx, username: str, sealed: bytes | None, enrolled_at: dt.datetime | None) -> bool:
    """Store a seed (pending until `enrolled_at` is set) or clear it."""
    return tx.run("UPDATE admin_users SET totp_sealed = ?, totp_enrolled_at = ?, "
                  "totp_last_step = NULL WHERE username = ?",
                  (sealed, tx.when(enrolled_at), username)) == 1


def use_totp_step(tx: Tx, username: str, step: int) -> bool:
    """Record that the code of time step `step` was used; False if that step (or a later
    one) was already used: a code works once (RFC 6238 §5.2)."""
    return tx.run("UPDATE admin_users SET totp_last_step = ? WHERE username = ? AND "
                  "(totp_last_step IS NULL OR totp_last_step < ?)",
                  (step, username, step)) == 1


def bump_epoch(tx: Tx, username: str) -> None:
    tx.run("UPDATE admin_users SET session_epoch = session_epoch + 1 WHERE username = ?",
           (username,))


def totp_seeds(tx: Tx) -> list[tuple[str, bytes]]:
    rows = tx.all("SELECT username, totp_sealed FROM admin_users WHERE totp_sealed IS NOT NULL",
                  (), admin_users)
    return [(str(r["username"]), bytes(r["totp_sealed"])) for r in rows]


def replace_totp_seed(tx: Tx, username: str, old: bytes, new: bytes) -> bool:
    return tx.run("UPDATE admin_users SET totp_sealed = ? WHERE username = ? AND totp_sealed = ?",
                  (new, username, old)) == 1


# -- keys -----------------------------------------------------------------------------

def get_key(tx: Tx, name: str) -> bytes | None:
    value = tx.scalar("SELECT sealed FROM admin_keys WHERE name = ?", (name,))
    return None if value is None else bytes(value)


def add_key(tx: Tx, name: str, sealed: bytes, now: dt.datetime) -> None:
    tx.insert(admin_keys, {"name": name, "sealed": sealed, "created_at": now})


def all_keys(tx: Tx) -> list[tuple[str, bytes]]:
    rows = tx.all("SELECT name, sealed FROM admin_keys", (), admin_keys)
    return [(str(r["name"]), bytes(r["sealed"])) for r in rows]


def replace_key(tx: Tx, name: str, old: bytes, new: bytes) -> bool:
    return tx.run("UPDATE admin_keys SET sealed = ? WHERE name = ? AND sealed = ?",
                  (new, name, old)) == 1
