"""Each rule a profile applies to a CSR, as a small function with a clear refusal.

The CSR only proposes; these rules decide what the certificate may carry. A rule raises
`BadCSR` with a reason a client can act on.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from cryptography import x509
from cryptography.x509.name import _ASN1Type

from enroll import key_checks
from enroll.crypto.keys import key_type_of
from enroll.errors import BadCSR
from enroll.model import Authorization
from enroll.names import check_general_names, csr_names, names_as_strings
from enroll.profiles import (
    ANY_SAN,
    EKU_NAMES,
    REQUESTER,
    REQUIRED_FROM_CSR,
    SUBJECT_ATTRS,
    Profile,
    value_matches,
)

T = TypeVar("T")
_KU_ATTRS = ("digital_signature", "content_commitment", "key_encipherment",
             "data_encipherment", "key_agreement", "key_cert_sign", "crl_sign")


@dataclass(frozen=True, slots=True)
class AcceptedRequest:
    """What a CSR is allowed to put in a certificate under a profile."""

    subject: x509.Name
    names: tuple[x509.GeneralName, ...]
    key_type: str
    identity: str
    """``<profile identity>:<value>``, recorded with the certificate."""


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


# RFC 5280 Appendix A upper bounds (DC: one DNS label, RFC 4519).
_MAX_ATTR_LEN = {"CN": 64, "O": 64, "OU": 64, "C": 2, "ST": 128, "L": 128,
                 "serialNumber": 64, "emailAddress": 255, "DC": 63, "UID": 256}
# X.520: countryName and serialNumber are PrintableString only; RFC 5280 / 4519:
# emailAddress and domainComponent are IA5String; the rest are DirectoryString, written
# as UTF8String (RFC 5280 §4.1.2.6).
_PRINTABLE = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789 '()+,-./:=?")
_STRING_TYPE = {"C": _ASN1Type.PrintableString, "serialNumber": _ASN1Type.PrintableString,
                "emailAddress": _ASN1Type.IA5String, "DC": _ASN1Type.IA5String}


def has_control_characters(text: str) -> bool:
    """C0 and C1 controls and DEL (a NUL in a CN fools C string comparisons)."""
    return any(ord(c) < 0x20 or 0x7F <= ord(c) < 0xA0 for c in text)


def _attribute(attr: str, text: str) -> x509.NameAttribute[str]:
    """One subject attribute, checked against RFC 5280's bounds and encoded as its type
    demands; refused as a bad CSR rather than failing at signing time."""
    if not text or len(text) > _MAX_ATTR_LEN[attr]:
        raise BadCSR(f"subject {attr} is empty or longer than {_MAX_ATTR_LEN[attr]}")
    if has_control_characters(text):
        raise BadCSR(f"subject {attr} contains control characters")
    kind = _STRING_TYPE.get(attr, _ASN1Type.UTF8String)
    if kind is _ASN1Type.PrintableString and not set(text) <= _PRINTABLE:
        raise BadCSR(f"subject {attr} may only hold PrintableString characters "
                     "(letters, digits, space and '()+,-./:=?)")
    if kind is _ASN1Type.IA5String and not text.isascii():
        raise BadCSR(f"subject {attr} must be ASCII")
    if attr == "C" and (len(text) != 2 or not text.isalpha()):
        raise BadCSR("subject C must be a two-letter country code")
    return x509.NameAttribute(SUBJECT_ATTRS[attr], text, _type=kind)


def _csr_values(csr: x509.CertificateSigningRequest, oid: x509.ObjectIdentifier) -> list[str]:
    try:
        attrs = csr.subject.get_attributes_for_oid(oid)
    except ValueError as exc:
        raise BadCSR("the CSR subject could not be decoded") from exc
    out = []
    for a in attrs:
        if not isinstance(a.value, str):
            raise BadCSR(f"subject attribute {oid.dotted_string} is not a string")
        out.append(a.value)
    return out


def build_subject(profile: Profile, csr: x509.CertificateSigningRequest,
                  authorized: Authorization | None = None) -> x509.Name:
    """The certificate subject from the profile's template: fixed fields from the
    profile, the others from the CSR only if they match the field's patterns (and, for
    an authorised request, were authorised). CSR attributes outside the template do not
    reach the certificate."""
    rdns: list[x509.NameAttribute[str]] = []
    allowed_names = {_fold_name(n.partition(":")[2]) for n in authorized.names} \
        if authorized is not None else set()
    for field in profile.subject:
        oid = SUBJECT_ATTRS[field.attr]
        if not field.from_csr:
            rdns.append(_attribute(field.attr, field.value))
            continue
        values = _csr_values(csr, oid)
        if not values and field.source == REQUIRED_FROM_CSR:
            raise BadCSR(f"profile {profile.name!r} requires {field.attr} in the CSR subject")
        for text in values:
            shown = text[:64].encode("unicode_escape").decode()
            if not any(value_matches(text, p) for p in field.allow):
                raise BadCSR(f"subject {field.attr} {shown!r} is not allowed by profile "
                             f"{profile.name!r}")
            if authorized is not None and (oid.dotted_string, text) not in authorized.subject \
                    and not (field.attr == "CN" and _fold_name(text) in allowed_names):
                raise BadCSR(f"subject {field.attr} {shown!r} is not among "
                             f"{authorized.source or 'the names authorised for this request'}")
            rdns.append(_attribute(field.attr, text))
    return x509.Name(rdns)


def _fold_name(text: str) -> str:
    """A name as compared: case-folded, without a DNS name's one trailing dot."""
    text = text.lower()
    return text[:-1] if text.endswith(".") else text


def check_common_name(profile: Profile, subject: x509.Name,
                      names: tuple[x509.GeneralName, ...]) -> x509.Name:
    """The CN is a name like any other: one of the certificate's SANs (and then written
    as that SAN is), unless the CN is the profile's identity (its patterns decided)."""
    if profile.identity == "subject.CN":
        return subject
    values = {_fold_name(s.partition(":")[2]): s.partition(":")[2]
              for s in names_as_strings(names)}
    rdns: list[x509.NameAttribute[str]] = []
    for attr in subject:
        if attr.oid == x509.NameOID.COMMON_NAME:
            text = str(attr.value)
            if _fold_name(text) not in values:
                raise BadCSR(f"common name {text[:64]!r} must also be one of the "
                             f"certificate's subject alternative names (profile "
                             f"{profile.name!r})")
            attr = _attribute("CN", values[_fold_name(text)])
        rdns.append(attr)  # type: ignore[arg-type]
    return x509.Name(rdns)


def check_authorized_names(names: tuple[x509.GeneralName, ...],
                           authorized: Authorization | None) -> None:
    if authorized is None:
        return
    allowed = {n.lower() for n in authorized.names}
    for name in names_as_strings(names):
        if name.lower() not in allowed:
            raise BadCSR(f"{name[:80]} is not among "
                         f"{authorized.source or 'the names authorised for this request'}")


def identity_of(profile: Profile, subject: x509.Name, names: tuple[x509.GeneralName, ...],
                requester: str) -> str:
    """The identity the profile gives a certificate with this subject and names:
    ``<identity setting>:<value>``. SAN identities take the CN when it is such a name,
    else the first such name in order."""
    kind = profile.identity
    if kind == REQUESTER:
        return f"{kind}:{requester}"
    if kind.startswith("subject."):
        values = subject.get_attributes_for_oid(SUBJECT_ATTRS[kind[8:]])
        if not values:
            raise BadCSR(f"profile {profile.name!r} identifies certificates by their "
                         f"subject {kind[8:]}, which the CSR does not carry")
        return f"{kind}:{values[0].value!s}"
    prefix = "" if kind == ANY_SAN else kind[4:] + ":"
    typed = [n for n in names_as_strings(names) if n.startswith(prefix)]
    if not typed:
        raise BadCSR(f"profile {profile.name!r} identifies certificates by "
                     f"{'a ' + kind[4:] + ' name' if prefix else 'their names'}, and the "
                     "CSR has none")
    cns = {_fold_name(str(a.value)) for a in subject.get_attributes_for_oid(
        x509.NameOID.COMMON_NAME)}
    chosen = next((t for t in typed if _fold_name(t.partition(":")[2]) in cns), typed[0])
    return f"{kind}:{chosen[len(prefix):]}"


def identity_of_certificate(profile: Profile, cert: x509.Certificate, requester: str) -> str:
    """The identity of a stored certificate under `profile` (for certificates stored
    before identities were recorded)."""
    try:
        names = tuple(cert.extensions.get_extension_for_class(
            x509.SubjectAlternativeName).value)
    except x509.ExtensionNotFound:
        names = ()
    return identity_of(profile, cert.subject, names, requester)


@dataclass(frozen=True, slots=True)
class RuleVerdict:
    """One rule's verdict on a request (`accept` with ``verdicts``, the troubleshooting
    check): ``passed``, ``refused`` (with the refusal as the client is told it) or
    ``not run`` (a rule it needs refused first)."""

    rule: str
    verdict: str
    reason: str = ""

    def as_json(self) -> dict[str, str]:
        return {"rule": self.rule, "verdict": self.verdict, "reason": self.reason}


class _Rules:
    """Runs the rules in order. Without a verdict list the first refusal is raised at
    once (the pipeline); with one every rule that can run runs, each verdict is
    recorded, and the first refusal (in rule order: the one the pipeline raises) is
    raised at the end."""

    def __init__(self, verdicts: list[RuleVerdict] | None) -> None:
        self.verdicts = verdicts
        self.first: BadCSR | None = None

    def run(self, rule: str, check: Callable[[], T], *needs: object) -> T | None:
        if any(n is None for n in needs):
            self._note(rule, "not run", "a rule it depends on refused the request")
            return None
        try:
            result = check()
        except BadCSR as exc:
            if self.verdicts is None:
                raise
            self.first = self.first or exc
            self._note(rule, "refused", exc.detail)
            return None
        self._note(rule, "passed")
        return result

    def _note(self, rule: str, verdict: str, reason: str = "") -> None:
        if self.verdicts is not None:
            self.verdicts.append(RuleVerdict(rule, verdict, reason))


def _not_empty(names: tuple[x509.GeneralName, ...], subject: x509.Name) -> bool:
    if not names and len(subject) == 0:
        raise BadCSR("the certificate would have neither a subject nor any names")
    return True


def accept(profile: Profile, csr: x509.CertificateSigningRequest,
           authorized: Authorization | None = None,
           requester: str = "", verdicts: list[RuleVerdict] | None = None) -> AcceptedRequest:
    """Run every rule; return what the certificate may carry or raise `BadCSR`. With
    `verdicts`, each rule's verdict is appended to it (see `_Rules`)."""
    rules = _Rules(verdicts)
    key_type = rules.run("key type and size", lambda: check_key(profile, csr))
    rules.run("basic constraints", lambda: check_basic_constraints(profile, csr))
    rules.run("key usage", lambda: check_key_usage(profile, csr))
    rules.run("extended key usage", lambda: check_extended_key_usage(profile, csr))
    names = rules.run("subject alternative names",
                      lambda: tuple(check_general_names(csr_names(csr), profile.san,
                                                        profile.name)))
    rules.run("authorised names", lambda: check_authorized_names(names or (), authorized),
              names)
    subject = rules.run("subject",
                        lambda: check_common_name(profile,
                                                  build_subject(profile, csr, authorized),
                                                  names or ()), names)
    rules.run("subject or names present", lambda: _not_empty(names or (), subject or
                                                             x509.Name([])), subject)
    identity = rules.run("identity",
                         lambda: identity_of(profile, subject or x509.Name([]), names or (),
                                             requester), subject)
    if rules.first is not None:
        raise rules.first
    assert key_type is not None and names is not None and subject is not None \
        and identity is not None
    return AcceptedRequest(subject=subject, names=names, key_type=key_type,
                           identity=identity)
