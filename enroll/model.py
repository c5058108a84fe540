"""The protocol-neutral contract between front-ends, the core and plugins.

Front-ends build an `EnrollmentRequest` and get an `Issued`, `Pending` or `Rejected`
back (or an `EnrollError`). Nothing here knows SQL, HTTP or a signing key.
"""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from cryptography import x509


class Vote(enum.IntEnum):
    """A policy vote. Higher wins: deny beats pending beats allow."""

    ALLOW = 0
    PENDING = 1
    DENY = 2


@dataclass(frozen=True, slots=True)
class Decision:
    vote: Vote
    reason: str = ""

    @classmethod
    def allow(cls) -> Decision:
        return cls(Vote.ALLOW)

    @classmethod
    def pending(cls, reason: str) -> Decision:
        return cls(Vote.PENDING, reason)

    @classmethod
    def deny(cls, reason: str) -> Decision:
        return cls(Vote.DENY, reason)


@dataclass(frozen=True, slots=True)
class Requester:
    """Who asked, and how they proved it.

    `identity` is a stable string (``scep:default``, ``est-user:alice``,
    ``acme-account:https://…/acct/12``, ``cert:<serial hex>``); `method` is how the
    front-end authenticated it (``challenge``, ``basic``, ``client-cert``, ``jws``,
    ``renewal-cert``, ``operator``).
    """

    identity: str
    method: str


@dataclass(frozen=True, slots=True)
class Authorization:
    """What the front-end proved the requester may name, beyond the profile's rules.

    ACME hands the core the order's validated identifiers; a renewal or a client
    certificate of this engine is turned into one by the core (`enroll.renewal`). A
    request carrying an `Authorization` gets a certificate with no name outside it: every
    subject alternative name must be in `names` and every subject value taken from the
    CSR must be among `subject` (the CN may also be one of `names`).
    """

    names: frozenset[str]
    """``dns:host.example``, ``ip:192.0.2.1``, ``email:…``, ``uri:…`` (as stored)."""
    subject: frozenset[tuple[str, str]] = frozenset()
    """(attribute OID dotted string, value) pairs the CSR may put in the subject."""
    source: str = ""
    """For refusals: ``the order's identifiers``, ``certificate 1a2b…``."""


LINK_REASONS = {
    "credential": "the request was signed by the certificate it renews (SCEP RenewalReq, "
                  "EST re-enrolment)",
    "replaces": "the client named the certificate it renews (ACME replaces, same account)",
    "eab": "the ACME account's external account binding allows this identity",
    "names": "the order's validated identifiers are the renewed certificate's names",
    "identity": "same identity as the identity's live certificate (the profile links "
                "renewals by identity)",
    "attested": "the device attested the identity (ACME device-attest-01)",
}
"""Why a certificate links to the one it replaces (`CertificateRecord.link`)."""

NOT_RECOVERABLE = "not_recoverable"
"""The `EnrollmentRequest.attributes` key that keeps recovery from signing a request."""


@dataclass(frozen=True, slots=True)
class EnrollmentRequest:
    """One request for a certificate, whichever protocol it came through.

    `transaction_id` makes retries idempotent: the same (protocol, endpoint,
    transaction_id) with the same public key returns the first answer; with a different
    key it is a `Conflict`; a retry whose certificate is no longer live (revoked or
    expired) or whose signing failed transiently is a new request. `replaces` is the
    serial (hex) of the certificate this one renews: the core applies the renewal rule
    (`enroll.renewal`) and marks it superseded. `credential` is the serial of a
    certificate of this engine that authenticated the request (a renewal's signer, an
    EST client certificate): the new certificate is bound to its identity, profile and
    names. `authorized` narrows the names to what the front-end proved (ACME). `ca`
    overrides the profile's CA (an endpoint bound to its own intermediate).
    `attributes` carries protocol details worth keeping with the request (ACME order id,
    SCEP message type); it is stored as JSON, so values must be JSON-serialisable. With
    ``attributes[NOT_RECOVERABLE] = True`` a request whose signer died is not signed by
    the recovery pass but failed (its transaction id released, so the retry is a new
    request): for a front-end that could not deliver such a certificate (an EST
    server-generated key that was only in the dead worker's memory).
    """

    csr: x509.CertificateSigningRequest
    profile: str
    requester: Requester
    protocol: str
    endpoint: str = ""
    transaction_id: str | None = None
    replaces: str | None = None
    ca: str | None = None
    attributes: Mapping[str, Any] = field(default_factory=dict)
    credential: str | None = None
    authorized: Authorization | None = None
    renewal_grace: int = 0
    """Seconds after its expiry a `credential` / `replaces` certificate still counts as
    live (the endpoint's setting)."""
    device_id: str | None = None
    """The device's id where the door or a plugin knows it (MDM device id, attested
    serial); else the profile's ``device_id`` source gives it."""
    link: str | None = None
    """Why `replaces` names the certificate this one renews (`LINK_REASONS`), when the
    door knows better than the default (``credential`` when `credential` is
    `replaces`, else ``replaces``)."""
    not_before: dt.datetime | None = None
    not_after: dt.datetime | None = None
    """The validity the client asked for (ACME newOrder); None: the profile's. Only
    ever narrows the profile's validity (`enroll.validity_rules`)."""


@dataclass(frozen=True, slots=True)
class Issued:
    request_id: str
    certificate: x509.Certificate
    chain: tuple[x509.Certificate, ...]
    """Issuing CA first, up to and including the root."""

    @property
    def serial_hex(self) -> str:
        return format(self.certificate.serial_number, "x")


@dataclass(frozen=True, slots=True)
class Pending:
    request_id: str
    retry_after: int
    """Seconds a client should wait before polling again."""
    reason: str = ""


@dataclass(frozen=True, slots=True)
class Rejected:
    request_id: str
    reason: str


Outcome = Issued | Pending | Rejected


@dataclass(frozen=True, slots=True)
class AwaitingApproval:
    """An approval was recorded; the request needs more distinct approvers."""

    request_id: str
    approvers: tuple[str, ...]
    required: int


class RequestStatus(enum.StrEnum):
    REQUESTED = "requested"
    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"
    ISSUED = "issued"
    FAILED = "failed"
    EXPIRED = "expired"
    """Pending longer than its profile's ``pending_expiry``; answered as rejected."""


class CertificateStatus(enum.StrEnum):
    VALID = "valid"
    REVOKED = "revoked"


@dataclass(frozen=True, slots=True)
class CertificateRecord:
    """A stored certificate as the core returns it (never an ORM row)."""

    serial_hex: str
    ca: str
    certificate: x509.Certificate
    status: CertificateStatus
    profile: str
    protocol: str
    requester: str
    request_id: str | None
    replaces: str | None
    not_before: dt.datetime
    not_after: dt.datetime
    revoked_at: dt.datetime | None
    revocation_reason: x509.ReasonFlags | None
    subject: str
    sans: tuple[str, ...]
    identity: str | None = None
    """What identifies the subject (``san.dns:host.example``, ``subject.CN:dev-42``);
    None for certificates stored before identities were recorded."""
    superseded_by: str | None = None
    """The serial of the certificate that renewed this one."""
    endpoint: str | None = None
    """The endpoint label that issued it (None for certificates stored before)."""
    device_id: str | None = None
    link: str | None = None
    """Why it links to the certificate it `replaces` (`LINK_REASONS`)."""

    @property
    def serial(self) -> int:
        return int(self.serial_hex, 16)


@dataclass(frozen=True, slots=True)
class RequestRecord:
    id: str
    status: RequestStatus
    profile: str
    ca: str
    protocol: str
    endpoint: str
    requester: str
    auth_method: str
    transaction_id: str | None
    key_fingerprint: str
    subject: str
    sans: tuple[str, ...]
    replaces: str | None
    reason: str
    certificate_serial: str | None
    created_at: dt.datetime
    updated_at: dt.datetime
    csr_pem: str
    attributes: Mapping[str, Any]
    identity: str | None = None
    device_id: str | None = None
    link: str | None = None


@dataclass(frozen=True, slots=True)
class AuditEvent:
    id: int
    at: dt.datetime
    type: str
    actor: str
    request_id: str | None
    serial_hex: str | None
    details: Mapping[str, Any]
    hash: str | None = None
    """Its link in the hash chain (`enroll.store.audit_chain`)."""


@dataclass(frozen=True, slots=True)
class IssuanceRequest:
    """What a CA backend signs. Built from the profile; the CSR only gave the key and the
    names the profile accepted. `extensions` excludes the authority key identifier, which
    the backend adds from its own key."""

    public_key: Any  # a cryptography CertificatePublicKeyTypes
    subject: x509.Name
    serial: int
    not_before: dt.datetime
    not_after: dt.datetime
    extensions: tuple[x509.Extension[x509.ExtensionType], ...]
    hash_name: str | None
    """``sha256`` / ``sha384`` / ``sha512``; None for Ed25519 CAs."""


@dataclass(slots=True)
class CertificateDraft:
    """The certificate being built, handed to `enroll_amend_certificate` plugins.

    Mutable on purpose: a plugin edits it in place. The core re-checks basic constraints
    after the hook, so a plugin cannot turn a leaf profile into a CA.
    """

    subject: x509.Name
    not_before: dt.datetime
    not_after: dt.datetime
    extensions: list[x509.Extension[x509.ExtensionType]]


@dataclass(frozen=True, slots=True)
class ChallengeContext:
    """A challenge password to verify (SCEP challengePassword, EST/other shared secrets).

    `settings` is the endpoint's own challenge configuration as its front-end parsed it.
    """

    protocol: str
    endpoint: str
    challenge: str
    csr: x509.CertificateSigningRequest | None
    settings: Mapping[str, Any]
    transaction_id: str | None = None


@dataclass(frozen=True, slots=True)
class StoredCA:
    """A CA as kept in the `cas` table. `key_blob` is opaque to the core (the local
    backend keeps an encrypted PKCS#8 there; an HSM backend may keep a key label)."""

    name: str
    backend: str
    certificate: x509.Certificate
    chain: tuple[x509.Certificate, ...]
    key_blob: bytes
    parent: str | None


@dataclass(frozen=True, slots=True)
class BlockedKey:
    """A key on the blocklist (`enroll.key_blocklist`)."""

    spki_sha256: str
    reason: str
    source: str
    """``revocation`` (a keyCompromise revocation) or ``operator`` (`enroll keys block`)."""
    serial: str | None
    """The certificate whose revocation blocked it, if any."""
    actor: str
    created_at: dt.datetime
