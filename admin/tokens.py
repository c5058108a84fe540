"""API tokens: ``enr.<id>.<secret>``, shown once, stored as SHA-256 of the secret.

`create` makes one (`enroll admin token new`); `authenticate` turns the ``Authorization:
Bearer`` value into the live `store.Token` or None. Every way a token can fail (malformed,
unknown id, wrong secret, expired, revoked) gives the same None, and the digest is
compared in constant time, so an answer tells an attacker nothing about which part was
wrong.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import re
import secrets

from enroll.errors import Conflict
from enroll.store.transaction import Tx

from . import store
from .roles import Role

PREFIX = "enr"
_SHAPE = re.compile(r"enr\.([0-9a-f]{16})\.([A-Za-z0-9_-]{43})")
MAX_NAME = 128
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,127}")


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def check_name(name: str) -> str:
    from enroll.errors import ConfigError

    if not _NAME.fullmatch(name):
        raise ConfigError("--name", "a token name is 1-128 letters, digits, '.', '_', '@' "
                          "or '-', starting with a letter or digit")
    return name


def create(tx: Tx, *, name: str, role: Role, created_by: str, now: dt.datetime,
           expires_at: dt.datetime | None) -> str:
    """Store a new token and return its full text: the only time it is shown."""
    check_name(name)
    if store.token_by_name(tx, name) is not None:
        raise Conflict(f"a token named {name!r} exists (revoke it or pick another name)")
    token_id, secret = secrets.token_hex(8), secrets.token_urlsafe(32)
    store.insert_token(tx, store.Token(
        id=token_id, name=name, role=role.value, secret_sha256=digest(secret),
        created_at=now, created_by=created_by, expires_at=expires_at, revoked_at=None,
        last_used_at=None))
    return f"{PREFIX}.{token_id}.{secret}"


def authenticate(tx: Tx, presented: str, now: dt.datetime) -> store.Token | None:
    """The live token `presented` is, or None (whatever the reason)."""
    match = _SHAPE.fullmatch(presented.strip()) if len(presented) < 128 else None
    token_id, secret = match.groups() if match else ("0" * 16, "")
    row = store.token_by_id(tx, token_id)
    expected = row.secret_sha256 if row is not None else digest("not a token")
    ok = hmac.compare_digest(expected, digest(secret))
    if row is None or not ok or not match or not row.live(now):
        return None
    return row
