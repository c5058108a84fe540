"""A minimal DER encoder for the structures SCEP writes on every response.

Building CMS with asn1crypto objects costs milliseconds per message (it re-parses and
re-tags certificates); these few functions concatenate bytes instead. Parsing stays
with asn1crypto.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable


def tlv(tag: int, content: bytes) -> bytes:
    """One DER element (X.690 §8.1): tag, definite length, content."""
    n = len(content)
    if n < 0x80:
        return bytes((tag, n)) + content
    size = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes((tag, 0x80 | len(size))) + size + content


def seq(*parts: bytes) -> bytes:
    return tlv(0x30, b"".join(parts))


def set_of(parts: Iterable[bytes]) -> bytes:
    """SET OF, sorted by encoding as DER requires (X.690 §11.6)."""
    return tlv(0x31, b"".join(sorted(parts)))


def integer(value: int) -> bytes:
    length = value.bit_length() // 8 + 1  # room for the sign bit
    return tlv(0x02, value.to_bytes(length, "big", signed=True))


def octets(value: bytes) -> bytes:
    return tlv(0x04, value)


def printable(value: str) -> bytes:
    return tlv(0x13, value.encode("ascii"))


def utf8(value: str) -> bytes:
    return tlv(0x0C, value.encode())


@functools.lru_cache(maxsize=256)
def oid(dotted: str) -> bytes:
    arcs = [int(a) for a in dotted.split(".")]
    body = bytearray([40 * arcs[0] + arcs[1]])
    for arc in arcs[2:]:
        chunk = [arc & 0x7F]
        arc >>= 7
        while arc:
            chunk.append(0x80 | (arc & 0x7F))
            arc >>= 7
        body += bytes(reversed(chunk))
    return tlv(0x06, bytes(body))


def context(number: int, content: bytes, constructed: bool = True) -> bytes:
    """[number] IMPLICIT (or, wrapping one element, EXPLICIT) context tag."""
    return tlv((0xA0 if constructed else 0x80) | number, content)


NULL = b"\x05\x00"
