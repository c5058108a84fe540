"""A minimal reader for the DER that SCEP clients send on every request.

asn1crypto's object model costs about a millisecond per pkiMessage; this reader walks
tag-length-value triples over one `memoryview` instead. It handles definite-length
encodings only and raises `NotSimple` for anything else (indefinite lengths, unusual
structure), in which case callers fall back to asn1crypto. Everything it returns is
still checked by the same signature, digest and decryption code.
"""

from __future__ import annotations

from dataclasses import dataclass

MAX_DEPTH_ELEMENTS = 64


class NotSimple(Exception):
    """Not plain definite-length DER in the shape expected: use the general parser."""


@dataclass(frozen=True, slots=True)
class TLV:
    tag: int
    """The identifier octet (class, constructed bit and tag number <= 30)."""
    content: bytes
    raw: bytes
    """The whole element, header included."""


def read(data: bytes, pos: int = 0) -> tuple[TLV, int]:
    """One element at `pos`; returns it and the position after it."""
    if pos + 2 > len(data):
        raise NotSimple("truncated")
    tag = data[pos]
    if tag & 0x1F == 0x1F:
        raise NotSimple("high tag number")
    first = data[pos + 1]
    start = pos + 2
    if first < 0x80:
        length = first
    elif first == 0x80:
        raise NotSimple("indefinite length")
    else:
        count = first & 0x7F
        if count > 4 or start + count > len(data):
            raise NotSimple("bad length")
        length = int.from_bytes(data[start:start + count], "big")
        start += count
    end = start + length
    if end > len(data):
        raise NotSimple("truncated")
    return TLV(tag, data[start:end], data[pos:end]), end


def children(content: bytes) -> list[TLV]:
    """The elements inside a constructed element's content."""
    result: list[TLV] = []
    pos = 0
    while pos < len(content):
        element, pos = read(content, pos)
        result.append(element)
        if len(result) > MAX_DEPTH_ELEMENTS:
            raise NotSimple("too many elements")
    return result


def only(data: bytes) -> TLV:
    """Exactly one element spanning all of `data`."""
    element, end = read(data)
    if end != len(data):
        raise NotSimple("trailing data")
    return element


def expect(element: TLV, tag: int) -> TLV:
    if element.tag != tag:
        raise NotSimple(f"expected tag {tag:#x}, got {element.tag:#x}")
    return element


_OIDS: dict[bytes, str] = {}


def oid(element: TLV) -> str:
    """The dotted form of an OBJECT IDENTIFIER element (cached: the set is small)."""
    expect(element, 0x06)
    cached = _OIDS.get(element.content)
    if cached is not None:
        return cached
    body = element.content
    if not body or body[-1] & 0x80:
        raise NotSimple("bad OID")
    arcs: list[int] = []
    value = 0
    for byte in body:
        value = (value << 7) | (byte & 0x7F)
        if not byte & 0x80:
            arcs.append(value)
            value = 0
    first = min(arcs[0] // 40, 2)
    dotted = ".".join(str(a) for a in [first, arcs[0] - 40 * first, *arcs[1:]])
    if len(_OIDS) < 1024:
        _OIDS[body] = dotted
    return dotted


def integer(element: TLV) -> int:
    expect(element, 0x02)
    if not element.content:
        raise NotSimple("empty INTEGER")
    return int.from_bytes(element.content, "big", signed=True)


def octets(element: TLV) -> bytes:
    """OCTET STRING content, primitive or one level of constructed segments."""
    if element.tag == 0x04:
        return element.content
    if element.tag == 0x24:
        return b"".join(expect(s, 0x04).content for s in children(element.content))
    raise NotSimple("expected OCTET STRING")
