"""The one door into the core: what a protocol front-end may ask, and what it is handed.

A front-end (SCEP, EST, ACME, a third-party protocol) never sees the composition root
(`enroll.context.AppContext`): the plugin hooks that build it (`enroll_routes`,
`enroll_endpoint_info`, `enroll_tls_client_cas`) receive a `FrontEnd`, which holds the
`Door` (these few core calls, implemented by `enroll.authority.Authority`), the
configuration to read its own section from, the clock, the database for the tables the
protocol owns (its own bookkeeping only: certificates, requests and audit events are
written by the core behind `Door.submit`), and the passphrase its secrets are sealed
with. Like step-ca's ``acme/common.go``, the consumer declares what it needs, so a test
can hand a front-end a fake.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from cryptography import x509

if TYPE_CHECKING:
    from enroll.asgi.blocking import BlockingPool
    from enroll.attestation import AttestationContext, AttestedIdentity
    from enroll.clock import Clock
    from enroll.config import Config, Secret
    from enroll.model import (
        CertificateRecord,
        ChallengeContext,
        EnrollmentRequest,
        Issued,
        Outcome,
        Pending,
        Rejected,
        RequestRecord,
    )
    from enroll.profile_rules import AcceptedRequest
    from enroll.profiles import Profile
    from enroll.rate_limits import RateLimits
    from enroll.store.db import Database


class Door(Protocol):
    """The core calls a front-end makes. Every refusal is an `enroll.errors.EnrollError`
    the front-end maps to its wire format in its one error table."""

    def profile(self, name: str) -> Profile:
        """The validated profile called `name` (`NotFound` if there is none)."""
        ...

    def check(self, request: EnrollmentRequest) -> AcceptedRequest:
        """Run the profile's rules on a request without storing anything."""
        ...

    def check_public_key(self, public_key: Any) -> None:
        """Refuse (`BadCSR`) a weak or blocked key that is not in a CSR (ACME account
        keys); CSR keys are checked by `check` and `submit`."""
        ...

    def submit(self, request: EnrollmentRequest) -> Issued | Pending | Rejected:
        """The whole pipeline: rules, policy votes, approval, signing, storing."""
        ...

    def status(self, request_id: str) -> Outcome:
        """Where a request stands now (polling clients)."""
        ...

    def find_transaction(self, protocol: str, endpoint: str,
                         transaction_id: str) -> RequestRecord | None:
        """The request a client made under its own transaction id at this endpoint."""
        ...

    def lookup(self, cert: x509.Certificate) -> CertificateRecord | None:
        """The stored record of exactly this certificate, if this engine issued it."""
        ...

    def lookup_key(self, public_key: Any) -> CertificateRecord | None:
        """The newest unrevoked certificate this engine issued for a key."""
        ...

    def certificate(self, serial: str | int) -> CertificateRecord | None:
        """A certificate by serial (int, or hex as `openssl` prints it)."""
        ...

    def chain(self, ca: str) -> tuple[x509.Certificate, ...]:
        """The CA's certificate first, up to and including the root."""
        ...

    def revoke(self, serial: str | int, reason: x509.ReasonFlags,
               actor: str) -> CertificateRecord:
        """Revoke a certificate (and re-sign its CA's CRL)."""
        ...

    def verify_challenge(self, context: ChallengeContext) -> bool:
        """Ask the challenge-verification plugins; nobody answering means no."""
        ...

    def verify_attestation(self, context: AttestationContext) -> AttestedIdentity | None:
        """Ask the attestation verifiers (`enroll_verify_attestation`); None: no verifier
        knows the format. A statement that does not verify raises
        `enroll.attestation.AttestationRefused`."""
        ...

    def record_refusal(self, door: str, reason: str, source: str | None,
                       actor: str | None, details: Mapping[str, Any] | None = None) -> None:
        """Audit one refusal the front-end answers (bad CSR, failed authentication,
        policy, throttling): `door` is the endpoint's label (``scep:default``), `reason`
        a short code (`enroll.refusals.reason_code`), `source` the client address,
        `actor` the authenticated requester if any (`enroll.refusals.actor_of`).
        Aggregated per window, so a flood costs bounded rows; never raises."""
        ...

    def crl(self, issuer: bytes) -> bytes | None:
        """DER of the current CRL of the CA whose subject's DER encoding is `issuer`
        (as an IssuerAndSerialNumber carries it), None if no CA of this engine has it."""
        ...


@dataclass(frozen=True, slots=True)
class FrontEnd:
    """Everything a protocol front-end is handed: nothing more."""

    door: Door
    config: Config
    """Read-only; a protocol reads its own section through `enroll.endpoints`."""
    clock: Clock
    db: Database
    """For the tables the protocol owns (``protocols/<name>/store.py``) only."""
    passphrase: Secret | None
    """What the protocol's own secrets (SCEP RA keys, EST key archive) are sealed with."""
    blocking: BlockingPool
    """Where handlers run their blocking work (``await frontend.blocking.run(fn, ...)``)."""
    limits: RateLimits
    """The shared rate limits (`enroll.rate_limits`): check before costly work, hit on
    each counted event."""
