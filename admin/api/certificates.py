"""``/certificates``: list (the inventory's filters), get, download (PEM, DER), revoke
one, revoke every live certificate of an identity."""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
from typing import Any

from cryptography.hazmat.primitives.serialization import Encoding
from starlette.responses import Response

from enroll.crypto.serials import parse_serial_hex
from enroll.errors import MalformedInput
from enroll.model import CertificateRecord, CertificateStatus
from enroll.store.columns import utc

from .. import operations
from ..operations import REVOCATION_REASONS, CertificateFilters
from ..roles import Action
from .app import Call, Operation
from .inputs import LIMIT, SERIAL, Field

REASONS = tuple(sorted(f.value for f in REVOCATION_REASONS.values()))
FILTERS = (
    Field("status", "string", "valid or revoked", enum=("valid", "revoked")),
    Field("ca", "string", "issuing CA", minimum=1, maximum=64),
    Field("protocol", "string", "scep, est, acme, core", minimum=1, maximum=64),
    Field("profile", "string", minimum=1, maximum=64),
    Field("endpoint", "string", "the endpoint label that issued it", minimum=1, maximum=64),
    Field("identity", "string", "exactly this identity (`subject.CN:dev-42`)",
          minimum=1, maximum=1024),
    Field("expiring_within", "integer", "seconds: unrevoked and expiring within",
          minimum=0, maximum=20 * 366 * 86400),
    LIMIT,
    Field("after", "string", "the `next` cursor of the previous page", minimum=1,
          maximum=256),
)
REASON = Field("reason", "string", "RFC 5280 reason", enum=REASONS, required=True)


def _time(value: dt.datetime | None) -> str | None:
    return value.isoformat(timespec="seconds") if value is not None else None


def as_json(rec: CertificateRecord) -> dict[str, Any]:
    return {
        "serial": rec.serial_hex, "status": rec.status.value, "ca": rec.ca,
        "profile": rec.profile, "protocol": rec.protocol, "endpoint": rec.endpoint,
        "identity": rec.identity, "subject": rec.subject, "sans": list(rec.sans),
        "requester": rec.requester, "request_id": rec.request_id,
        "not_before": _time(rec.not_before), "not_after": _time(rec.not_after),
        "replaces": rec.replaces, "superseded_by": rec.superseded_by,
        "revoked_at": _time(rec.revoked_at),
        "revocation_reason": rec.revocation_reason.value if rec.revocation_reason else None,
        "device_id": rec.device_id}


def serial_of(text: str) -> str:
    try:
        return parse_serial_hex(text)
    except ValueError:
        raise MalformedInput("serial: a serial number is up to 20 bytes of hex") from None


def _cursor(rec: CertificateRecord) -> str:
    raw = json.dumps([rec.not_after.isoformat(), rec.serial_hex], separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _after(token: str | None) -> tuple[dt.datetime, str] | None:
    if token is None:
        return None
    try:
        when, serial = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        value = utc(when)
        if value is None or not isinstance(serial, str) or len(serial) > 40:
            raise ValueError(serial)
        return value, serial
    except (ValueError, TypeError, binascii.Error):
        raise MalformedInput("after: not a cursor of this listing") from None


def list_certificates(call: Call) -> dict[str, Any]:
    q = call.query
    filters = CertificateFilters(
        status=CertificateStatus(q["status"]) if q["status"] else None, ca=q["ca"],
        protocol=q["protocol"], profile=q["profile"], endpoint=q["endpoint"],
        identity=q["identity"], expiring_within=q["expiring_within"])
    limit = q["limit"]
    found = operations.certificates(call.ctx, call.who, filters, limit=limit + 1,
                                    after=_after(q["after"]))
    items = found[:limit]
    return {"items": [as_json(r) for r in items],
            "next": _cursor(items[-1]) if len(found) > limit and items else None}


def get_certificate(call: Call) -> dict[str, Any]:
    return as_json(operations.certificate(call.ctx, call.who, serial_of(call.path["serial"])))


def _download(call: Call, encoding: Encoding, media: str, suffix: str) -> Response:
    rec = operations.certificate(call.ctx, call.who, serial_of(call.path["serial"]))
    return Response(rec.certificate.public_bytes(encoding), media_type=media, headers={
        "Content-Disposition": f'attachment; filename="{rec.serial_hex}.{suffix}"',
        "Cache-Control": "no-store"})


def certificate_pem(call: Call) -> Response:
    return _download(call, Encoding.PEM, "application/pem-certificate-chain", "pem")


def certificate_der(call: Call) -> Response:
    return _download(call, Encoding.DER, "application/pkix-cert", "der")


def revoke_certificate(call: Call) -> dict[str, Any]:
    return as_json(operations.revoke(call.ctx, call.who, serial_of(call.path["serial"]),
                                     call.body["reason"]))


def revoke_identity(call: Call) -> dict[str, Any]:
    done = operations.revoke_identity(call.ctx, call.who, call.body["identity"],
                                      call.body["reason"], dry_run=call.body["dry_run"])
    return {"count": len(done), "dry_run": call.body["dry_run"],
            "items": [as_json(r) for r in done]}


def operations_() -> list[Operation]:
    tag = "certificates"
    one = (SERIAL,)
    return [
        Operation("GET", "/certificates", Action.READ, list_certificates,
                  "List issued certificates, soonest expiry first", tag, "CertificatePage",
                  query=FILTERS, errors=(400,)),
        Operation("GET", "/certificates/{serial}", Action.READ, get_certificate,
                  "One certificate", tag, "Certificate", path_fields=one),
        Operation("GET", "/certificates/{serial}/pem", Action.READ, certificate_pem,
                  "The certificate as PEM", tag, None, path_fields=one,
                  media=("application/pem-certificate-chain",)),
        Operation("GET", "/certificates/{serial}/der", Action.READ, certificate_der,
                  "The certificate as DER", tag, None, path_fields=one,
                  media=("application/pkix-cert",)),
        Operation("POST", "/certificates/{serial}/revoke", Action.REVOKE, revoke_certificate,
                  "Revoke one certificate", tag, "Certificate", path_fields=one,
                  body=(REASON,), errors=(400, 404, 409)),
        Operation("POST", "/certificates/revoke-identity", Action.REVOKE, revoke_identity,
                  "Revoke every live certificate of an identity, whichever door issued it",
                  tag, "Revoked", body=(
                      Field("identity", "string", "as the inventory shows it "
                            "(`subject.CN:dev-42`)", required=True, minimum=3,
                            maximum=1024),
                      REASON,
                      Field("dry_run", "boolean", "list what would be revoked",
                            default=False)),
                  errors=(400,)),
    ]
