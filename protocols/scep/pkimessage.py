"""SCEP pkiMessage (RFC 8894 §3.2): parsing requests, building CertRep responses, and
the client side of both (used by tests and the benchmark).

Pure: bytes and `cryptography` objects in, bytes or dataclasses out. Size limits are
checked before anything is parsed.
"""

from __future__ import annotations

import datetime as dt
import enum
import os
from collections.abc import Sequence
from dataclasses import dataclass

from asn1crypto import core
from asn1crypto import x509 as ax509
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from . import der, envelope, signeddata
from .failinfo import FailInfo, ScepFailure

# RFC 8894 §3.2.1: SCEP authenticated attributes.
OID_MESSAGE_TYPE = "2.16.840.1.113733.1.9.2"
OID_PKI_STATUS = "2.16.840.1.113733.1.9.3"
OID_FAIL_INFO = "2.16.840.1.113733.1.9.4"
OID_SENDER_NONCE = "2.16.840.1.113733.1.9.5"
OID_RECIPIENT_NONCE = "2.16.840.1.113733.1.9.6"
OID_TRANSACTION_ID = "2.16.840.1.113733.1.9.7"
OID_FAIL_INFO_TEXT = "1.3.6.1.5.5.7.24.1"

MAX_MESSAGE_BYTES = 64 * 1024
MAX_TRANSACTION_ID = 128
NONCE_BYTES = 16


class MessageType(enum.Enum):
    """RFC 8894 §3.2.1.2."""

    CERT_REP = "3"
    RENEWAL_REQ = "17"
    UPDATE_REQ = "18"
    PKCS_REQ = "19"
    CERT_POLL = "20"
    GET_CERT = "21"
    GET_CRL = "22"


class PKIStatus(enum.Enum):
    """RFC 8894 §3.2.1.3."""

    SUCCESS = "0"
    FAILURE = "2"
    PENDING = "3"


@dataclass(frozen=True, slots=True)
class PKIMessage:
    """A parsed (not yet verified) request. `message_type` is the raw string so an
    unknown type can still be answered with badRequest."""

    message_type: str
    transaction_id: str
    sender_nonce: bytes
    signed: signeddata.SignedMessage

    @property
    def signer(self) -> x509.Certificate:
        return self.signed.signer


def _single(attrs: signeddata.SignedMessage, oid: str, spec: type[core.Asn1Value],
            name: str) -> object:
    values = attrs.attributes.get(oid, [])
    if len(values) != 1:
        raise ScepFailure(FailInfo.BAD_REQUEST, f"{name} attribute missing")
    try:
        return signeddata.value_of(values[0], spec)
    except (ValueError, TypeError) as exc:
        raise ScepFailure(FailInfo.BAD_REQUEST, f"malformed {name}") from exc


def parse_pkimessage(data: bytes, max_bytes: int = MAX_MESSAGE_BYTES) -> PKIMessage:
    """Parse a pkiMessage and its SCEP attributes (RFC 8894 §3.2.1). Raises
    `ScepFailure` (badRequest) when it is not one; nothing is verified or decrypted."""
    if not data or len(data) > max_bytes:
        raise ScepFailure(FailInfo.BAD_REQUEST, "message empty or too large")
    signed = signeddata.parse(data)
    message_type = _single(signed, OID_MESSAGE_TYPE, core.PrintableString, "messageType")
    tid = _single(signed, OID_TRANSACTION_ID, core.PrintableString, "transactionID")
    nonce = _single(signed, OID_SENDER_NONCE, core.OctetString, "senderNonce")
    if not isinstance(tid, str) or not 0 < len(tid) <= MAX_TRANSACTION_ID \
            or not all(" " <= ch <= "~" for ch in tid):
        # Echoed in the CertRep as a PrintableString: printable ASCII only.
        raise ScepFailure(FailInfo.BAD_REQUEST, "transactionID empty, too long or not ASCII")
    if not isinstance(nonce, bytes) or not 8 <= len(nonce) <= 64:
        raise ScepFailure(FailInfo.BAD_REQUEST, "senderNonce must be 8 to 64 bytes")
    return PKIMessage(str(message_type), tid, nonce, signed)


def _printable(oid: str, value: str) -> bytes:
    return signeddata.attribute(oid, der.printable(value))


def build_certrep(*, status: PKIStatus, transaction_id: str, recipient_nonce: bytes,
                  signer: x509.Certificate, key: rsa.RSAPrivateKey,
                  digest: str = "sha256", enveloped: bytes | None = None,
                  fail_info: FailInfo | None = None, fail_text: str | None = None,
                  now: dt.datetime | None = None) -> bytes:
    """A CertRep (RFC 8894 §3.3.2): transactionID echoed, the request's senderNonce as
    recipientNonce, a fresh senderNonce; `enveloped` (the EnvelopedData) only on
    SUCCESS, failInfo (and failInfoText) only on FAILURE."""
    attrs = [
        _printable(OID_MESSAGE_TYPE, MessageType.CERT_REP.value),
        _printable(OID_PKI_STATUS, status.value),
        _printable(OID_TRANSACTION_ID, transaction_id),
        signeddata.attribute(OID_RECIPIENT_NONCE, der.octets(recipient_nonce)),
        signeddata.attribute(OID_SENDER_NONCE, der.octets(os.urandom(NONCE_BYTES))),
    ]
    if status is PKIStatus.FAILURE:
        attrs.append(_printable(OID_FAIL_INFO, (fail_info or FailInfo.BAD_REQUEST).value))
        if fail_text:
            attrs.append(signeddata.attribute(OID_FAIL_INFO_TEXT, der.utf8(fail_text[:200])))
    return signeddata.sign(enveloped if status is PKIStatus.SUCCESS else None,
                           attrs, signer, key, digest, now=now)


# -- message contents (RFC 8894 §3.3.3, §3.3.4) -------------------------------------------

class IssuerAndSubject(core.Sequence):  # type: ignore[misc]
    _fields = [("issuer", ax509.Name), ("subject", ax509.Name)]


def parse_issuer_and_subject(der: bytes) -> tuple[bytes, bytes]:
    """CertPoll content (RFC 8894 §3.3.3): issuer and subject Names as DER."""
    try:
        value = IssuerAndSubject.load(der, strict=True)
        return bytes(value["issuer"].dump()), bytes(value["subject"].dump())
    except (ValueError, TypeError) as exc:
        raise ScepFailure(FailInfo.BAD_REQUEST, "malformed IssuerAndSubject") from exc


def parse_issuer_and_serial(der: bytes) -> tuple[bytes, int]:
    """GetCert / GetCRL content (RFC 8894 §3.3.4): IssuerAndSerialNumber, the issuer
    Name as DER."""
    from asn1crypto import cms

    try:
        value = cms.IssuerAndSerialNumber.load(der, strict=True)
        return bytes(value["issuer"].dump()), int(value["serial_number"].native)
    except (ValueError, TypeError) as exc:
        raise ScepFailure(FailInfo.BAD_REQUEST, "malformed IssuerAndSerialNumber") from exc


def issuer_and_subject(issuer: x509.Name, subject: x509.Name) -> bytes:
    return der.seq(issuer.public_bytes(), subject.public_bytes())


def issuer_and_serial(issuer: x509.Name, serial: int) -> bytes:
    return der.seq(issuer.public_bytes(), der.integer(serial))


# -- the client side (tests, benchmark) -----------------------------------------------------

def build_request(message_type: MessageType | str, payload: bytes,
                  recipients: Sequence[x509.Certificate], signer: x509.Certificate,
                  key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey, transaction_id: str,
                  sender_nonce: bytes | None = None, cipher: str = "aes128_cbc",
                  digest: str = "sha256", now: dt.datetime | None = None) -> bytes:
    """A client pkiMessage: `payload` enveloped to `recipients`, signed by `signer`."""
    kind = message_type.value if isinstance(message_type, MessageType) else message_type
    attrs = [
        _printable(OID_MESSAGE_TYPE, kind),
        _printable(OID_TRANSACTION_ID, transaction_id),
        signeddata.attribute(OID_SENDER_NONCE,
                             der.octets(sender_nonce or os.urandom(NONCE_BYTES))),
    ]
    enveloped = envelope.encrypt(payload, recipients, cipher)
    return signeddata.sign(enveloped, attrs, signer, key, digest, now=now)


@dataclass(frozen=True, slots=True)
class CertRep:
    status: PKIStatus
    fail_info: FailInfo | None
    fail_text: str | None
    transaction_id: str
    recipient_nonce: bytes
    enveloped: bytes | None
    signer: x509.Certificate


def _bytes(value: object) -> bytes:
    if not isinstance(value, bytes):
        raise ScepFailure(FailInfo.BAD_REQUEST, "expected an OCTET STRING")
    return value


def parse_certrep(der: bytes, ra: x509.Certificate | None = None) -> CertRep:
    """Parse and verify a CertRep (signature checked against `ra` when given)."""
    signed = signeddata.parse(der)
    signeddata.verify(signed, signeddata.HASHES)
    if ra is not None and signed.signer != ra:
        raise ScepFailure(FailInfo.BAD_MESSAGE_CHECK, "CertRep not signed by the RA")
    status = PKIStatus(_single(signed, OID_PKI_STATUS, core.PrintableString, "pkiStatus"))
    fail_info = None
    fail_text = None
    if status is PKIStatus.FAILURE:
        fail_info = FailInfo(_single(signed, OID_FAIL_INFO, core.PrintableString, "failInfo"))
        if OID_FAIL_INFO_TEXT in signed.attributes:
            fail_text = str(_single(signed, OID_FAIL_INFO_TEXT, core.UTF8String, "failInfoText"))
    return CertRep(
        status=status, fail_info=fail_info, fail_text=fail_text,
        transaction_id=str(_single(signed, OID_TRANSACTION_ID, core.PrintableString, "tid")),
        recipient_nonce=_bytes(_single(signed, OID_RECIPIENT_NONCE, core.OctetString,
                                       "recipientNonce")),
        enveloped=signed.content, signer=signed.signer)
