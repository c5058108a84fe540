"""Identifier checks (RFC 8555 §7.1.4, RFC 8738 for IP) and name policy patterns.

A pattern is ``dns:*`` (any name), ``dns:*.corp.example`` (names below corp.example,
wildcards included), ``dns:host.example`` (exactly that name), or ``ip:<network>``.
Plain string work only: no regular expressions on client input."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from enroll.errors import ConfigError

MAX_NAME = 253
_LABEL_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-")


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


def valid_dns_name(name: str) -> bool:
    """A lower-case DNS name with an optional leading ``*.`` (checked by length first)."""
    if not name or len(name) > MAX_NAME:
        return False
    labels = name.split(".")
    if labels[0] == "*":
        labels = labels[1:]
    if len(labels) < 1:
        return False
    for label in labels:
        if not label or len(label) > 63 or label[0] == "-" or label[-1] == "-":
            return False
        if not set(label) <= _LABEL_CHARS:
            return False
    return True


def allowed(kind: str, value: str, patterns: Iterable[str]) -> bool:
    """Does any pattern allow this identifier?"""
    for p in patterns:
        pkind, _, rest = p.partition(":")
        if pkind != kind:
            continue
        if kind == "ip":
            if ipaddress.ip_address(value) in ipaddress.ip_network(rest, strict=False):
                return True
        elif rest == "*" or rest == value:
            return True
        elif rest.startswith("*.") and value.endswith(rest[1:]):
            return True
    return False
