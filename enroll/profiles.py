"""Certificate profiles: `ProfileConfig` as written in TOML becomes a validated `Profile`.

A profile is the whole recipe for a certificate: the CSR only *proposes* a key, subject
fields and names, which `enroll.profile_rules` accepts or refuses, and the template is
built from the profile (`enroll.templates`), never copied from the CSR.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from enroll.config_values import (
    KEY_TYPES,
    as_bool,
    as_duration,
    as_int,
    as_str,
    as_str_list,
    as_table,
    check_keys,
)
from enroll.errors import ConfigError
from enroll.key_checks import DEFAULT_RSA_EXPONENTS
from enroll.names import dns_pattern, email_pattern
from enroll.profile_fleet import FLEET_KEYS, Fleet, parse_fleet
from enroll.uri_names import uri_pattern

KEY_USAGES = (
    "digital_signature", "content_commitment", "key_encipherment", "data_encipherment",
    "key_agreement", "key_cert_sign", "crl_sign", "encipher_only", "decipher_only",
)
EKU_NAMES: Mapping[str, x509.ObjectIdentifier] = {
    "server_auth": ExtendedKeyUsageOID.SERVER_AUTH,
    "client_auth": ExtendedKeyUsageOID.CLIENT_AUTH,
    "code_signing": ExtendedKeyUsageOID.CODE_SIGNING,
    "email_protection": ExtendedKeyUsageOID.EMAIL_PROTECTION,
    "time_stamping": ExtendedKeyUsageOID.TIME_STAMPING,
    "ocsp_signing": ExtendedKeyUsageOID.OCSP_SIGNING,
    "ipsec_ike": ExtendedKeyUsageOID.IPSEC_IKE,
}
SUBJECT_ATTRS: Mapping[str, x509.ObjectIdentifier] = {
    "CN": NameOID.COMMON_NAME, "O": NameOID.ORGANIZATION_NAME,
    "OU": NameOID.ORGANIZATIONAL_UNIT_NAME, "C": NameOID.COUNTRY_NAME,
    "ST": NameOID.STATE_OR_PROVINCE_NAME, "L": NameOID.LOCALITY_NAME,
    "serialNumber": NameOID.SERIAL_NUMBER, "emailAddress": NameOID.EMAIL_ADDRESS,
    "DC": NameOID.DOMAIN_COMPONENT, "UID": NameOID.USER_ID,
}
HASHES = ("sha256", "sha384", "sha512")
FROM_CSR = "csr"
REQUIRED_FROM_CSR = "required"
FIXED = "fixed"
ANY_SAN = "san"
REQUESTER = "requester"


@dataclass(frozen=True, slots=True)
class SubjectField:
    """One attribute of the subject template: taken from the CSR (``csr``: when present;
    ``required``) and then only if it matches one of `allow`, or a fixed value."""

    attr: str
    source: str
    """``csr``, ``required`` or ``fixed``."""
    value: str = ""
    """The fixed value (``fixed`` only)."""
    allow: tuple[str, ...] = ("*",)
    """Patterns a CSR value must match: ``*`` anything, ``text*`` a prefix, ``*text`` a
    suffix, else the exact text; case-insensitive."""

    @property
    def from_csr(self) -> bool:
        return self.source != FIXED


def subject_pattern(pattern: str) -> str:
    """A subject `pattern` (see `SubjectField.allow`), checked; `ValueError` if not one."""
    stars = pattern.count("*")
    if not pattern or stars > 1 or stars == 1 and pattern[0] != "*" and pattern[-1] != "*":
        raise ValueError("use '*', 'prefix*', '*suffix' or an exact value")
    return pattern


def value_matches(value: str, pattern: str) -> bool:
    """Does a subject `pattern` (see `SubjectField.allow`) admit `value`?"""
    v, p = value.casefold(), pattern.casefold()
    if p == "*":
        return True
    if p.endswith("*"):
        return v.startswith(p[:-1])
    if p.startswith("*"):
        return len(v) > len(p) - 1 and v.endswith(p[1:])
    return v == p


@dataclass(frozen=True, slots=True)
class SanRules:
    dns: tuple[str, ...]
    """``*`` any name; ``*.corp.example`` any name below corp.example; else exact."""
    ip: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]
    email: tuple[str, ...]
    """E-mail domain patterns (`enroll.email_names`): ``*``, ``*.corp.example``, exact."""
    uri: tuple[str, ...]
    """URI patterns (`enroll.uri_names`): ``*`` or ``scheme://authority[/path]``."""
    max_names: int
    require: bool
    allow_wildcards: bool


@dataclass(frozen=True, slots=True)
class Profile:
    name: str
    ca: str
    validity: int
    """Seconds."""
    backdate: int
    key_usage: tuple[str, ...]
    extended_key_usage: tuple[str, ...]
    is_ca: bool
    path_length: int | None
    subject: tuple[SubjectField, ...]
    """The subject template, in certificate order."""
    san: SanRules
    key_types: tuple[str, ...]
    signature_hash: str
    crl: bool
    ocsp: bool
    aia: bool
    approval: str
    """``auto`` or ``manual``."""
    approvals_required: int
    """Distinct approvers a pending request needs before it is issued (four eyes: 2);
    the requester is never one of them."""
    pending_expiry: int
    """Seconds a request may wait for approval; then it is ``expired`` (answered as
    rejected)."""
    identity: str
    """What identifies a certificate's subject: ``san`` (its first name of any type),
    ``san.dns``, ``san.ip``, ``san.email``, ``san.uri`` (its first such name),
    ``subject.<attr>`` (e.g. ``subject.CN``) or
    ``requester`` (the authenticated requester). Renewals must keep it."""
    successor: str | None
    """The profile certificates of this one renew into, if not this one."""
    revoke_superseded_after: int | None
    """Seconds after its renewal that a certificate this profile renewed is revoked
    (reason superseded); None: superseded certificates stay valid until they expire."""
    server_key_type: str
    """Key type generated when the server makes the key (EST serverkeygen)."""
    public_http_url: str
    rsa_exponents: tuple[int, ...] = DEFAULT_RSA_EXPONENTS
    """RSA public exponents a CSR key may have (`enroll.key_checks`); 65537 only."""
    fleet: Fleet = Fleet()
    """Renewal window, lineage, migration policy, device id, expiry notices
    (`enroll.profile_fleet`)."""


_PROFILE_KEYS = {
    "ca", "validity", "backdate", "key_usage", "extended_key_usage", "is_ca", "path_length",
    "subject", "san", "key_types", "signature_hash", "crl", "ocsp", "aia", "approval",
    "server_key_type", "identity", "successor", "revoke_superseded_after",
    "approvals_required", "pending_expiry",
}
_PROFILE_KEYS |= {"rsa_exponents"}  # enroll.key_checks
_PROFILE_KEYS |= FLEET_KEYS  # enroll.profile_fleet
_SAN_KEYS = {"dns", "ip", "email", "uri", "max_names", "require", "allow_wildcards"}


def parse_profiles(table: Mapping[str, Any], cas: Mapping[str, int],
                   public_http_url: str) -> dict[str, Profile]:
    """`cas` maps each CA's name to its validity in days (a profile cannot outlive it)."""
    profiles = {name: parse_profile(name, as_table(value, f"profiles.{name}"), cas,
                                    public_http_url)
                for name, value in table.items()}
    for profile in profiles.values():
        if profile.successor is not None and profile.successor not in profiles:
            raise ConfigError(f"profiles.{profile.name}.successor",
                              f"no profile named {profile.successor!r}")
    return profiles


def parse_profile(name: str, entry: Mapping[str, Any], cas: Mapping[str, int],
                  public_http_url: str) -> Profile:
    key = f"profiles.{name}"
    if "cn_in_sans" in entry:
        raise ConfigError(f"{key}.cn_in_sans", "removed: the CN must always be one of the "
                          "certificate's names unless identity = \"subject.CN\"")
    check_keys(entry, _PROFILE_KEYS, key)
    ca = as_str(entry.get("ca", next(iter(cas), "")), f"{key}.ca")
    if ca not in cas:
        raise ConfigError(f"{key}.ca", f"no CA named {ca!r}")
    validity = as_duration(entry.get("validity", "365d"), f"{key}.validity", minimum=60,
                           maximum=cas[ca] * 86400)
    key_usage = as_str_list(entry.get("key_usage", ["digital_signature"]), f"{key}.key_usage")
    for ku in key_usage:
        if ku not in KEY_USAGES:
            raise ConfigError(f"{key}.key_usage", f"unknown key usage {ku!r}")
    is_ca = as_bool(entry.get("is_ca", False), f"{key}.is_ca")
    if not is_ca and ("key_cert_sign" in key_usage or "crl_sign" in key_usage):
        raise ConfigError(f"{key}.key_usage", "key_cert_sign/crl_sign need is_ca = true")
    eku = as_str_list(entry.get("extended_key_usage", []), f"{key}.extended_key_usage")
    for e in eku:
        if e not in EKU_NAMES:
            raise ConfigError(f"{key}.extended_key_usage",
                              f"unknown EKU {e!r} (expected {', '.join(EKU_NAMES)})")
    subject = _parse_subject(as_table(entry.get("subject", {"CN": FROM_CSR}), f"{key}.subject"),
                             f"{key}.subject")
    san_tbl = as_table(entry.get("san", {}), f"{key}.san")
    check_keys(san_tbl, _SAN_KEYS, f"{key}.san")
    networks = []
    for net in as_str_list(san_tbl.get("ip", []), f"{key}.san.ip"):
        try:
            networks.append(ipaddress.ip_network(net, strict=False))
        except ValueError as exc:
            raise ConfigError(f"{key}.san.ip", f"not an IP network: {net!r}") from exc
    san = SanRules(
        dns=_patterns(san_tbl.get("dns", []), f"{key}.san.dns", dns_pattern),
        ip=tuple(networks),
        email=_patterns(san_tbl.get("email", []), f"{key}.san.email", email_pattern),
        uri=_patterns(san_tbl.get("uri", []), f"{key}.san.uri", uri_pattern),
        max_names=as_int(san_tbl.get("max_names", 10), f"{key}.san.max_names", minimum=0,
                         maximum=1000),
        require=as_bool(san_tbl.get("require", False), f"{key}.san.require"),
        allow_wildcards=as_bool(san_tbl.get("allow_wildcards", True),
                                f"{key}.san.allow_wildcards"),
    )
    key_types = as_str_list(entry.get("key_types", ["rsa-2048", "rsa-3072", "rsa-4096",
                                                    "ec-p256", "ec-p384"]),
                            f"{key}.key_types")
    if not key_types:
        raise ConfigError(f"{key}.key_types", "at least one key type is needed")
    for kt in key_types:
        if kt not in KEY_TYPES:
            raise ConfigError(f"{key}.key_types",
                              f"unknown key type {kt!r} (expected {', '.join(KEY_TYPES)})")
    signature_hash = as_str(entry.get("signature_hash", "sha256"), f"{key}.signature_hash")
    if signature_hash not in HASHES:
        raise ConfigError(f"{key}.signature_hash", f"expected one of {', '.join(HASHES)}")
    approval = as_str(entry.get("approval", "auto"), f"{key}.approval")
    if approval not in ("auto", "manual"):
        raise ConfigError(f"{key}.approval", "expected 'auto' or 'manual'")
    path_length = entry.get("path_length")
    server_key_type = as_str(entry.get("server_key_type", key_types[0]),
                             f"{key}.server_key_type")
    if server_key_type not in key_types:
        raise ConfigError(f"{key}.server_key_type", "must be one of the profile's key_types")
    return Profile(
        name=name, ca=ca, validity=validity,
        backdate=as_duration(entry.get("backdate", "60s"), f"{key}.backdate", minimum=0,
                             maximum=86400),
        key_usage=key_usage, extended_key_usage=eku, is_ca=is_ca,
        path_length=as_int(path_length, f"{key}.path_length", minimum=0, maximum=10)
        if path_length is not None else None,
        subject=subject, san=san, key_types=key_types,
        signature_hash=signature_hash,
        crl=as_bool(entry.get("crl", False), f"{key}.crl"),
        ocsp=as_bool(entry.get("ocsp", False), f"{key}.ocsp"),
        aia=as_bool(entry.get("aia", False), f"{key}.aia"),
        approval=approval,
        approvals_required=as_int(entry.get("approvals_required", 1),
                                  f"{key}.approvals_required", minimum=1, maximum=10),
        pending_expiry=as_duration(entry.get("pending_expiry", "7d"),
                                   f"{key}.pending_expiry", minimum=60,
                                   maximum=365 * 86400),
        identity=_parse_identity(entry.get("identity"), subject, san, f"{key}.identity"),
        successor=as_str(entry["successor"], f"{key}.successor")
        if entry.get("successor") is not None else None,
        revoke_superseded_after=as_duration(entry["revoke_superseded_after"],
                                            f"{key}.revoke_superseded_after", minimum=0,
                                            maximum=365 * 86400)
        if entry.get("revoke_superseded_after") is not None else None,
        server_key_type=server_key_type,
        public_http_url=public_http_url,
        rsa_exponents=rsa_exponents(entry.get("rsa_exponents", list(DEFAULT_RSA_EXPONENTS)),
                                    f"{key}.rsa_exponents"),
        fleet=parse_fleet(entry, key, validity),
    )


_SUBJECT_FIELD_KEYS = {"from", "allow"}


def _parse_subject(table: Mapping[str, Any], key: str) -> tuple[SubjectField, ...]:
    """``CN = "csr"`` / ``"required"`` / a fixed value, or ``CN = { from = "csr",
    allow = ["*.devices.example"] }``."""
    fields: list[SubjectField] = []
    for attr, value in table.items():
        where = f"{key}.{attr}"
        if attr not in SUBJECT_ATTRS:
            raise ConfigError(where, f"unknown attribute (expected {', '.join(SUBJECT_ATTRS)})")
        if isinstance(value, Mapping):
            check_keys(value, _SUBJECT_FIELD_KEYS, where)
            source = as_str(value.get("from", FROM_CSR), f"{where}.from")
            if source not in (FROM_CSR, REQUIRED_FROM_CSR):
                raise ConfigError(f"{where}.from", "expected 'csr' or 'required'")
            allow = _patterns(value.get("allow", ["*"]), f"{where}.allow", subject_pattern)
            if not allow:
                raise ConfigError(f"{where}.allow", "at least one pattern is needed")
            fields.append(SubjectField(attr, source, allow=allow))
            continue
        text = as_str(value, where)
        if text in (FROM_CSR, REQUIRED_FROM_CSR):
            fields.append(SubjectField(attr, text))
        else:
            fields.append(SubjectField(attr, FIXED, value=text))
    return tuple(fields)


def _parse_identity(value: Any, subject: tuple[SubjectField, ...], san: SanRules,
                    key: str) -> str:
    """The profile's identity: as configured, else its names when it allows any
    (``san.<type>`` when it allows one type, ``san`` when several: the CN must then be
    one of the certificate's names), else ``subject.CN`` when the CN comes from the CSR,
    else ``requester``."""
    allowed = {"san.dns": bool(san.dns), "san.ip": bool(san.ip),
               "san.email": bool(san.email), "san.uri": bool(san.uri)}
    csr_attrs = {f.attr for f in subject if f.from_csr}
    if value is None:
        kinds = [k for k, ok in allowed.items() if ok]
        if kinds:
            return kinds[0] if len(kinds) == 1 else ANY_SAN
        return "subject.CN" if "CN" in csr_attrs else REQUESTER
    identity = as_str(value, key)
    if identity == ANY_SAN:
        if not any(allowed.values()):
            raise ConfigError(key, "the profile allows no subject alternative names")
        return identity
    if identity in allowed:
        if not allowed[identity]:
            raise ConfigError(key, f"the profile allows no {identity[4:]} names")
        return identity
    if identity.startswith("subject."):
        if identity[8:] not in csr_attrs:
            raise ConfigError(key, f"{identity[8:]!r} is not a subject attribute taken "
                              "from the CSR")
        return identity
    if identity == REQUESTER:
        return identity
    raise ConfigError(key, "expected san, san.dns, san.ip, san.email, san.uri, "
                      "subject.<attribute> or requester")


def _patterns(value: Any, key: str, check: Callable[[str], str]) -> tuple[str, ...]:
    out = []
    for pattern in as_str_list(value, key):
        try:
            out.append(check(pattern))
        except ValueError as exc:
            raise ConfigError(key, f"{pattern[:80]!r}: {exc}") from None
    return tuple(out)


def rsa_exponents(value: Any, key: str) -> tuple[int, ...]:
    """A non-empty list of odd exponents, 3 <= e < 2**256 (NIST SP 800-56B: 65537 and
    up; smaller ones only for legacy devices), as a TOML list or ``"65537,3"``."""
    items = [v.strip() for v in value.split(",")] if isinstance(value, str) else value
    if not isinstance(items, list) or not items:
        raise ConfigError(key, "expected a non-empty list of integers")
    out = []
    for item in items:
        e = as_int(item, key, minimum=3)
        if e % 2 == 0 or e.bit_length() > 256:
            raise ConfigError(key, f"an RSA exponent must be odd and below 2**256, got {e}")
        out.append(e)
    return tuple(dict.fromkeys(out))
