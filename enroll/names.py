"""Subject alternative names: syntax checks and matching against a profile's SAN rules.

No regular expressions: client input is checked with bounded loops after a length check.
"""

from __future__ import annotations

import ipaddress

from cryptography import x509

from enroll.errors import BadCSR
from enroll.profiles import SanRules

_LDH = set("abcdefghijklmnopqrstuvwxyz0123456789-")


def normalise_dns(name: str, *, allow_wildcard: bool) -> str:
    """Lower-case, validated DNS name; raises `BadCSR` with the reason."""
    if not name or len(name) > 253:
        raise BadCSR("DNS name is empty or longer than 253 characters")
    lowered = name.lower().rstrip(".")
    labels = lowered.split(".")
    if labels[0] == "*" and len(labels) < 3:
        raise BadCSR(f"wildcard {lowered[:64]!r} must sit below a registered domain")
    for i, label in enumerate(labels):
        if label == "*" and i == 0:
            if not allow_wildcard:
                raise BadCSR("wildcard names are not allowed by this profile")
            continue
        if not 1 <= len(label) <= 63 or not set(label) <= _LDH:
            raise BadCSR(f"DNS name {lowered[:64]!r} has an invalid label")
        if label[0] == "-" or label[-1] == "-":
            raise BadCSR(f"DNS name {lowered[:64]!r} has a label starting or ending with '-'")
    return lowered


def dns_allowed(name: str, patterns: tuple[str, ...]) -> bool:
    for pattern in patterns:
        if pattern == "*" or pattern == name:
            return True
        if pattern.startswith("*.") and name.endswith(pattern[1:]) and len(name) > len(pattern) - 1:
            return True
    return False


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
            dns = normalise_dns(gn.value, allow_wildcard=rules.allow_wildcards)
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
            email = gn.value
            local, at, domain = email.rpartition("@")
            if not at or not local or len(email) > 254:
                raise BadCSR("malformed e-mail address")
            domain = domain.lower()
            if "*" not in rules.email and domain not in rules.email:
                raise BadCSR(f"e-mail domain {domain!r} is not allowed by profile {profile!r}")
            key, value = ("email", email.lower()), gn
        elif isinstance(gn, x509.UniformResourceIdentifier):
            uri = gn.value
            if len(uri) > 1024 or ":" not in uri:
                raise BadCSR("malformed URI name")
            if "*" not in rules.uri and not any(uri.startswith(p) for p in rules.uri):
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
