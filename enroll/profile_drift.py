"""Where issued certificates differ from what their profile would build today:
``enroll certs check SERIAL`` and ``enroll certs check --profile X``.

A certificate is compared with its profile as configured now, by the engine's own
rules and builder: the profile's rules (`enroll.profile_rules.accept`: key type and
size, names, subject template, identity) run on the certificate as they ran on its CSR,
the key usage the builder would give its key (`enroll.templates.key_usage_for`), the
extended key usage, basic constraints, the signature hash and the validity length.
A certificate *longer* than the profile's validity (plus its backdate) differs; a
shorter one does not (a client may ask for less, a migration policy or the CA's own
expiry may cut it).

The bulk report walks the profile's certificates a page at a time
(`enroll.store.certificate_pages`) and keeps at most ``limit`` differing ones, so a
profile of a million certificates costs one page of memory.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any, cast

from cryptography import x509

from enroll import profile_rules, templates
from enroll.errors import BadCSR
from enroll.model import CertificateRecord
from enroll.names import names_as_strings
from enroll.profiles import EKU_NAMES, Profile
from enroll.request_check import key_usage_names
from enroll.store import certificate_pages
from enroll.store.db import Database

PAGE = 500
MAX_LIMIT = 10_000
SLACK = dt.timedelta(seconds=60)
"""Validity longer than the profile's by less than this is rounding, not drift."""
_EKU_BY_OID = {oid: name for name, oid in EKU_NAMES.items()}
_RULES_ON_CERTIFICATES = ("key type and size", "subject alternative names", "subject",
                          "subject or names present", "identity")
"""The profile rules that say something about an issued certificate (key usage, EKU
and basic constraints are compared with what the builder makes instead)."""


@dataclass(frozen=True, slots=True)
class Difference:
    aspect: str
    certificate: str
    """What the certificate holds."""
    profile: str
    """What the profile would build, or its rule's refusal."""

    def as_json(self) -> dict[str, str]:
        return {"aspect": self.aspect, "certificate": self.certificate,
                "profile": self.profile}


@dataclass(frozen=True, slots=True)
class CertificateDrift:
    serial: str
    profile: str
    status: str
    not_after: dt.datetime
    identity: str | None
    differences: tuple[Difference, ...]

    @property
    def differs(self) -> bool:
        return bool(self.differences)

    def as_json(self) -> dict[str, Any]:
        return {"serial": self.serial, "profile": self.profile, "status": self.status,
                "not_after": self.not_after.isoformat(timespec="seconds"),
                "identity": self.identity, "differs": self.differs,
                "differences": [d.as_json() for d in self.differences]}


@dataclass(frozen=True, slots=True)
class ProfileDrift:
    profile: str
    checked: int
    differing: int
    certificates: tuple[CertificateDrift, ...]
    """The first `limit` differing certificates, in serial order."""
    live_only: bool

    @property
    def truncated(self) -> bool:
        return self.differing > len(self.certificates)

    def as_json(self) -> dict[str, Any]:
        return {"profile": self.profile, "checked": self.checked,
                "differing": self.differing, "live_only": self.live_only,
                "truncated": self.truncated,
                "certificates": [c.as_json() for c in self.certificates]}


def span(seconds: float) -> str:
    """``30d 1m``: the non-zero days, hours, minutes and seconds."""
    left, parts = int(seconds), list[str]()
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if left >= size or (unit == "s" and not parts):
            parts.append(f"{left // size}{unit}")
            left %= size
    return " ".join(parts)


def _extension(cert: x509.Certificate, cls: type[x509.ExtensionType]) -> Any:
    try:
        return cert.extensions.get_extension_for_class(cls).value
    except x509.ExtensionNotFound:
        return None


def _rules(record: CertificateRecord, profile: Profile) -> list[Difference]:
    """The profile's rules on the certificate (it offers what a CSR offers: a key, a
    subject, extensions), and the subject, names and identity they would give it."""
    cert = record.certificate
    verdicts: list[profile_rules.RuleVerdict] = []
    try:
        accepted = profile_rules.accept(profile, cast(x509.CertificateSigningRequest, cert),
                                        requester=record.requester, verdicts=verdicts)
    except BadCSR:
        accepted = None
    out = [Difference(f"rule: {v.rule}", "", v.reason) for v in verdicts
           if v.verdict == "refused" and v.rule in _RULES_ON_CERTIFICATES]
    if accepted is None:
        return out
    if accepted.subject != cert.subject:
        out.append(Difference("subject", cert.subject.rfc4514_string(),
                              accepted.subject.rfc4514_string()))
    san = _extension(cert, x509.SubjectAlternativeName)
    have = names_as_strings(list(san)) if san is not None else []
    if sorted(have) != sorted(names_as_strings(accepted.names)):
        out.append(Difference("names", ", ".join(have),
                              ", ".join(names_as_strings(accepted.names))))
    if record.identity is not None and record.identity != accepted.identity:
        out.append(Difference("identity", record.identity, accepted.identity))
    return out


def _extensions(cert: x509.Certificate, profile: Profile) -> list[Difference]:
    out = []
    ku = _extension(cert, x509.KeyUsage)
    have = key_usage_names(ku) if ku is not None else []
    want = key_usage_names(templates.key_usage_for(profile, cert.public_key()))
    if sorted(have) != sorted(want):
        out.append(Difference("key usage", ", ".join(have) or "(none)",
                              ", ".join(want) or "(none)"))
    eku = _extension(cert, x509.ExtendedKeyUsage)
    have = sorted(_EKU_BY_OID.get(o, o.dotted_string) for o in eku) if eku else []
    if have != sorted(profile.extended_key_usage):
        out.append(Difference("extended key usage", ", ".join(have) or "(none)",
                              ", ".join(sorted(profile.extended_key_usage)) or "(none)"))
    bc = _extension(cert, x509.BasicConstraints)
    is_ca = bool(bc is not None and bc.ca)
    if is_ca != profile.is_ca:
        out.append(Difference("basic constraints", f"CA:{str(is_ca).upper()}",
                              f"CA:{str(profile.is_ca).upper()}"))
    algorithm = cert.signature_hash_algorithm
    if algorithm is not None and algorithm.name != profile.signature_hash:
        out.append(Difference("signature hash", algorithm.name, profile.signature_hash))
    return out


def _validity(record: CertificateRecord, profile: Profile) -> list[Difference]:
    length = record.not_after - record.not_before
    allowed = dt.timedelta(seconds=profile.validity + profile.backdate)
    if length <= allowed + SLACK:
        return []
    return [Difference("validity", span(length.total_seconds()),
                       f"at most {span(allowed.total_seconds())} "
                       f"(validity {span(profile.validity)} + backdate "
                       f"{span(profile.backdate)})")]


def compare(record: CertificateRecord, profiles: dict[str, Profile]) -> CertificateDrift:
    """How `record` differs from what its profile would build today."""
    profile = profiles.get(record.profile)
    if profile is None:
        found = [Difference("profile", record.profile, "no longer configured")]
    else:
        found = _validity(record, profile) + _extensions(record.certificate, profile) \
            + _rules(record, profile)
    return CertificateDrift(serial=record.serial_hex, profile=record.profile,
                            status=record.status.value, not_after=record.not_after,
                            identity=record.identity, differences=tuple(found))


def check_profile(db: Database, profiles: dict[str, Profile], name: str,
                  now: dt.datetime, *, limit: int = 100, live_only: bool = True,
                  page: int = PAGE) -> ProfileDrift:
    """Every certificate of profile `name` (with `live_only`: valid and unexpired at
    `now`) compared with it, a page at a time; the first `limit` that differ kept."""
    limit = max(1, min(limit, MAX_LIMIT))
    checked = differing = 0
    kept: list[CertificateDrift] = []
    after: str | None = None
    while True:
        with db.read() as tx:
            batch = certificate_pages.of_profile(tx, name, after=after, limit=page,
                                                 live_at=now if live_only else None)
        for record in batch:
            checked += 1
            drift = compare(record, profiles)
            if drift.differs:
                differing += 1
                if len(kept) < limit:
                    kept.append(drift)
        if len(batch) < page:
            break
        after = batch[-1].serial_hex
    return ProfileDrift(profile=name, checked=checked, differing=differing,
                        certificates=tuple(kept), live_only=live_only)
