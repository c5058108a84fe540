"""Subject alternative names: syntax checks and matching against a profile's SAN rules.

`normalise_dns`, `dns_pattern` and `dns_matches` are the one DNS-name check and matcher:
profiles and ACME's name policies (endpoint ``allow``, EAB keys) both use them.

No regular expressions: client input is checked with bounded loops after a length check.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from typing import TYPE_CHECKING

from cryptography import x509

from enroll.email_names import check_email
from enroll.errors import BadCSR
from enroll.uri_names import check_uri, uri_matches

if TYPE_CHECKING:  # profiles.py checks its patterns with this module
    from enroll.profiles import SanRules

MAX_DNS_NAME = 253
"""RFC 1035 §2.3.4: 255 octets on the wire is 253 characters of text, without the root's
trailing dot."""
MAX_LABEL = 63
_LDH = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-")


def _fold(name: str) -> str | None:
    """Lower-case ASCII without one trailing dot, or None for text that cannot be a DNS
    name (too long, not ASCII). IDNA names are compared as A-labels (``xn--…``), as sent;
    nothing is converted, and ``str.lower`` cannot map a non-ASCII letter (the Kelvin
    sign) onto an ASCII one because non-ASCII input stops here."""
    if len(name) > MAX_DNS_NAME + 1 or not name.isascii():
        return None
    name = name.lower()
    return name[:-1] if name.endswith(".") else name


def _label_problem(label: str) -> str | None:
    if not 1 <= len(label) <= MAX_LABEL or not set(label) <= _LDH:
        return "has an invalid label"
    if label[0] == "-" or label[-1] == "-":
        return "has a label starting or ending with '-'"
    return None


def normalise_dns(name: str, *, allow_wildcard: bool) -> str:
    """Lower-case, validated DNS name (one leading ``*`` label if `allow_wildcard`).

    Raises `ValueError` with a client-safe reason.
    """
    lowered = _fold(name)
    if lowered is None and not name.isascii():
        raise ValueError("DNS names must be ASCII (IDNA names as xn-- A-labels)")
    if not lowered or len(lowered) > MAX_DNS_NAME:
        raise ValueError(f"DNS name is empty or longer than {MAX_DNS_NAME} characters")
    labels = lowered.split(".")
    if labels[0] == "*":
        if len(labels) < 3:
            raise ValueError(f"wildcard {lowered[:64]!r} must sit below a registered domain")
        if not allow_wildcard:
            raise ValueError("wildcard names are not allowed by this profile")
        labels = labels[1:]
    for label in labels:
        problem = _label_problem(label)
        if problem is not None:
            raise ValueError(f"DNS name {lowered[:64]!r} {problem}")
    return lowered


def dns_pattern(pattern: str) -> str:
    """A name pattern, checked and normalised: ``*`` (any name), ``*.corp.example`` (any
    name below corp.example, at any depth, wildcard names included; not corp.example
    itself) or an exact name. Raises `ValueError` with the reason."""
    if pattern == "*":
        return pattern
    body = pattern[2:] if pattern.startswith("*.") else pattern
    try:
        body = normalise_dns(body, allow_wildcard=False)
    except ValueError as exc:
        raise ValueError(f"use '*', '*.suffix' or an exact name ({exc})") from None
    return f"*.{body}" if pattern.startswith("*.") else body


def dns_matches(name: str, pattern: str) -> bool:
    """Does `pattern` (see `dns_pattern`) admit `name`? Case-insensitive, one trailing dot
    ignored on either side, labels compared as sent; over-long or non-ASCII text never
    matches. A ``*`` in `name` is not a glob: the wildcard name ``*.corp.example`` matches
    ``*``, ``*.corp.example`` and ``*.example``, never the exact pattern
    ``host.corp.example``."""
    folded, pat = _fold(name), _fold(pattern)
    if not folded or pat is None or len(folded) > MAX_DNS_NAME:
        return False
    if pat == "*":
        return True
    if pat.startswith("*."):
        suffix = pat[1:]  # ".corp.example": a whole-label boundary, so no "evilcorp"
        return len(folded) > len(suffix) and folded.endswith(suffix)
    return folded == pat


def _email_domain(domain: str) -> str:
    return normalise_dns(domain, allow_wildcard=False)


def email_pattern(pattern: str) -> str:
    """A ``san.email`` domain pattern: the `dns_pattern` syntax (``*``, ``*.suffix``,
    exact). Raises `ValueError` with the reason."""
    if "@" in pattern:
        raise ValueError("give the domain only (corp.example or *.corp.example)")
    if pattern.startswith("."):
        raise ValueError(f"write *{pattern} for the domains below {pattern[1:]}")
    return dns_pattern(pattern)


def dns_allowed(name: str, patterns: Iterable[str]) -> bool:
    """Does any of `patterns` admit `name`?"""
    return any(dns_matches(name, pattern) for pattern in patterns)


def check_general_names(names: list[x509.GeneralName], rules: SanRules,
                        profile: str) -> list[x509.GeneralName]:
    """The names the certificate will carry, each checked against the profile."""
    if len(names) > rules.max_names:
        raise BadCSR(f"{len(names)} names requested; profile {profile!r} allows "
                     f"{rules.max_names}")
    out: list[x509.GeneralName] = []
    seen: set[tuple[str, str]] = set()
    for gn in names:
        key: tuple[str, str]
        value: x509.GeneralName
        if isinstance(gn, x509.DNSName):
            try:
                dns = normalise_dns(gn.value, allow_wildcard=rules.allow_wildcards)
            except ValueError as exc:
                raise BadCSR(str(exc)) from None
            if not dns_allowed(dns, rules.dns):
                raise BadCSR(f"DNS name {dns!r} is not allowed by profile {profile!r}")
            key, value = ("dns", dns), x509.DNSName(dns)
        elif isinstance(gn, x509.IPAddress):
            addr = gn.value
            if isinstance(addr, (ipaddress.IPv4Network, ipaddress.IPv6Network)):
                raise BadCSR("IP networks are not allowed as names")
            if not any(addr.version == net.version and addr in net for net in rules.ip):
                raise BadCSR(f"IP address {addr} is not allowed by profile {profile!r}")
            key, value = ("ip", str(addr)), gn
        elif isinstance(gn, x509.RFC822Name):
            try:
                local, domain = check_email(gn.value, _email_domain)
            except ValueError as exc:
                raise BadCSR(f"malformed e-mail address: {exc}") from None
            if not dns_allowed(domain, rules.email):
                raise BadCSR(f"e-mail domain {domain!r} is not allowed by profile {profile!r}")
            key, value = ("email", f"{local}@{domain}".lower()), gn
        elif isinstance(gn, x509.UniformResourceIdentifier):
            uri = gn.value
            try:
                parts = check_uri(uri)
            except ValueError as exc:
                raise BadCSR(f"malformed URI name: {exc}") from None
            if not any(uri_matches(parts, p) for p in rules.uri):
                raise BadCSR(f"URI {uri[:80]!r} is not allowed by profile {profile!r}")
            key, value = ("uri", uri), gn
        else:
            raise BadCSR(f"name type {type(gn).__name__} is not allowed")
        if key not in seen:
            seen.add(key)
            out.append(value)
    if rules.require and not out:
        raise BadCSR(f"profile {profile!r} requires at least one subject alternative name")
    return out


def names_as_strings(names: list[x509.GeneralName] | tuple[x509.GeneralName, ...]) -> list[str]:
    """``dns:example.com``, ``ip:10.0.0.1``, ``email:…``, ``uri:…`` (stored and shown)."""
    out = []
    for gn in names:
        if isinstance(gn, x509.DNSName):
            out.append(f"dns:{gn.value}")
        elif isinstance(gn, x509.IPAddress):
            out.append(f"ip:{gn.value}")
        elif isinstance(gn, x509.RFC822Name):
            out.append(f"email:{gn.value}")
        elif isinstance(gn, x509.UniformResourceIdentifier):
            out.append(f"uri:{gn.value}")
    return out


def csr_names(csr: x509.CertificateSigningRequest) -> list[x509.GeneralName]:
    try:
        ext = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return []
    except ValueError as exc:
        raise BadCSR("CSR extensions could not be parsed") from exc
    return list(ext.value)
