"""dns-01 (RFC 8555 §8.4): a TXT record at ``_acme-challenge.<name>`` holding the
base64url SHA-256 of the key authorization, looked up with dnspython."""

from __future__ import annotations

import hashlib
import hmac

import dns.exception
import dns.resolver

from ..jws import b64e
from ..settings import ValidationSettings
from .network import ValidationFailed, resolver

MAX_RECORDS = 32


async def validate(name: str, key_authorization: str, settings: ValidationSettings) -> None:
    expected = b64e(hashlib.sha256(key_authorization.encode()).digest()).encode()
    base = name[2:] if name.startswith("*.") else name
    try:
        answer = await resolver(settings).resolve(f"_acme-challenge.{base}", "TXT")
    except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
        raise ValidationFailed("dns", f"no TXT record at _acme-challenge.{base}") from None
    except dns.exception.DNSException as exc:
        raise ValidationFailed("dns", f"DNS lookup failed: {type(exc).__name__}") from None
    for record in list(answer)[:MAX_RECORDS]:
        # Compared as bytes: a TXT record is any octets (RFC 1035 §3.3.14), and
        # compare_digest refuses str that is not ASCII.
        strings = getattr(record, "strings", None)
        if not isinstance(strings, tuple | list):
            continue
        if hmac.compare_digest(b"".join(bytes(s) for s in strings), expected):
            return
    raise ValidationFailed("incorrectResponse", "no TXT record holds the key authorization")
