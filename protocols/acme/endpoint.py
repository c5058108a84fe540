"""One configured ACME endpoint with its collaborators, passed to every operation."""

from __future__ import annotations

import secrets
import threading
from dataclasses import dataclass

from sqlalchemy.exc import IntegrityError

from enroll.asgi.blocking import BlockingPool
from enroll.clock import Clock
from enroll.config_values import Secret
from enroll.door import Door, FrontEnd
from enroll.rate_limits import RateLimits
from enroll.store.db import Database

from . import settings, store
from .nonces import Nonces
from .settings import EndpointSettings, ValidationSettings


@dataclass(frozen=True, slots=True)
class AcmeEndpoint:
    settings: EndpointSettings
    validation: ValidationSettings
    db: Database
    authority: Door
    clock: Clock
    nonces: Nonces
    passphrase: Secret | None
    """What EAB keys are sealed with (the CA passphrase)."""
    profile_cas: dict[str, str]
    """profile name -> CA name, to pick the chain of a certificate."""
    blocking: BlockingPool
    limits: RateLimits
    validation_slots: threading.BoundedSemaphore
    """This worker's cap on validations running at once (shared by its endpoints)."""

    @property
    def label(self) -> str:
        return self.settings.label


def deployment_secret(db: Database, name: str) -> bytes:
    """A per-deployment secret kept in the database, shared by every worker."""
    try:
        with db.write() as conn:
            return store.get_or_create_secret(conn, name, secrets.token_bytes(32))
    except IntegrityError:
        with db.write() as conn:  # another worker created it first
            return store.get_or_create_secret(conn, name, b"")


def build_endpoints(frontend: FrontEnd) -> list[AcmeEndpoint]:
    """One `AcmeEndpoint` per configured endpoint."""
    parsed = settings.parse(frontend.config)
    if parsed is None:
        return []
    nonces = Nonces(frontend.db, deployment_secret(frontend.db, "nonce"))
    profile_cas = {name: p.ca for name, p in frontend.config.profiles.items()}
    slots = threading.BoundedSemaphore(parsed.validation.concurrency)
    return [AcmeEndpoint(e, parsed.validation, frontend.db, frontend.door, frontend.clock,
                         nonces, frontend.passphrase, profile_cas, frontend.blocking,
                         frontend.limits, slots)
            for e in parsed.endpoints]
