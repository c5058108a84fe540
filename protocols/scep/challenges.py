"""SCEP challenge passwords: static (per endpoint, stored as SHA-256), one-time (issued
by an operator or fetched by an MDM, consumed atomically), and webhook-verified.

A one-time challenge is spent only by a request that is issued or goes pending. Each
PKCSReq verifies through its own `Reservation`: verifying marks the challenge used by
the transaction (one conditional UPDATE, so of two requests racing with it exactly one
holds it), and a request then refused (policy, CSR, CA) releases it again, so the same
challenge works for the device's next attempt. A crash between the two leaves the
challenge spent, never usable twice; an operator makes a new one.

Verification runs through the core's `enroll_verify_challenge` hook (see `plugin.py`);
this module holds the logic. Challenges are generated with 256 bits of entropy, so a
fast hash is enough (a slow KDF would cap throughput); comparisons are constant-time.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets
from collections.abc import Callable, Mapping
from typing import Any

from enroll.clock import Clock
from enroll.model import ChallengeContext
from enroll.store import audit_chain
from enroll.store.db import Database

from . import store
from .settings import EndpointSettings

KIND = "scep"
MAX_CHALLENGE_LENGTH = 255


def generate() -> str:
    """A fresh challenge password (URL-safe, 43 characters)."""
    return secrets.token_urlsafe(32)


def generate_ndes() -> str:
    """A fresh challenge in NDES's form (upper-case hex; 32 digits, 128 bits), which
    the MDMs that fetch challenges from an NDES page parse (`ndes_admin`)."""
    return secrets.token_hex(16).upper()


def digest(challenge: str) -> str:
    return hashlib.sha256(challenge.encode()).hexdigest()


class ChallengesFull(Exception):
    """The endpoint already has its `limit` of usable challenges outstanding."""


class OneTimeChallenges:
    """One-time challenges in ``scep_challenges``; each is usable exactly once."""

    def __init__(self, db: Database, clock: Clock) -> None:
        self._db = db
        self._clock = clock

    def new(self, endpoint: str, ttl_seconds: int, created_by: str, *,
            generator: Callable[[], str] = generate,
            audit: Mapping[str, Any] | None = None,
            limit: int | None = None) -> tuple[str, dt.datetime]:
        """Create a challenge; returns it (shown once, stored hashed) and its expiry.
        With `audit`, the creation is an audit event (``scep.challenge_created``, actor
        `created_by`, `audit` and the endpoint and expiry as details; never the
        challenge) in the same transaction. With `limit`, raises `ChallengesFull` when
        the endpoint has that many usable challenges (racing creators may pass it by
        a few)."""
        challenge = generator()
        now = self._clock.now()
        expires = now + dt.timedelta(seconds=ttl_seconds)
        with self._db.write() as tx:
            if limit is not None and store.count_live_challenges(tx, endpoint, now) >= limit:
                raise ChallengesFull(endpoint)
            store.insert_challenge(tx, digest=digest(challenge), endpoint=endpoint,
                                   created_by=created_by[:256], now=now, expires_at=expires)
            if audit is not None:
                audit_chain.append(tx, at=now, type="scep.challenge_created",
                                   actor=created_by[:256], request_id=None, serial=None,
                                   details={**audit, "endpoint": endpoint,
                                            "expires": expires.isoformat()})
        return challenge, expires

    def consume(self, endpoint: str, challenge: str, used_by: str) -> bool:
        with self._db.write() as tx:
            return store.consume_challenge(tx, digest=digest(challenge), endpoint=endpoint,
                                           now=self._clock.now(), used_by=used_by)

    def release(self, endpoint: str, challenge: str, used_by: str) -> bool:
        """Make a challenge `used_by` spent unused again (its request was refused)."""
        with self._db.write() as tx:
            return store.release_challenge(tx, digest=digest(challenge), endpoint=endpoint,
                                           used_by=used_by)


class Reservation:
    """One request's use of a one-time challenge: `consume` holds it for the request
    (exactly one of racing requests wins), `release` gives it back if the request is
    then refused. Only what this reservation consumed is ever released, so a retry of
    a transaction that already spent its challenge cannot un-spend it."""

    def __init__(self, challenges: OneTimeChallenges) -> None:
        self._challenges = challenges
        self._held: tuple[str, str, str] | None = None

    def consume(self, endpoint: str, challenge: str, used_by: str) -> bool:
        if self._held is not None:
            return False
        if not self._challenges.consume(endpoint, challenge, used_by):
            return False
        self._held = (endpoint, challenge, used_by)
        return True

    def release(self) -> None:
        if self._held is not None:
            endpoint, challenge, used_by = self._held
            self._held = None
            self._challenges.release(endpoint, challenge, used_by)


def settings_for(endpoint: EndpointSettings,
                 one_time: Reservation | None) -> Mapping[str, Any]:
    """The `ChallengeContext.settings` this front-end passes to the hook, per request.
    ``one_time`` is the request's reservation the verifier consumes challenges through."""
    return {
        "kind": KIND,
        "static_sha256": endpoint.static_sha256,
        "one_time": one_time if endpoint.one_time else None,
        "webhook": endpoint.webhook,
        "verifier": endpoint.verifier,
    }


def verify(context: ChallengeContext) -> bool | None:
    """Static, then one-time. None (let the webhook plugin, or the endpoint's
    ``challenge_verifier`` plugin, answer) when neither matched and the endpoint has one;
    None for settings that are not SCEP's."""
    settings = context.settings
    if settings.get("kind") != KIND:
        return None
    deferred = bool(settings.get("webhook") or settings.get("verifier"))
    challenge = context.challenge
    if not challenge or len(challenge) > MAX_CHALLENGE_LENGTH:
        # A verifier's challenge may be longer (Intune's is): it bounds its own.
        return None if deferred else False
    static = settings.get("static_sha256")
    if static and hmac.compare_digest(digest(challenge), static):
        return True
    one_time = settings.get("one_time")
    if isinstance(one_time, Reservation) and one_time.consume(
            context.endpoint, challenge, used_by=f"transaction:{context.transaction_id}"):
        return True
    return None if deferred else False
