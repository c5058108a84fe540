"""Small wire field helpers: RFC 3339 timestamps and identifier objects (RFC 8555 §7.1.4,
§9.7.7; RFC 8738 for IP addresses)."""

from __future__ import annotations

import datetime as dt
import ipaddress
import re
from typing import Any

from enroll.names import normalise_dns

from .problems import NS, AcmeProblem, document, malformed

MAX_IDENTIFIERS = 100
PERMANENT_IDENTIFIER = "permanent-identifier"
MAX_PERMANENT_IDENTIFIER = 128


def rfc3339(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


_RFC3339 = re.compile(r"(\d{4}-\d{2}-\d{2})[Tt](\d{2}:\d{2}:\d{2})(\.\d{1,9})?"
                      r"([Zz]|[+-]\d{2}:\d{2})")


def timestamp(value: Any, what: str) -> dt.datetime | None:
    """An RFC 3339 date-time of a payload (RFC 8555 §7.4 notBefore/notAfter), in UTC to
    the second (a certificate's resolution); None when absent. A string without an
    offset, or a date alone, is malformed: the moment would be ambiguous."""
    if value is None:
        return None
    match = _RFC3339.fullmatch(value) if isinstance(value, str) and len(value) <= 40 \
        else None
    if match is None:
        raise malformed(f"{what} must be an RFC 3339 date-time with an offset, "
                        "such as 2026-01-31T12:00:00Z")
    day, clock, _fraction, offset = match.groups()
    offset = "+00:00" if offset in ("Z", "z") else offset
    try:
        when = dt.datetime.fromisoformat(f"{day}T{clock}{offset}")
    except ValueError:
        raise malformed(f"{what} is not a valid date-time") from None
    return when.astimezone(dt.UTC)


def identifiers(value: Any) -> tuple[list[dict[str, str]], list[dict[str, Any]]]:
    """The validated, normalised, de-duplicated identifiers of a newOrder payload, and
    one problem document (with its ``identifier``) for each one that is refused, so the
    order's answer names every bad identifier (RFC 8555 §6.7.1 subproblems), not only
    the first. A payload that is not a list of identifier objects is malformed."""
    if not isinstance(value, list) or not value:
        raise malformed("identifiers must be a non-empty list")
    if len(value) > MAX_IDENTIFIERS:
        raise AcmeProblem("rejectedIdentifier", f"at most {MAX_IDENTIFIERS} identifiers")
    out: dict[tuple[str, str], dict[str, str]] = {}
    refused: list[dict[str, Any]] = []
    for item in value:
        if not isinstance(item, dict) or not isinstance(item.get("value"), str):
            raise malformed("each identifier needs a type and a value")
        kind, text = item.get("type"), item["value"]
        given = {"type": str(kind)[:16], "value": text}
        problem = _identifier_problem(kind, text)
        if isinstance(problem, tuple):
            refused.append(document(*problem, identifier=given))
            continue
        out[(str(kind), problem)] = {"type": str(kind), "value": problem}
    return list(out.values()), refused


def _identifier_problem(kind: object, text: str) -> str | tuple[str, str]:
    """The normalised value, or (problem type, detail) for a refused identifier."""
    if len(text) > 253:
        return "rejectedIdentifier", "identifier too long"
    if kind == "dns":
        try:
            return normalise_dns(text, allow_wildcard=True)
        except ValueError as exc:
            return "rejectedIdentifier", str(exc)
    if kind == "ip":
        try:
            return str(ipaddress.ip_address(text))
        except ValueError:
            return "rejectedIdentifier", "not an IP address"
    if kind == PERMANENT_IDENTIFIER:
        # draft-ietf-acme-device-attest: a device serial number or UDID, proven by
        # device-attest-01 (the endpoint decides whether it offers that).
        if not text or len(text) > MAX_PERMANENT_IDENTIFIER or not text.isprintable():
            return "rejectedIdentifier", "not a device identifier"
        return text
    return "unsupportedIdentifier", "identifier types are dns, ip and permanent-identifier"


def refusal(refused: list[dict[str, Any]]) -> AcmeProblem:
    """One problem for every refused identifier of an order (RFC 8555 §6.7.1): the
    top-level type is the subproblems' type when they share one, else ``malformed``
    (the RFC's own example of a compound error)."""
    types = {doc["type"].removeprefix(NS) for doc in refused}
    typ = types.pop() if len(types) == 1 else "malformed"
    if len(refused) == 1:
        return AcmeProblem(typ, str(refused[0]["detail"]), 400, subproblems=refused)
    names = ", ".join(str(doc["identifier"]["value"])[:64] for doc in refused[:5])
    more = f" and {len(refused) - 5} more" if len(refused) > 5 else ""
    return AcmeProblem(typ, f"{len(refused)} identifiers are refused: {names}{more}", 400,
                       subproblems=refused)


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
