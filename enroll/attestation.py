"""Device attestation as the core sees it: what a door hands a verifier, and what the
verifier proved (ACME device-attest-01, draft-ietf-acme-device-attest).

A door parses its wire format (ACME: the CBOR attestation object) into an
`AttestationContext` and asks the ``enroll_verify_attestation`` hook; the verifier for
that statement format (the built-in ``apple``, a plugin's ``tpm``…) checks the chain to
its trust anchor and the freshness nonce, and answers an `AttestedIdentity`: the device
identifiers and the key the hardware holds. The door then decides whether the identity
is the one the client asked for, and the core issues only to that identity and key."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cryptography import x509


@dataclass(frozen=True, slots=True)
class AttestationContext:
    fmt: str
    """The statement format (WebAuthn ``fmt``): ``apple``, ``tpm``…"""
    statement: Mapping[str, Any]
    """The format's attestation statement (``attStmt``), as decoded."""
    auth_data: bytes
    token: str
    """The challenge token; `key_authorization` is ``token.thumbprint``."""
    key_authorization: str
    identifier: tuple[str, str]
    """(type, value) the client asked for, e.g. ``("permanent-identifier", "C02X…")``."""
    protocol: str
    endpoint: str
    roots: tuple[x509.Certificate, ...] | None
    """The endpoint's trust anchors for this format; None: the verifier's default."""
    now: dt.datetime


@dataclass(frozen=True, slots=True)
class AttestedIdentity:
    fmt: str
    identifiers: frozenset[str]
    """Every identifier the hardware attests (Apple: serial number and UDID)."""
    key_sha256: str
    """Hex SHA-256 of the attested key's SubjectPublicKeyInfo
    (`enroll.crypto.keys.spki_sha256`): the certificate must be for this key."""
    device_id: str
    """What the inventory records as the device (Apple: the serial number)."""


class AttestationRefused(Exception):  # noqa: N818 - reads as the outcome it reports
    """The statement does not verify; `detail` is shown to the client (a door maps it to
    its wire format: ACME ``badAttestationStatement``). Not an `EnrollError`: it never
    leaves the door that asked."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail
