"""Building the certificate from the profile (never from the CSR).

`draft()` turns an accepted request into a `CertificateDraft` (subject, validity,
extensions); plugins may amend it; `finalise()` re-asserts what no plugin may change and
returns the `IssuanceRequest` a CA backend signs.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import AuthorityInformationAccessOID

from enroll.errors import BadCSR
from enroll.model import CertificateDraft, IssuanceRequest
from enroll.profile_rules import AcceptedRequest
from enroll.profiles import EKU_NAMES, Profile

# RFC 5480 §3 / RFC 8410 §5: usages an EC or EdDSA key must not carry.
_NOT_FOR_SIGNATURE_KEYS = {"key_encipherment", "data_encipherment"}
_NOT_FOR_EDDSA = _NOT_FOR_SIGNATURE_KEYS | {"key_agreement", "encipher_only", "decipher_only"}
_NOT_FOR_RSA = {"key_agreement", "encipher_only", "decipher_only"}


def ca_urls(profile: Profile, ca: str) -> dict[str, str]:
    base = profile.public_http_url
    return {"crl": f"{base}/crl/{ca}.crl", "ocsp": f"{base}/ocsp",
            "ca_issuers": f"{base}/ca/{ca}.der"}


def key_usage_for(profile: Profile, public_key: Any) -> x509.KeyUsage:
    allowed = set(profile.key_usage)
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        allowed -= _NOT_FOR_SIGNATURE_KEYS
    elif isinstance(public_key, ed25519.Ed25519PublicKey):
        allowed -= _NOT_FOR_EDDSA
    elif isinstance(public_key, rsa.RSAPublicKey):
        allowed -= _NOT_FOR_RSA
    if not allowed:
        allowed = {"digital_signature"}
    key_agreement = "key_agreement" in allowed
    return x509.KeyUsage(
        digital_signature="digital_signature" in allowed,
        content_commitment="content_commitment" in allowed,
        key_encipherment="key_encipherment" in allowed,
        data_encipherment="data_encipherment" in allowed,
        key_agreement=key_agreement,
        key_cert_sign="key_cert_sign" in allowed,
        crl_sign="crl_sign" in allowed,
        encipher_only=key_agreement and "encipher_only" in allowed,
        decipher_only=key_agreement and "decipher_only" in allowed,
    )


def draft(profile: Profile, accepted: AcceptedRequest, public_key: Any, ca_name: str,
          ca_certificate: x509.Certificate, now: dt.datetime) -> CertificateDraft:
    not_before = now - dt.timedelta(seconds=profile.backdate)
    not_after = min(now + dt.timedelta(seconds=profile.validity),
                    ca_certificate.not_valid_after_utc)
    if not_after <= now:
        raise BadCSR(f"CA {ca_name!r} has expired; nothing can be issued under it")
    exts: list[x509.Extension[x509.ExtensionType]] = []

    def add(value: x509.ExtensionType, critical: bool) -> None:
        exts.append(x509.Extension(value.oid, critical, value))

    add(x509.BasicConstraints(ca=profile.is_ca,
                              path_length=profile.path_length if profile.is_ca else None), True)
    add(key_usage_for(profile, public_key), True)
    if profile.extended_key_usage:
        add(x509.ExtendedKeyUsage([EKU_NAMES[n] for n in profile.extended_key_usage]), False)
    if accepted.names:
        # RFC 5280 §4.2.1.6: critical when the subject is empty.
        add(x509.SubjectAlternativeName(list(accepted.names)), len(accepted.subject) == 0)
    add(x509.SubjectKeyIdentifier.from_public_key(public_key), False)
    urls = ca_urls(profile, ca_name)
    if profile.crl:
        add(x509.CRLDistributionPoints([x509.DistributionPoint(
            full_name=[x509.UniformResourceIdentifier(urls["crl"])], relative_name=None,
            reasons=None, crl_issuer=None)]), False)
    access: list[x509.AccessDescription] = []
    if profile.ocsp:
        access.append(x509.AccessDescription(AuthorityInformationAccessOID.OCSP,
                                             x509.UniformResourceIdentifier(urls["ocsp"])))
    if profile.aia:
        access.append(x509.AccessDescription(AuthorityInformationAccessOID.CA_ISSUERS,
                                             x509.UniformResourceIdentifier(urls["ca_issuers"])))
    if access:
        add(x509.AuthorityInformationAccess(access), False)
    return CertificateDraft(subject=accepted.subject, not_before=not_before,
                            not_after=not_after, extensions=exts)


def finalise(profile: Profile, d: CertificateDraft, public_key: Any, serial: int,
             ca_certificate: x509.Certificate) -> IssuanceRequest:
    """Re-assert the profile's basic constraints (a plugin cannot make a leaf a CA) and
    keep validity inside the issuer's."""
    exts = [e for e in d.extensions if not isinstance(e.value, x509.BasicConstraints)
            and not isinstance(e.value, x509.AuthorityKeyIdentifier)]
    bc = x509.BasicConstraints(ca=profile.is_ca,
                               path_length=profile.path_length if profile.is_ca else None)
    exts.insert(0, x509.Extension(bc.oid, True, bc))
    seen: set[x509.ObjectIdentifier] = set()
    for e in exts:
        if e.oid in seen:
            raise BadCSR(f"extension {e.oid.dotted_string} would appear twice")
        seen.add(e.oid)
    not_after = min(d.not_after, ca_certificate.not_valid_after_utc)
    return IssuanceRequest(public_key=public_key, subject=d.subject, serial=serial,
                           not_before=d.not_before, not_after=not_after,
                           extensions=tuple(exts), hash_name=profile.signature_hash)
