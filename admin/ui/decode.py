"""What the console shows of a CSR or a certificate: plain strings, decoded here once
(the templates escape them; nothing here is markup)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa

MAX_NAMES = 200


def key_description(key: Any) -> str:
    if isinstance(key, rsa.RSAPublicKey):
        return f"RSA {key.key_size} bits"
    if isinstance(key, ec.EllipticCurvePublicKey):
        return f"EC {key.curve.name} ({key.key_size} bits)"
    if isinstance(key, ed25519.Ed25519PublicKey):
        return "Ed25519"
    if isinstance(key, ed448.Ed448PublicKey):
        return "Ed448"
    if isinstance(key, dsa.DSAPublicKey):
        return f"DSA {key.key_size} bits"
    return type(key).__name__


def _names(extensions: x509.Extensions) -> list[str]:
    try:
        san = extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    kinds: dict[type, str] = {x509.DNSName: "DNS", x509.RFC822Name: "email",
                              x509.UniformResourceIdentifier: "URI", x509.IPAddress: "IP"}
    out = []
    for name in list(san)[:MAX_NAMES]:
        out.append(f"{kinds.get(type(name), type(name).__name__)}:{name.value}")
    return out


def _algorithm(oid: x509.ObjectIdentifier) -> str:
    return getattr(oid, "_name", None) or oid.dotted_string


@dataclass(frozen=True, slots=True)
class CSRView:
    subject: str
    names: list[str]
    key: str
    signature: str
    signature_valid: bool
    attributes: list[str]


def csr(pem: str) -> CSRView | None:
    """The CSR of a request decoded, None if it cannot be read."""
    try:
        req = x509.load_pem_x509_csr(pem.encode())
        key = key_description(req.public_key())
        valid = req.is_signature_valid
    except (ValueError, TypeError):
        return None
    attributes = []
    for attribute in req.attributes:
        name = _algorithm(attribute.oid)
        # Never show a challenge password: it is a secret of the door.
        attributes.append(f"{name} (not shown)" if "challenge" in name.lower() else name)
    return CSRView(subject=req.subject.rfc4514_string() or "(empty)", names=_names(req.extensions),
                   key=key, signature=_algorithm(req.signature_algorithm_oid),
                   signature_valid=valid, attributes=attributes)


@dataclass(frozen=True, slots=True)
class CertificateView:
    subject: str
    issuer: str
    serial: str
    not_before: str
    not_after: str
    names: list[str]
    key: str
    signature: str
    sha256: str
    extensions: list[str]
    pem: str


def certificate(cert: x509.Certificate) -> CertificateView:
    return CertificateView(
        subject=cert.subject.rfc4514_string() or "(empty)",
        issuer=cert.issuer.rfc4514_string(), serial=format(cert.serial_number, "x"),
        not_before=cert.not_valid_before_utc.isoformat(timespec="seconds"),
        not_after=cert.not_valid_after_utc.isoformat(timespec="seconds"),
        names=_names(cert.extensions), key=key_description(cert.public_key()),
        signature=_algorithm(cert.signature_algorithm_oid),
        sha256=cert.fingerprint(hashes.SHA256()).hex(":"),
        extensions=[f"{_algorithm(e.oid)}{' (critical)' if e.critical else ''}"
                    for e in cert.extensions],
        pem=cert.public_bytes(serialization.Encoding.PEM).decode())
