"""One configured ACME endpoint with its collaborators, passed to every operation."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from cryptography import x509

from enroll.clock import Clock
from enroll.model import CertificateRecord, EnrollmentRequest, Issued, Outcome, Pending, Rejected
from enroll.store.db import Database

from .nonces import Nonces
from .settings import EndpointSettings, ValidationSettings


class AuthorityCalls(Protocol):
    """The few core calls the ACME front-end makes."""

    def submit(self, request: EnrollmentRequest) -> Issued | Pending | Rejected: ...
    def status(self, request_id: str) -> Outcome: ...
    def certificate(self, serial: str | int) -> CertificateRecord | None: ...
    def lookup(self, cert: x509.Certificate) -> CertificateRecord | None: ...
    def chain(self, ca: str) -> tuple[x509.Certificate, ...]: ...
    def revoke(self, serial: str | int, reason: x509.ReasonFlags,
               actor: str) -> CertificateRecord: ...


@dataclass(frozen=True, slots=True)
class AcmeEndpoint:
    settings: EndpointSettings
    validation: ValidationSettings
    db: Database
    authority: AuthorityCalls
    clock: Clock
    nonces: Nonces
    eab_secret: bytes
    profile_cas: dict[str, str]
    """profile name -> CA name, to pick the chain of a certificate."""

    @property
    def label(self) -> str:
        return self.settings.label
