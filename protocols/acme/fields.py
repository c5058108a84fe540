"""Small wire field helpers: RFC 3339 timestamps and identifier objects (RFC 8555 §7.1.4,
§9.7.7; RFC 8738 for IP addresses)."""

from __future__ import annotations

import datetime as dt
import ipaddress
from typing import Any

from enroll.names import normalise_dns

from .problems import AcmeProblem, malformed

MAX_IDENTIFIERS = 100


def rfc3339(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def identifiers(value: Any) -> list[dict[str, str]]:
    """Validated, normalised, de-duplicated identifiers of a newOrder payload."""
    if not isinstance(value, list) or not value:
        raise malformed("identifiers must be a non-empty list")
    if len(value) > MAX_IDENTIFIERS:
        raise AcmeProblem("rejectedIdentifier", f"at most {MAX_IDENTIFIERS} identifiers")
    out: dict[tuple[str, str], dict[str, str]] = {}
    for item in value:
        if not isinstance(item, dict) or not isinstance(item.get("value"), str):
            raise malformed("each identifier needs a type and a value")
        kind, text = item.get("type"), item["value"]
        if len(text) > 253:
            raise AcmeProblem("rejectedIdentifier", "identifier too long")
        if kind == "dns":
            try:
                text = normalise_dns(text, allow_wildcard=True)
            except ValueError as exc:
                raise AcmeProblem("rejectedIdentifier", str(exc)) from None
        elif kind == "ip":
            try:
                text = str(ipaddress.ip_address(text))
            except ValueError:
                raise AcmeProblem("rejectedIdentifier", "not an IP address") from None
        else:
            raise AcmeProblem("unsupportedIdentifier", "identifier types are dns and ip")
        out[(kind, text)] = {"type": kind, "value": text}
    return list(out.values())


def contact(value: Any) -> list[str]:
    """Account contacts: ``mailto:`` URLs only (RFC 8555 §7.3)."""
    if value is None:
        return []
    if not isinstance(value, list) or len(value) > 10:
        raise malformed("contact must be a list of at most 10 URLs")
    for item in value:
        if not isinstance(item, str) or len(item) > 320:
            raise AcmeProblem("invalidContact", "contact must be a mailto: URL")
        if not item.startswith("mailto:") or "@" not in item or "," in item:
            raise AcmeProblem("unsupportedContact", "only single mailto: contacts are supported")
    return list(value)
