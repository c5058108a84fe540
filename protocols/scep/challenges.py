"""SCEP challenge passwords: static (per endpoint, stored as SHA-256), one-time (issued
by an operator or fetched by an MDM, consumed atomically), and webhook-verified.

Verification runs through the core's `enroll_verify_challenge` hook (see `plugin.py`);
this module holds the logic. Challenges are generated with 256 bits of entropy, so a
fast hash is enough (a slow KDF would cap throughput); comparisons are constant-time.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets
from collections.abc import Mapping
from typing import Any

from enroll.clock import Clock
from enroll.model import ChallengeContext
from enroll.store.db import Database

from . import store
from .settings import EndpointSettings

KIND = "scep"
MAX_CHALLENGE_LENGTH = 255


def generate() -> str:
    """A fresh challenge password (URL-safe, 43 characters)."""
    return secrets.token_urlsafe(32)


def digest(challenge: str) -> str:
    return hashlib.sha256(challenge.encode()).hexdigest()


class OneTimeChallenges:
    """One-time challenges in ``scep_challenges``; each is usable exactly once."""

    def __init__(self, db: Database, clock: Clock) -> None:
        self._db = db
        self._clock = clock

    def new(self, endpoint: str, ttl_seconds: int, created_by: str) -> tuple[str, dt.datetime]:
        """Create a challenge; returns it (shown once, stored hashed) and its expiry."""
        challenge = generate()
        now = self._clock.now()
        expires = now + dt.timedelta(seconds=ttl_seconds)
        with self._db.write() as tx:
            store.insert_challenge(tx, digest=digest(challenge), endpoint=endpoint,
                                   created_by=created_by[:256], now=now, expires_at=expires)
        return challenge, expires

    def consume(self, endpoint: str, challenge: str, used_by: str) -> bool:
        with self._db.write() as tx:
            return store.consume_challenge(tx, digest=digest(challenge), endpoint=endpoint,
                                           now=self._clock.now(), used_by=used_by)


def settings_for(endpoint: EndpointSettings,
                 one_time: OneTimeChallenges | None) -> Mapping[str, Any]:
    """The `ChallengeContext.settings` this front-end passes to the hook. ``one_time``
    carries the repository the verifier consumes challenges from."""
    return {
        "kind": KIND,
        "static_sha256": endpoint.static_sha256,
        "one_time": one_time if endpoint.one_time else None,
        "webhook": endpoint.webhook,
    }


def verify(context: ChallengeContext) -> bool | None:
    """Static, then one-time. None (let the webhook plugin answer) when neither matched
    and the endpoint has a webhook; None for settings that are not SCEP's."""
    settings = context.settings
    if settings.get("kind") != KIND:
        return None
    challenge = context.challenge
    if not challenge or len(challenge) > MAX_CHALLENGE_LENGTH:
        return False if not settings.get("webhook") else None
    static = settings.get("static_sha256")
    if static and hmac.compare_digest(digest(challenge), static):
        return True
    one_time = settings.get("one_time")
    if isinstance(one_time, OneTimeChallenges) and one_time.consume(
            context.endpoint, challenge, used_by=f"transaction:{context.transaction_id}"):
        return True
    if settings.get("webhook"):
        return None
    return False
