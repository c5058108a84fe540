"""Certificate download (RFC 8555 §7.4.2) with an alternate chain, and revocation
(§7.6) signed by the account or by the certificate's own key."""

from __future__ import annotations

from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from enroll.client_certificates import load_certificate
from enroll.errors import Conflict, EnrollError, MalformedInput, NotFound

from .accounts import Verified
from .endpoint import AcmeEndpoint
from .jws import b64d, key_from_jwk
from .orders import load_order
from .problems import AcmeProblem, from_error, malformed, not_found, unauthorized

PEM_CHAIN = "application/pem-certificate-chain"
MAX_CERT = 16 * 1024
_REASONS = {0: x509.ReasonFlags.unspecified, 1: x509.ReasonFlags.key_compromise,
            3: x509.ReasonFlags.affiliation_changed, 4: x509.ReasonFlags.superseded,
            5: x509.ReasonFlags.cessation_of_operation}


def chains(ep: AcmeEndpoint, v: Verified, order_id: str) -> list[bytes]:
    """PEM chains for the order's certificate: [0] the default (leaf + intermediates),
    [1] the alternate that also carries the root."""
    order = load_order(ep, v, order_id)
    if order.status != "valid" or not order.certificate_serial:
        raise not_found("no certificate for this order yet")
    record = ep.authority.certificate(order.certificate_serial)
    if record is None:
        raise not_found("no such certificate")
    leaf = record.certificate.public_bytes(Encoding.PEM)
    chain = ep.authority.chain(record.ca)
    up = [c.public_bytes(Encoding.PEM) for c in chain]
    short = up[:-1] if len(up) > 1 else up
    out = [leaf + b"".join(short)]
    if len(up) > len(short):
        out.append(leaf + b"".join(up))
    return out


def _spki(key: Any) -> bytes:
    return bytes(key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo))


def revoke(ep: AcmeEndpoint, v: Verified) -> None:
    payload = v.jws.payload()
    der = b64d(payload.get("certificate"), "certificate")
    if len(der) > MAX_CERT:
        raise malformed("certificate too large")
    try:
        cert = load_certificate(der, public_key=False)
    except MalformedInput:
        raise malformed("certificate does not parse") from None
    reason_code = payload.get("reason", 0)
    if not isinstance(reason_code, int) or isinstance(reason_code, bool) \
            or reason_code not in _REASONS:
        raise AcmeProblem("badRevocationReason", "unsupported revocation reason")
    record = ep.authority.lookup(cert)
    if record is None:
        raise not_found("this certificate was not issued here")
    if v.account is not None:
        if not record.requester.endswith(f"/acct/{v.account.id}"):
            raise unauthorized("this account did not request that certificate")
        actor = record.requester
    else:
        assert v.jwk is not None
        key, _ = key_from_jwk(v.jwk)
        if _spki(key) != _spki(cert.public_key()):
            raise unauthorized("the JWS key is not the certificate's key")
        actor = f"cert:{record.serial_hex}"
    if record.status.value == "revoked":
        raise AcmeProblem("alreadyRevoked", "certificate is already revoked")
    try:
        ep.authority.revoke(record.serial_hex, _REASONS[reason_code], actor)
    except Conflict:
        raise AcmeProblem("alreadyRevoked", "certificate is already revoked") from None
    except NotFound:
        raise not_found("no such certificate") from None
    except EnrollError as exc:
        raise from_error(exc) from None
