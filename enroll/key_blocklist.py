"""The key blocklist: public keys no certificate (and no ACME account) may carry again.

A key is named by the hex SHA-256 of its SubjectPublicKeyInfo
(`enroll.crypto.keys.spki_sha256`), the fingerprint every request and certificate row
already stores. It is blocked

- automatically when a certificate is revoked for ``keyCompromise``
  (`enroll.authority.Authority.revoke`, in the revocation's own transaction), and
- by an operator: ``enroll keys block --cert FILE | --csr FILE | --spki-sha256 HEX``.

The issuance pipeline refuses a blocked key with `BadCSR` (`refuse_if_blocked`) and the
door's `check_public_key` does the same for ACME account keys. Every change is an audit
event (``key.blocked``, ``key.unblocked``) in the same transaction.
"""

from __future__ import annotations

import datetime as dt

from enroll.errors import BadCSR, MalformedInput
from enroll.model import BlockedKey
from enroll.store import queries
from enroll.store.db import Database
from enroll.store.transaction import Tx

REVOCATION = "revocation"
OPERATOR = "operator"
MAX_REASON = 200
_HEX = frozenset("0123456789abcdef")


def parse_fingerprint(text: str) -> str:
    """A SPKI SHA-256 as 64 hex digits (colons and upper case accepted, as
    ``openssl … | sha256sum`` or a browser shows it); `MalformedInput` otherwise."""
    value = text.strip().replace(":", "").lower()
    if len(value) != 64 or not set(value) <= _HEX:
        raise MalformedInput("a key fingerprint is the SPKI SHA-256 as 64 hex digits")
    return value


def is_blocked(tx: Tx, spki_sha256: str) -> bool:
    return queries.is_key_blocked(tx, spki_sha256)


def block(tx: Tx, spki_sha256: str, *, reason: str, source: str, actor: str,
          now: dt.datetime, serial: str | None = None) -> bool:
    """Block a key (with its audit event); False, and nothing written, if it already is."""
    reason = reason.strip()[:MAX_REASON] or "blocked"
    added = queries.block_key(tx, spki_sha256=spki_sha256, reason=reason, source=source,
                              serial=serial, actor=actor, now=now)
    if added:
        queries.add_audit(tx, at=now, type="key.blocked", actor=actor, serial=serial,
                          details={"spki_sha256": spki_sha256, "reason": reason,
                                   "source": source})
    return added


def unblock(tx: Tx, spki_sha256: str, *, actor: str, now: dt.datetime) -> bool:
    """Take a key off the blocklist (with its audit event); False if it was not on it."""
    removed = queries.unblock_key(tx, spki_sha256)
    if removed:
        queries.add_audit(tx, at=now, type="key.unblocked", actor=actor,
                          details={"spki_sha256": spki_sha256})
    return removed


def list_blocked(tx: Tx, limit: int = 1000) -> list[BlockedKey]:
    """Newest first."""
    return queries.list_blocked_keys(tx, limit)


def refuse_if_blocked(db: Database, spki_sha256: str) -> None:
    """Raise `BadCSR` naming the reason if the key is on the blocklist."""
    with db.read() as tx:
        entry = queries.get_blocked_key(tx, spki_sha256)
    if entry is not None:
        raise BadCSR(f"this key is blocked: {entry.reason}")
