"""ACME Renewal Information (RFC 9773): the certificate identifier and the suggested
renewal window."""

from __future__ import annotations

import datetime as dt
from typing import Any

from cryptography import x509

from enroll.model import CertificateRecord, CertificateStatus
from enroll.profile_fleet import Fleet

from .fields import rfc3339
from .jws import b64d, b64e
from .problems import malformed

RETRY_AFTER = 6 * 3600
MAX_SERIAL_BYTES = 20
"""RFC 5280 §4.1.2.2: a serial number is at most 20 octets."""
MAX_KEY_ID_BYTES = 64


def cert_id(cert: x509.Certificate) -> str:
    """RFC 9773 §4.1: base64url(AKI keyIdentifier) "." base64url(serial DER octets)."""
    aki = cert.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    serial = cert.serial_number
    raw = serial.to_bytes((serial.bit_length() + 8) // 8, "big")
    return f"{b64e(aki.key_identifier or b'')}.{b64e(raw)}"


def parse_cert_id(text: Any) -> tuple[bytes, str]:
    """(AKI keyIdentifier, serial hex) of a certID. Raises malformed for anything that is
    not two non-empty base64url parts, a key identifier of at most 64 octets and a
    positive serial of at most 20 (RFC 9773 §4.1, RFC 5280 §4.1.2.2)."""
    if not isinstance(text, str) or len(text) > 256 or text.count(".") != 1:
        raise malformed("not an ARI certificate identifier")
    aki_b64, serial_b64 = text.split(".")
    aki, serial = b64d(aki_b64, "certID"), b64d(serial_b64, "certID")
    if not aki or not serial or len(aki) > MAX_KEY_ID_BYTES:
        raise malformed("not an ARI certificate identifier")
    if len(serial) > MAX_SERIAL_BYTES or serial[0] & 0x80 or not any(serial):
        raise malformed("the certID serial is not a positive serial of at most 20 octets")
    return aki, format(int.from_bytes(serial, "big"), "x")


def matches(record: CertificateRecord, aki: bytes) -> bool:
    try:
        ext = record.certificate.extensions.get_extension_for_class(
            x509.AuthorityKeyIdentifier).value
    except x509.ExtensionNotFound:
        return False
    return ext.key_identifier == aki


def window(record: CertificateRecord, now: dt.datetime, fleet: Fleet) -> dict[str, Any]:
    """RFC 9773 §4.2: the suggested window is the renewal window of the certificate's
    profile (`Fleet.renewal_window`, the one `enroll inventory` reports as due), as
    configured now; a revoked certificate: right away."""
    if record.status is CertificateStatus.REVOKED:
        start, end = now - dt.timedelta(hours=1), now
    else:
        start, end = fleet.renewal_window(record.not_before, record.not_after)
    return {"suggestedWindow": {"start": rfc3339(start), "end": rfc3339(end)}}
