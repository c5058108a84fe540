"""The check of every issued certificate, after the timed phase: its public key is the
CSR's, its names are the ones asked for, and it chains (signatures verified, validity
checked) to a CA certificate the server published."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID

SPKI = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


@dataclass
class Checked:
    """The outcome of the check phase: the certificates that passed, and why others
    did not."""

    good: list[x509.Certificate] = field(default_factory=list)
    bad: list[str] = field(default_factory=list)

    def add(self, cert: x509.Certificate | None, why: str | None) -> None:
        if cert is not None and why is None:
            self.good.append(cert)
        else:
            self.bad.append(why or "no certificate")


@dataclass(frozen=True)
class Expected:
    """What one request asked for."""

    public_key_der: bytes
    dns_names: tuple[str, ...]
    common_name: str | None = None


def is_ca(cert: x509.Certificate) -> bool:
    try:
        return bool(cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except x509.ExtensionNotFound:
        return False


def load_pem_chain(pem: bytes) -> list[x509.Certificate]:
    return x509.load_pem_x509_certificates(pem)


class Trust:
    """The CA certificates a server published. Anchors are its self-signed ones (or, if
    it published none, every CA certificate it published)."""

    def __init__(self, published: Iterable[x509.Certificate]) -> None:
        self.pool = [c for c in published if is_ca(c)]
        if not self.pool:
            raise ValueError("the server published no CA certificate")
        roots = [c for c in self.pool if c.issuer == c.subject]
        self.anchors = roots or list(self.pool)

    def _issuer_of(self, cert: x509.Certificate,
                   extra: Sequence[x509.Certificate]) -> x509.Certificate | None:
        for candidate in [*extra, *self.pool]:
            if candidate.subject != cert.issuer or not is_ca(candidate):
                continue
            try:
                cert.verify_directly_issued_by(candidate)
            except (InvalidSignature, ValueError, TypeError):
                continue
            return candidate
        return None

    def chain_problem(self, leaf: x509.Certificate,
                      intermediates: Sequence[x509.Certificate] = ()) -> str | None:
        """None if `leaf` chains to an anchor, else what is wrong."""
        now = dt.datetime.now(dt.UTC)
        cert = leaf
        for _ in range(6):
            if not cert.not_valid_before_utc <= now <= cert.not_valid_after_utc:
                return f"{cert.subject.rfc4514_string()} not valid now"
            if cert in self.anchors and cert is not leaf:
                return None
            issuer = self._issuer_of(cert, intermediates)
            if issuer is None:
                return f"no published CA signed {cert.subject.rfc4514_string()}"
            if issuer in self.anchors:
                if not issuer.not_valid_before_utc <= now <= issuer.not_valid_after_utc:
                    return "anchor not valid now"
                return None
            cert = issuer
        return "chain too long"


def problem(cert: x509.Certificate, expected: Expected, trust: Trust,
            intermediates: Sequence[x509.Certificate] = ()) -> str | None:
    """None if `cert` is what was asked for and chains to `trust`, else why not."""
    if cert.public_key().public_bytes(*SPKI) != expected.public_key_der:
        return "public key is not the CSR's"
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        dns = sorted(san.get_values_for_type(x509.DNSName))
    except x509.ExtensionNotFound:
        dns = []
    if dns != sorted(expected.dns_names):
        return f"DNS names {dns}, asked for {sorted(expected.dns_names)}"
    if expected.common_name is not None:
        cns = [str(a.value) for a in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
        if cns != [expected.common_name]:
            return f"CN {cns}, asked for {expected.common_name!r}"
    return trust.chain_problem(cert, intermediates)
