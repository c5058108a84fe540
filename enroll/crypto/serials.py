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
