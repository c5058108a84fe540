"""HTTP caching headers of an OCSP answer (RFC 5019 §6), the same on GET and POST."""

from __future__ import annotations

import datetime as dt
import hashlib
from email.utils import format_datetime

from enroll.ocsp import OCSPAnswer

NO_STORE = {"Cache-Control": "no-store"}
"""For unsuccessful answers (malformed, unauthorized): nothing to cache."""


def caching_headers(answer: OCSPAnswer, now: dt.datetime) -> dict[str, str]:
    """Cache-Control max-age (never past nextUpdate), public, no-transform,
    must-revalidate; Last-Modified = thisUpdate; Expires = nextUpdate; ETag = the SHA-1
    of the OCSPResponse (RFC 5019 §6.2)."""
    if answer.this_update is None or answer.next_update is None:
        return dict(NO_STORE)
    max_age = max(0, int((answer.next_update - now).total_seconds()))
    return {
        "Cache-Control": f"max-age={max_age}, public, no-transform, must-revalidate",
        "Last-Modified": format_datetime(answer.this_update.astimezone(dt.UTC), usegmt=True),
        "Expires": format_datetime(answer.next_update.astimezone(dt.UTC), usegmt=True),
        "ETag": f'"{hashlib.sha1(answer.der).hexdigest()}"',  # noqa: S324 - RFC 5019 §6.2
    }


def not_modified(headers: dict[str, str], if_none_match: str | None) -> bool:
    """A revalidation (RFC 9110 §13.1.2) of the response a cache holds: 304."""
    etag = headers.get("ETag")
    if etag is None or not if_none_match or len(if_none_match) > 1024:
        return False
    return any(tag.strip().removeprefix("W/") == etag for tag in if_none_match.split(","))
