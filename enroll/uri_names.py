"""URI subject alternative names: syntax, and matching a profile's ``san.uri`` patterns
on boundaries, never on a bare string prefix.

A pattern is ``*`` (any well-formed URI) or ``scheme://authority[/path]``:

- scheme and authority must equal the URI's exactly, scheme and host compared
  case-insensitively (``https://corp.example`` does not admit
  ``https://corp.example.evil.net/`` nor ``https://corp.example:8443/``);
- the path matches at a segment boundary: ``spiffe://corp/ns/prod`` admits
  ``spiffe://corp/ns/prod`` and ``spiffe://corp/ns/prod/x``, not
  ``spiffe://corp/ns/production``; no path (or ``/``) admits every path.

A client's URI must be absolute (a scheme), at most `MAX_URI` characters of RFC 3986's
character set (no space, control character, backslash…), without userinfo, without a
dot segment (``/ns/prod/../admin``), and, for ``spiffe:``, a SPIFFE ID as the SPIFFE
standard defines it (lower-case trust domain, no port, no query, no fragment, no empty
segment). Parsing is `urllib.parse.urlsplit` after those character checks.
"""

from __future__ import annotations

import functools
import string
from dataclasses import dataclass
from urllib.parse import SplitResult, urlsplit

MAX_URI = 1024
_SCHEME_FIRST = frozenset(string.ascii_letters)
_SCHEME_REST = frozenset(string.ascii_letters + string.digits + "+-.")
_RFC3986 = frozenset(string.ascii_letters + string.digits + "-._~:/?#[]@!$&'()*+,;=%")
_SPIFFE_DOMAIN = frozenset(string.ascii_lowercase + string.digits + ".-_")
_SPIFFE_SEGMENT = frozenset(string.ascii_letters + string.digits + ".-_")


@dataclass(frozen=True, slots=True)
class UriPattern:
    scheme: str
    authority: str
    path: str
    """Without a trailing ``/``; empty admits any path."""

    def __str__(self) -> str:
        return f"{self.scheme}://{self.authority}{self.path}"


def _split(uri: str) -> SplitResult:
    """The parts of an absolute URI; `ValueError` with a client-safe reason."""
    if not uri or len(uri) > MAX_URI:
        raise ValueError(f"URI is empty or longer than {MAX_URI} characters")
    if not set(uri) <= _RFC3986:
        raise ValueError("URI has a character outside RFC 3986 (space, control, "
                         "backslash, non-ASCII…)")
    scheme, colon, _ = uri.partition(":")
    if not colon or not scheme or scheme[0] not in _SCHEME_FIRST or \
            not set(scheme) <= _SCHEME_REST:
        raise ValueError("URI is not absolute (it needs a scheme)")
    try:
        parts = urlsplit(uri)
        _ = parts.port  # a port that is not a number raises here
    except ValueError:
        raise ValueError("URI does not parse") from None
    if "@" in parts.netloc:
        raise ValueError("URI must not carry userinfo")
    segments = parts.path.split("/")
    if any(s.lower() in (".", "..", "%2e", "%2e%2e", ".%2e", "%2e.") for s in segments):
        raise ValueError("URI path must not have dot segments")
    return parts


def _check_spiffe(parts: SplitResult) -> None:
    """SPIFFE ID (SPIFFE standard, "SPIFFE-ID" §2): spiffe://trust-domain/path."""
    domain = parts.netloc
    if not domain or not set(domain) <= _SPIFFE_DOMAIN or parts.port is not None:
        raise ValueError("SPIFFE ID trust domain must be lower-case letters, digits, "
                         "'.', '-' or '_' (no port, no userinfo)")
    if parts.query or parts.fragment or "?" in parts.geturl() or "#" in parts.geturl():
        raise ValueError("SPIFFE ID must not have a query or a fragment")
    if parts.path:
        segments = parts.path.split("/")[1:]
        if not all(segments) or not all(set(s) <= _SPIFFE_SEGMENT for s in segments):
            raise ValueError("SPIFFE ID path segments must be non-empty letters, digits, "
                             "'.', '-' or '_'")


def check_uri(uri: str) -> SplitResult:
    """The parts of a client's URI name; `ValueError` with the reason if it is not one
    a certificate may carry."""
    parts = _split(uri)
    if parts.scheme.lower() == "spiffe":
        _check_spiffe(parts)
    return parts


def uri_pattern(pattern: str) -> str:
    """A ``san.uri`` pattern checked at start-up, normalised (``*``, or
    ``scheme://authority[/path]`` with scheme and host lower-cased and no trailing
    ``/``). `ValueError` with the reason."""
    if pattern == "*":
        return pattern
    return str(_parse_pattern(pattern))


@functools.lru_cache(maxsize=1024)
def _parse_pattern(pattern: str) -> UriPattern:
    parts = _split(pattern)
    if not parts.netloc or not pattern[len(parts.scheme) + 1:].startswith("//"):
        raise ValueError("use '*' or scheme://authority[/path]")
    if parts.query or parts.fragment or "?" in pattern or "#" in pattern:
        raise ValueError("a URI pattern has no query or fragment")
    if parts.scheme.lower() == "spiffe":
        _check_spiffe(urlsplit(pattern.rstrip("/")))
    return UriPattern(parts.scheme.lower(), parts.netloc.lower(), parts.path.rstrip("/"))


def uri_matches(parts: SplitResult, pattern: str) -> bool:
    """Does `pattern` (see `uri_pattern`) admit the URI whose checked parts are `parts`
    (`check_uri`)? A pattern that is not valid admits nothing."""
    if pattern == "*":
        return True
    try:
        rule = _parse_pattern(pattern)
    except ValueError:
        return False
    if parts.scheme.lower() != rule.scheme or parts.netloc.lower() != rule.authority:
        return False
    if not rule.path:
        return True
    return parts.path == rule.path or parts.path.startswith(rule.path + "/")
