"""Name policy patterns for ACME endpoints and EAB keys.

A pattern is ``dns:*`` (any name), ``dns:*.corp.example`` (names below corp.example,
wildcards included), ``dns:host.example`` (exactly that name), or ``ip:<network>``. DNS
patterns are checked and matched by the core's `enroll.names` (the same rules as
profiles' ``san.dns``)."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from enroll.errors import ConfigError
from enroll.names import dns_matches, dns_pattern


def check_patterns(patterns: Iterable[str], key: str) -> None:
    """Refuse malformed patterns at start-up (config) or when an EAB key is made."""
    for p in patterns:
        kind, _, rest = p.partition(":")
        if kind == "ip":
            try:
                ipaddress.ip_network(rest, strict=False)
            except ValueError:
                raise ConfigError(key, f"bad network in {p!r}") from None
        elif kind != "dns" or not rest:
            raise ConfigError(key, f"expected dns:<name|*.domain|*> or ip:<network>: {p!r}")
        else:
            try:
                dns_pattern(rest)
            except ValueError as exc:
                raise ConfigError(key, f"{p[:80]!r}: {exc}") from None


def allowed(kind: str, value: str, patterns: Iterable[str]) -> bool:
    """Does any pattern allow this identifier?"""
    for p in patterns:
        pkind, _, rest = p.partition(":")
        if pkind != kind:
            continue
        if kind == "ip":
            if ipaddress.ip_address(value) in ipaddress.ip_network(rest, strict=False):
                return True
        elif dns_matches(value, rest):
            return True
    return False
