"""E-mail (rfc822Name) subject alternative names: syntax, and matching a profile's
``san.email`` domain patterns on label boundaries.

A pattern is what ``san.dns`` takes, applied to the address's domain: ``*`` (any
domain), ``corp.example`` (exactly that domain, case-insensitive) or ``*.corp.example``
(any domain below corp.example, at a label boundary: ``eu.corp.example`` yes,
``corp.example`` and ``evilcorp.example`` no). The same matcher as DNS names
(`enroll.names.dns_matches`), so the two cannot disagree.

An address has exactly one ``@``; the local part is 1 to `MAX_LOCAL` octets of printable
ASCII without spaces (RFC 5321 §4.5.3.1.1; quoted local parts and SMTPUTF8 are not
accepted); the domain is a valid DNS name; the whole is at most `MAX_EMAIL` octets.
"""

from __future__ import annotations

from collections.abc import Callable

MAX_LOCAL = 64
MAX_EMAIL = 254
_PRINTABLE = frozenset(chr(c) for c in range(0x21, 0x7F))


def check_email(address: str, normalise_domain: Callable[[str], str]) -> tuple[str, str]:
    """(local part, normalised domain) of a client's address; `ValueError` with the
    reason. `normalise_domain` checks and lower-cases the domain (`names.normalise_dns`)."""
    if len(address) > MAX_EMAIL or not address.isascii():
        raise ValueError(f"e-mail address is longer than {MAX_EMAIL} octets or not ASCII")
    if address.count("@") != 1:
        raise ValueError("e-mail address must have exactly one '@'")
    local, _, domain = address.partition("@")
    if not local or len(local) > MAX_LOCAL or not set(local) <= _PRINTABLE:
        raise ValueError(f"e-mail local part must be 1 to {MAX_LOCAL} printable ASCII "
                         "characters without spaces")
    try:
        return local, normalise_domain(domain)
    except ValueError as exc:
        raise ValueError(f"e-mail domain is not valid: {exc}") from None
