"""Certificate serial numbers: 16 bytes from the OS CSPRNG, positive, never zero.

The top bit is cleared so the DER INTEGER stays 16 octets and positive (RFC 5280
§4.1.2.2: at most 20 octets, positive). Uniqueness is enforced by the store's unique
constraint, not by this function.
"""

from __future__ import annotations

import secrets


def new_serial() -> int:
    while True:
        value = int.from_bytes(secrets.token_bytes(16), "big") & ((1 << 127) - 1)
        if value >= 1 << 64:  # vanishingly rare retry; keeps serials long and unguessable
            return value


def serial_hex(serial: int) -> str:
    return format(serial, "x")


def parse_serial_hex(text: str) -> str:
    """The stored form of a serial an operator typed: ``0F:9F…``, ``0x0f9f…`` or ``f9f…``
    all become ``f9f…`` (lower-case hex, no leading zeros). OpenSSL prints serials
    zero-padded to whole bytes, so without this one certificate in eight could not be
    found by the serial `openssl x509 -serial` shows. Raises `ValueError`."""
    cleaned = text.strip().replace(":", "").lower().removeprefix("0x")
    if not cleaned or len(cleaned) > 40 or any(c not in "0123456789abcdef" for c in cleaned):
        raise ValueError("a serial number is up to 20 bytes of hex")
    return serial_hex(int(cleaned, 16))
