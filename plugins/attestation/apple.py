"""The ``apple`` attestation format: Apple's managed device attestation, sent by the
ACME payload of iOS/iPadOS 16+, macOS 13+ and tvOS 16+ (draft-ietf-acme-device-attest).

The statement is ``{"x5c": [leaf, intermediate…]}``; the leaf is issued by Apple to a key
the Secure Enclave generated, and carries the device's identifiers and a nonce as
extensions whose value is the raw bytes (no ASN.1 wrapping), as step-ca reads them:

- 1.2.840.113635.100.8.9.1 the serial number, .8.9.2 the UDID;
- 1.2.840.113635.100.8.11.1 the freshness nonce: SHA-256 of the challenge token (what
  the devices send), or of the key authorization (accepted too: it binds the account).

The nonce is required (step-ca accepts a leaf without one; an attestation without
freshness could be replayed). ``authData`` is not used: the leaf's key is the attested
key. The chain must end at the endpoint's configured anchor, else at the Apple
Enterprise Attestation Root CA below."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
from collections.abc import Sequence

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm

from enroll.attestation import AttestationContext, AttestationRefused, AttestedIdentity
from enroll.crypto.keys import spki_sha256
from enroll.hookspecs import hookimpl

FORMAT = "apple"
OID_SERIAL = x509.ObjectIdentifier("1.2.840.113635.100.8.9.1")
OID_UDID = x509.ObjectIdentifier("1.2.840.113635.100.8.9.2")
OID_NONCE = x509.ObjectIdentifier("1.2.840.113635.100.8.11.1")
MAX_CHAIN = 8
MAX_CERT_BYTES = 16384
MAX_ID = 128

# The Apple Enterprise Attestation Root CA (https://www.apple.com/certificateauthority/
# private/), as step-ca embeds it (acme/challenge.go); SHA-256 of the DER checked in
# tests/protocols/acme/test_device_attest.py.
APPLE_ENTERPRISE_ATTESTATION_ROOT = b"""-----BEGIN CERTIFICATE-----
MIICJDCCAamgAwIBAgIUQsDCuyxyfFxeq/bxpm8frF15hzcwCgYIKoZIzj0EAwMw
UTEtMCsGA1UEAwwkQXBwbGUgRW50ZXJwcmlzZSBBdHRlc3RhdGlvbiBSb290IENB
MRMwEQYDVQQKDApBcHBsZSBJbmMuMQswCQYDVQQGEwJVUzAeFw0yMjAyMTYxOTAx
MjRaFw00NzAyMjAwMDAwMDBaMFExLTArBgNVBAMMJEFwcGxlIEVudGVycHJpc2Ug
QXR0ZXN0YXRpb24gUm9vdCBDQTETMBEGA1UECgwKQXBwbGUgSW5jLjELMAkGA1UE
BhMCVVMwdjAQBgcqhkjOPQIBBgUrgQQAIgNiAAT6Jigq+Ps9Q4CoT8t8q+UnOe2p
oT9nRaUfGhBTbgvqSGXPjVkbYlIWYO+1zPk2Sz9hQ5ozzmLrPmTBgEWRcHjA2/y7
7GEicps9wn2tj+G89l3INNDKETdxSPPIZpPj8VmjQjBAMA8GA1UdEwEB/wQFMAMB
Af8wHQYDVR0OBBYEFPNqTQGd8muBpV5du+UIbVbi+d66MA4GA1UdDwEB/wQEAwIB
BjAKBggqhkjOPQQDAwNpADBmAjEA1xpWmTLSpr1VH4f8Ypk8f3jMUKYz4QPG8mL5
8m9sX/b2+eXpTv2pH4RZgJjucnbcAjEA4ZSB6S45FlPuS/u4pTnzoz632rA+xW/T
ZwFEh9bhKjJ+5VQ9/Do1os0u3LEkgN/r
-----END CERTIFICATE-----
"""


def default_roots() -> tuple[x509.Certificate, ...]:
    return (x509.load_pem_x509_certificate(APPLE_ENTERPRISE_ATTESTATION_ROOT),)


def _chain(statement: object) -> list[x509.Certificate]:
    x5c = statement.get("x5c") if isinstance(statement, dict) else None
    if not isinstance(x5c, list) or not x5c:
        raise AttestationRefused("the apple statement needs a non-empty x5c")
    if len(x5c) > MAX_CHAIN:
        raise AttestationRefused("x5c is too long")
    chain = []
    for der in x5c:
        if not isinstance(der, bytes) or len(der) > MAX_CERT_BYTES:
            raise AttestationRefused("x5c is malformed")
        try:
            cert = x509.load_der_x509_certificate(der)
            # Parsed lazily by cryptography: a malformed extension or key fails here,
            # not later in the checks.
            _ = cert.extensions, cert.public_key()
        except (ValueError, UnsupportedAlgorithm):
            raise AttestationRefused("x5c holds a certificate that does not parse") from None
        chain.append(cert)
    return chain


def _current(cert: x509.Certificate, now: dt.datetime) -> None:
    if not cert.not_valid_before_utc <= now <= cert.not_valid_after_utc:
        raise AttestationRefused(f"x5c certificate {cert.subject.rfc4514_string()[:80]!r} "
                                 "is not valid now")


def _is_ca(cert: x509.Certificate) -> bool:
    try:
        return cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        return False


def _signed_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature, UnsupportedAlgorithm):
        return False
    return True


def verify_chain(chain: Sequence[x509.Certificate], roots: Sequence[x509.Certificate],
                 now: dt.datetime) -> None:
    """Each certificate signed by the next, issuers CAs, all current, the last signed by
    (or being) one of `roots`."""
    for cert in chain:
        _current(cert, now)
    for cert, issuer in zip(chain, chain[1:], strict=False):
        if not _is_ca(issuer) or not _signed_by(cert, issuer):
            raise AttestationRefused("x5c is not a chain")
    top = chain[-1]
    for root in roots:
        if top == root or (_is_ca(root) and _signed_by(top, root)):
            _current(root, now)
            return
    raise AttestationRefused("x5c does not chain to the trusted attestation root")


def _raw(leaf: x509.Certificate, oid: x509.ObjectIdentifier) -> bytes | None:
    try:
        value = leaf.extensions.get_extension_for_oid(oid).value
    except x509.ExtensionNotFound:
        return None
    return value.value if isinstance(value, x509.UnrecognizedExtension) else None


def _text(leaf: x509.Certificate, oid: x509.ObjectIdentifier) -> str | None:
    raw = _raw(leaf, oid)
    if raw is None:
        return None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise AttestationRefused("a device identifier is not UTF-8") from None
    if not text or len(text) > MAX_ID or not text.isprintable():
        raise AttestationRefused("a device identifier is malformed")
    return text


def verify(context: AttestationContext) -> AttestedIdentity:
    chain = _chain(context.statement)
    verify_chain(chain, context.roots or default_roots(), context.now)
    leaf = chain[0]
    nonce = _raw(leaf, OID_NONCE)
    if nonce is None:
        raise AttestationRefused("the attestation carries no nonce")
    expected = (hashlib.sha256(context.token.encode()).digest(),
                hashlib.sha256(context.key_authorization.encode()).digest())
    # Both compared, in constant time: which one matched is not revealed by timing.
    matches = [hmac.compare_digest(nonce, e) for e in expected]
    if not any(matches):
        raise AttestationRefused("the attestation nonce is not this challenge's")
    serial, udid = _text(leaf, OID_SERIAL), _text(leaf, OID_UDID)
    if serial is None and udid is None:
        raise AttestationRefused("the attestation names no device")
    identifiers = frozenset(i for i in (serial, udid) if i is not None)
    return AttestedIdentity(fmt=FORMAT, identifiers=identifiers,
                            key_sha256=spki_sha256(leaf.public_key()),
                            device_id=serial or udid or "")


@hookimpl
def enroll_verify_attestation(context: AttestationContext) -> AttestedIdentity | None:
    if context.fmt != FORMAT:
        return None
    return verify(context)
