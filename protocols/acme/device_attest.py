"""device-attest-01 (draft-ietf-acme-device-attest): the client answers the challenge
with ``{"attObj": base64url(CBOR attestation object)}``, the WebAuthn structure
``{"fmt": "apple", "attStmt": {...}, "authData": h''}``. This module decodes it (bounded),
hands the statement to the core's attestation verifiers (`Door.verify_attestation`, the
``enroll_verify_attestation`` hook), and checks that the device attested the identifier
the order names. Every refusal is a ``badAttestationStatement`` problem; nothing here
touches the network."""

from __future__ import annotations

import binascii
import io
from typing import Any

import cbor2

from enroll.attestation import AttestationContext, AttestationRefused

from .endpoint import AcmeEndpoint
from .problems import document
from .store import Authz

MAX_ATT_OBJ = 32768
"""Bytes of the decoded attestation object (an Apple chain is about 2 KiB)."""
BAD = "badAttestationStatement"


class Refused(Exception):  # noqa: N818
    def __init__(self, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.problem = document(BAD, detail, **extra)


def _att_obj(payload: object) -> dict[Any, Any]:
    text = payload.get("attObj") if isinstance(payload, dict) else None
    if not isinstance(text, str) or not text:
        raise Refused("the challenge response needs attObj")
    if len(text) > MAX_ATT_OBJ * 4 // 3 + 4:
        raise Refused("attObj is too large")
    try:
        raw = binascii.a2b_base64(text.replace("-", "+").replace("_", "/")
                                  + "=" * (-len(text) % 4), strict_mode=True)
    except (binascii.Error, ValueError):
        raise Refused("attObj is not base64url") from None
    try:
        # One CBOR item, nothing after it; cbor2 bounds nesting itself.
        stream = io.BytesIO(raw)
        obj = cbor2.CBORDecoder(stream).decode()
        if stream.read(1):
            raise ValueError("trailing bytes")
    except (cbor2.CBORDecodeError, ValueError, TypeError, OverflowError, RecursionError,
            EOFError, MemoryError):
        raise Refused("attObj is not a CBOR attestation object") from None
    if not isinstance(obj, dict):
        raise Refused("attObj is not a CBOR map")
    return obj


def verify(ep: AcmeEndpoint, authz: Authz, token: str, key_authorization: str,
           payload: object) -> dict[str, Any]:
    """What the device proved (stored on the authorization), or raise `Refused`."""
    obj = _att_obj(payload)
    fmt, statement, auth_data = obj.get("fmt"), obj.get("attStmt"), obj.get("authData", b"")
    if not isinstance(fmt, str) or not isinstance(statement, dict) \
            or not isinstance(auth_data, bytes):
        raise Refused("attObj needs fmt, attStmt and authData")
    context = AttestationContext(
        fmt=fmt[:32], statement=statement, auth_data=auth_data, token=token,
        key_authorization=key_authorization, identifier=(authz.type, authz.value),
        protocol="acme", endpoint=ep.label, roots=ep.settings.attestation_roots.get(fmt),
        now=ep.clock.now())
    try:
        attested = ep.authority.verify_attestation(context)
    except AttestationRefused as exc:
        raise Refused(exc.detail[:200]) from None
    if attested is None:
        raise Refused(f"unsupported attestation format {fmt[:32]!r}")
    if authz.value not in attested.identifiers:
        identifier = {"type": authz.type, "value": authz.value}
        raise Refused("the device attested another identifier", subproblems=[document(
            "rejectedIdentifier", f"{authz.value} is not the attested device",
            identifier=identifier)])
    return {"fmt": attested.fmt, "key_sha256": attested.key_sha256,
            "device_id": attested.device_id, "identifiers": sorted(attested.identifiers)}
