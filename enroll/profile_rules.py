"""Each rule a profile applies to a CSR, as a small function with a clear refusal.

The CSR only proposes; these rules decide what the certificate may carry. A rule raises
`BadCSR` with a reason a client can act on.
"""

from __future__ import annotations

from dataclasses import dataclass

from cryptography import x509

from enroll import key_checks
from enroll.crypto.keys import key_type_of
from enroll.errors import BadCSR
from enroll.names import check_general_names, csr_names
from enroll.profiles import EKU_NAMES, SUBJECT_ATTRS, Profile

_MAX_ATTR_LEN = {"CN": 64, "O": 64, "OU": 64, "C": 2, "ST": 128, "L": 128,
                 "serialNumber": 64, "emailAddress": 255, "DC": 63, "UID": 64}
_KU_ATTRS = ("digital_signature", "content_commitment", "key_encipherment",
             "data_encipherment", "key_agreement", "key_cert_sign", "crl_sign")


@dataclass(frozen=True, slots=True)
class AcceptedRequest:
    """What a CSR is allowed to put in a certificate under a profile."""

    subject: x509.Name
    names: tuple[x509.GeneralName, ...]
    key_type: str


def check_key(profile: Profile, csr: x509.CertificateSigningRequest) -> str:
    key = csr.public_key()
    key_type = key_type_of(key)
    key_checks.check_public_key(key, profile.rsa_exponents)
    if key_type not in profile.key_types:
        raise BadCSR(f"key type {key_type} is not allowed by profile {profile.name!r} "
                     f"(allowed: {', '.join(profile.key_types)})")
    return key_type


def _requested(csr: x509.CertificateSigningRequest,
               cls: type[x509.ExtensionType]) -> x509.ExtensionType | None:
    try:
        return csr.extensions.get_extension_for_class(cls).value
    except x509.ExtensionNotFound:
        return None
    except ValueError as exc:
        raise BadCSR("CSR extensions could not be parsed") from exc


def check_basic_constraints(profile: Profile, csr: x509.CertificateSigningRequest) -> None:
    bc = _requested(csr, x509.BasicConstraints)
    if isinstance(bc, x509.BasicConstraints) and bc.ca and not profile.is_ca:
        raise BadCSR(f"CSR asks for CA:TRUE; profile {profile.name!r} issues end-entity "
                     "certificates only")


def check_key_usage(profile: Profile, csr: x509.CertificateSigningRequest) -> None:
    ku = _requested(csr, x509.KeyUsage)
    if not isinstance(ku, x509.KeyUsage):
        return
    asked = [name for name in _KU_ATTRS if getattr(ku, name)]
    if ku.key_agreement:
        asked += [n for n in ("encipher_only", "decipher_only") if getattr(ku, n)]
    refused = [name for name in asked if name not in profile.key_usage]
    if refused:
        raise BadCSR(f"key usage {', '.join(refused)} is not allowed by profile "
                     f"{profile.name!r}")


def check_extended_key_usage(profile: Profile, csr: x509.CertificateSigningRequest) -> None:
    eku = _requested(csr, x509.ExtendedKeyUsage)
    if not isinstance(eku, x509.ExtendedKeyUsage):
        return
    allowed = {EKU_NAMES[n] for n in profile.extended_key_usage}
    refused = [oid.dotted_string for oid in eku if oid not in allowed]
    if refused:
        raise BadCSR(f"extended key usage {', '.join(refused)} is not allowed by profile "
                     f"{profile.name!r}")


def build_subject(profile: Profile, csr: x509.CertificateSigningRequest) -> x509.Name:
    """The certificate subject from the profile's template; CSR fields outside the
    template are dropped, fixed fields override the CSR."""
    rdns: list[x509.NameAttribute[str]] = []
    for attr, mode in profile.subject:
        oid = SUBJECT_ATTRS[attr]
        if mode in ("csr", "required"):
            values = [a.value for a in csr.subject.get_attributes_for_oid(oid)]
            if not values and mode == "required":
                raise BadCSR(f"profile {profile.name!r} requires {attr} in the CSR subject")
        else:
            values = [mode]
        for value in values:
            text = value if isinstance(value, str) else value.decode("utf-8", "replace")
            if not text or len(text) > _MAX_ATTR_LEN[attr]:
                raise BadCSR(f"subject {attr} is empty or longer than {_MAX_ATTR_LEN[attr]}")
            try:
                rdns.append(x509.NameAttribute(oid, text))
            except ValueError as exc:
                raise BadCSR(f"subject {attr} is not valid: {exc}") from exc
    return x509.Name(rdns)


def check_cn_in_sans(profile: Profile, subject: x509.Name,
                     names: tuple[x509.GeneralName, ...]) -> None:
    if not profile.cn_in_sans:
        return
    values = {str(n.value).lower() for n in names}
    for cn in subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME):
        if str(cn.value).lower() not in values:
            raise BadCSR(f"common name {str(cn.value)[:64]!r} is not among the requested names")


def accept(profile: Profile, csr: x509.CertificateSigningRequest) -> AcceptedRequest:
    """Run every rule; return what the certificate may carry or raise `BadCSR`."""
    key_type = check_key(profile, csr)
    check_basic_constraints(profile, csr)
    check_key_usage(profile, csr)
    check_extended_key_usage(profile, csr)
    names = tuple(check_general_names(csr_names(csr), profile.san, profile.name))
    subject = build_subject(profile, csr)
    check_cn_in_sans(profile, subject, names)
    if not names and len(subject) == 0:
        raise BadCSR("the certificate would have neither a subject nor any names")
    return AcceptedRequest(subject=subject, names=names, key_type=key_type)
