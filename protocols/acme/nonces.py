"""Replay nonces (RFC 8555 §6.5) that work across workers.

A nonce is ``time || random || HMAC(secret, time || random)``: issuing one costs no
database write (so no fsync per response). Accepting one inserts it into
``acme_used_nonces``, whose primary key makes it single-use across every worker sharing
the database; the lifetime bounds that table, pruned now and then."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets
import struct

from sqlalchemy.exc import IntegrityError

from enroll.store.db import Database

from . import store
from .jws import b64d, b64e
from .problems import AcmeProblem

LIFETIME = 3600
_PRUNE_ONE_IN = 512


def bad_nonce(detail: str) -> AcmeProblem:
    return AcmeProblem("badNonce", detail, 400)


class Nonces:
    def __init__(self, db: Database, secret: bytes) -> None:
        self.db = db
        self._secret = secret

    def new(self, now: dt.datetime) -> str:
        body = struct.pack(">Q", int(now.timestamp())) + secrets.token_bytes(12)
        return b64e(body + hmac.new(self._secret, body, hashlib.sha256).digest()[:16])

    def consume(self, nonce: object, now: dt.datetime) -> None:
        """Accept `nonce` once; badNonce if forged, expired or already used."""
        if not isinstance(nonce, str) or len(nonce) != 48:
            raise bad_nonce("missing or malformed nonce")
        try:
            raw = b64d(nonce, "nonce")
        except AcmeProblem:
            raise bad_nonce("malformed nonce") from None
        body, mac = raw[:20], raw[20:]
        if not hmac.compare_digest(mac, hmac.new(self._secret, body,
                                                 hashlib.sha256).digest()[:16]):
            raise bad_nonce("unknown nonce")
        issued = struct.unpack(">Q", body[:8])[0]
        if not now.timestamp() - LIFETIME <= issued <= now.timestamp() + 60:
            raise bad_nonce("expired nonce")
        expires = dt.datetime.fromtimestamp(issued + LIFETIME, dt.UTC)
        try:
            with self.db.write() as conn:
                store.mark_nonce_used(conn, nonce, expires)
                if secrets.randbelow(_PRUNE_ONE_IN) == 0:
                    store.prune_nonces(conn, now)
        except IntegrityError:
            raise bad_nonce("nonce already used") from None
