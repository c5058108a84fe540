"""SCEP operations for one endpoint (RFC 8894 §3.5, §4): capabilities, CA certificates,
and PKIOperation with PKCSReq, RenewalReq, CertPoll, GetCert and GetCRL.

No HTTP here (see `http.py`) and no SQL for issuance (the core does it). Every request
that parses as a pkiMessage is answered with a signed CertRep, whatever goes wrong.
"""

from __future__ import annotations

import datetime as dt
import hmac
import logging
from collections.abc import Callable
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import AttributeOID

from enroll import refusals
from enroll.crypto.keys import spki_sha256
from enroll.csr import load_csr
from enroll.door import FrontEnd
from enroll.errors import BadCSR, EnrollError, NotFound, Unauthorized
from enroll.model import (
    CertificateRecord,
    ChallengeContext,
    EnrollmentRequest,
    Issued,
    Outcome,
    Pending,
    Rejected,
    Requester,
)
from enroll.rate_limits import Limit

from . import algorithms, caps, envelope, keyagreement, signeddata
from .challenges import OneTimeChallenges, Reservation, digest, settings_for
from .failinfo import FailInfo, ScepFailure, Undecryptable, fail_info_for
from .pkimessage import (
    MessageType,
    PKIMessage,
    PKIStatus,
    build_certrep,
    parse_issuer_and_serial,
    parse_pkimessage,
)
from .ra import RA, Generations, RAKeyring
from .settings import EndpointSettings

log = logging.getLogger("enroll.scep")
DER = serialization.Encoding.DER
PROTOCOL = "scep"


@dataclass(frozen=True, slots=True)
class _Result:
    status: PKIStatus
    content: bytes | None = None
    """Degenerate SignedData to envelope to the requester (SUCCESS only)."""
    fail_info: FailInfo | None = None
    fail_text: str | None = None


class ScepService:
    """The SCEP operations of one configured endpoint."""

    def __init__(self, frontend: FrontEnd, endpoint: EndpointSettings,
                 one_time: OneTimeChallenges) -> None:
        self.frontend = frontend
        self.door = frontend.door
        self.clock = frontend.clock
        self.endpoint = endpoint
        self.ras = RAKeyring(frontend, endpoint, endpoint.ca)
        self._one_time = one_time
        self._ca_cert_bodies: dict[int, bytes] = {}
        current = self.ras.snapshot().current
        if self.endpoint.getcacert == "auto" and len(self._getcacert_certificates(current)) < 2:
            log.warning("SCEP %s: CA %r has no RSA key, so GetCACert carries the RA alone "
                        "and clients cannot chain their certificates to it; give the "
                        "endpoint an RSA issuing CA (docs/scep.md, RA keys)",
                        endpoint.label, endpoint.ca)
        self._handlers: dict[MessageType, Callable[[PKIMessage, bytes], _Result]] = {
            MessageType.PKCS_REQ: self._pkcs_req,
            MessageType.RENEWAL_REQ: self._renewal_req,
            MessageType.CERT_POLL: self._cert_poll,
            MessageType.GET_CERT: self._get_cert,
            MessageType.GET_CRL: self._get_crl,
        }

    # -- GetCACaps, GetCACert, GetNextCACert (RFC 8894 §3.5, §4.2, §4.7) -----------------

    @property
    def ra(self) -> RA:
        """The current RA generation (read from the database)."""
        return self.ras.snapshot().current

    def caps(self) -> str:
        nxt = self.endpoint.next_ca is not None or self.ras.snapshot().next is not None
        return caps.render(self.endpoint, next_ca_cert=nxt)

    def _getcacert_certificates(self, ra: RA) -> list[x509.Certificate]:
        """The RA first (the only certificate with keyEncipherment), then the CAs."""
        mode = self.endpoint.getcacert
        if mode == "ra":
            return [ra.certificate]
        if mode == "chain":
            return [ra.certificate, *ra.chain]
        rsa_prefix: list[x509.Certificate] = []
        for cert in ra.chain:
            if not isinstance(cert.public_key(), rsa.RSAPublicKey):
                break
            rsa_prefix.append(cert)
        return [ra.certificate, *rsa_prefix]

    def ca_cert(self) -> tuple[bytes, str]:
        """RFC 8894 §4.2.1.2: the current RA certificate + CA certificates as a
        degenerate SignedData."""
        current = self.ras.snapshot().current
        body = self._ca_cert_bodies.get(current.generation)
        if body is None:
            body = signeddata.degenerate(self._getcacert_certificates(current))
            self._ca_cert_bodies[current.generation] = body
        return body, "application/x-x509-ca-ra-cert"

    def next_ca_cert(self) -> bytes | None:
        """RFC 8894 §4.7: the next CA (and its RA), or the next RA generation of this CA,
        as a degenerate SignedData signed by the current RA. None when neither exists."""
        generations = self.ras.snapshot()
        current = generations.current
        if self.endpoint.next_ca is not None:
            nxt = RAKeyring(self.frontend, self.endpoint, self.endpoint.next_ca).snapshot().current
            inner = signeddata.degenerate([nxt.certificate, *nxt.chain])
        elif generations.next is not None:
            inner = signeddata.degenerate(self._getcacert_certificates(generations.next))
        else:
            return None
        return signeddata.sign(inner, [], current.certificate, current.key)

    # -- PKIOperation ----------------------------------------------------------------------

    def pki_operation(self, body: bytes, request_id: str = "-",
                      source: str | None = None) -> bytes:
        """Answer one pkiMessage with a DER CertRep. Raises `ScepFailure` only when the
        body is not a pkiMessage at all (no transactionID or nonce to answer with).
        `request_id` (the HTTP request's) is in the log line and the failInfoText of an
        internal error; `source` (the peer address) is what the failure limit counts and
        is in the audit of a refusal."""
        message = parse_pkimessage(body, self.endpoint.max_message_bytes)
        cipher = "aes128_cbc"
        limits = self._failure_limits(source)
        generations = self.ras.snapshot()
        # The CertRep is signed by the RA the request was enveloped to, else the current.
        signer = [generations.current]
        try:
            # A throttled address is answered before anything is decrypted.
            self.frontend.limits.check(limits, "failed requests from this address")
            result, cipher = self._dispatch(message, generations, signer)
        except Exception as exc:  # every failure becomes a signed CertRep
            if isinstance(exc, Undecryptable | Unauthorized):
                # Wrong challenges and contents that do not open count alike, so the
                # count says nothing the identical answers do not.
                self.frontend.limits.hit(limits)
            fail_info, text = fail_info_for(exc, request_id)
            if not isinstance(exc, EnrollError):
                log.exception("SCEP %s: internal error", self.endpoint.label,
                              extra={"request_id": request_id})
            else:
                # The real reason of an Undecryptable goes to the operator only.
                reason = exc.reason if isinstance(exc, Undecryptable) else text
                log.info("SCEP %s: transaction %s failed: %s (%s)", self.endpoint.label,
                         message.transaction_id, fail_info.name, reason)
                self._record_refusal(exc, message, source, reason)
            result = _Result(PKIStatus.FAILURE, fail_info=fail_info, fail_text=text)
        digest = message.signed.digest if message.signed.digest in self.endpoint.digests \
            else "sha256"
        enveloped = None
        if result.status is PKIStatus.SUCCESS and result.content is not None:
            # Answer with the cipher the client used: it proved it supports it.
            enveloped = envelope.encrypt(result.content, [message.signer], cipher)
        return build_certrep(
            status=result.status, transaction_id=message.transaction_id,
            recipient_nonce=message.sender_nonce, signer=signer[-1].certificate,
            key=signer[-1].key,
            digest=digest, enveloped=enveloped, fail_info=result.fail_info,
            fail_text=result.fail_text)

    def _failure_limits(self, source: str | None) -> list[Limit]:
        if source is None:
            return []
        return [Limit("scep.failures", f"{self.endpoint.label}|{source}",
                      self.endpoint.rate_limits["failures_per_address"])]

    def _record_refusal(self, exc: EnrollError, message: PKIMessage, source: str | None,
                        reason: str) -> None:
        """Audit the refusal (every one costs the same write, whatever its reason, so
        the answer time shows no more than the answer does)."""
        code = "undecryptable" if isinstance(exc, Undecryptable) else (
            f"scep_{exc.fail_info.name.lower()}" if isinstance(exc, ScepFailure)
            else refusals.reason_code(exc))
        self.door.record_refusal(
            f"scep:{self.endpoint.label}", code, source, refusals.actor_of(exc),
            {"message_type": message.message_type, "detail": reason})

    def _dispatch(self, message: PKIMessage, generations: Generations,
                  signer: list[RA]) -> tuple[_Result, str]:
        try:
            kind = MessageType(message.message_type)
        except ValueError:
            kind = None
        handler = self._handlers.get(kind) if kind is not None else None
        if handler is None:
            # Default deny: nothing is decrypted for a type that is not handled.
            raise ScepFailure(FailInfo.BAD_REQUEST,
                              f"message type {message.message_type[:8]} is not supported")
        if message.signed.digest not in self.endpoint.digests:
            raise ScepFailure(FailInfo.BAD_ALG, algorithms.refusal(
                message.signed.digest, "digest", self.endpoint.label))
        signeddata.verify(message.signed, self.endpoint.digests)
        self._check_time(message)
        signer_key = message.signer.public_key()
        if not (isinstance(signer_key, rsa.RSAPublicKey) or (
                isinstance(signer_key, ec.EllipticCurvePublicKey)
                and isinstance(signer_key.curve, keyagreement.CURVES))):
            # The response is enveloped to the signer: RSA key transport or ECDH.
            raise ScepFailure(FailInfo.BAD_ALG, "the signer key must be RSA or NIST-curve EC")
        if message.signed.content is None:
            raise ScepFailure(FailInfo.BAD_REQUEST, "the pkiMessage has no content")
        # Everything up to here depends only on what an eavesdropper sees as well, and
        # keeps its own answer. From the decryption on, see `Undecryptable`.
        sealed, ra = _read_envelope(message.signed.content, generations.live)
        signer.append(ra)
        if sealed.cipher not in self.endpoint.ciphers:
            raise ScepFailure(FailInfo.BAD_ALG, algorithms.refusal(
                sealed.cipher, "cipher", self.endpoint.label))
        if kind is MessageType.CERT_POLL:
            # Found by transactionID and signer alone: its content is never decrypted,
            # so no CertPoll answer can depend on it (a structure oracle otherwise).
            return handler(message, b""), sealed.cipher
        payload = envelope.open_sealed(sealed, ra.key)
        return handler(message, payload), sealed.cipher

    def _check_time(self, message: PKIMessage) -> None:
        when = signeddata.signing_time(message.signed)
        if when is None:
            return
        skew = dt.timedelta(seconds=self.endpoint.signing_time_skew)
        if abs(self.clock.now() - when) > skew:
            # RFC 8894 §3.2.1.4: badTime, the signingTime is not close to our time.
            raise ScepFailure(FailInfo.BAD_TIME, "signingTime is too far from the server's")

    # -- message types -----------------------------------------------------------------------

    def _pkcs_req(self, message: PKIMessage, payload: bytes) -> _Result:
        """RFC 8894 §3.3.1. Signed by a certificate of this engine (Cisco IOS, sscep
        ``-O``) or by a self-signed certificate of a certified key (certmonger
        ``rekey``), a PKCSReq for a new key is a renewal by that certificate; so is one
        for the same key without a challenge password. Otherwise the signer's key must
        be the CSR's and the challenge password authorises it (docs/scep.md)."""
        csr = _csr(payload)
        if spki_sha256(message.signer.public_key()) != spki_sha256(csr.public_key()):
            # Only a signer that proves a certified key may bring another key's CSR:
            # any other signer could re-wrap a captured envelope and spend its
            # challenge, so it gets the one undecryptable answer, as before.
            renewed = self._certified_signer(message)
            if renewed is None:
                raise Undecryptable("the signer certificate's key is not the CSR's key "
                                    "nor that of a live certificate issued here")
            return self._renew(message, csr, renewed, "PKCSReq")
        # From here on the content is a self-signed CSR for the signer's own key, which
        # only the key's holder can make: answers may say what is wrong with it.
        challenge = _challenge_password(csr)
        if not challenge:
            renewed = self._certified_signer(message)
            if renewed is not None:
                return self._renew(message, csr, renewed, "PKCSReq")
        request = EnrollmentRequest(
            csr=csr, profile=self.endpoint.profile,
            requester=Requester(f"scep:{self.endpoint.label}", "challenge"),
            protocol=PROTOCOL, endpoint=self.endpoint.label,
            transaction_id=message.transaction_id, ca=self.endpoint.ca,
            attributes={"scep_message_type": "PKCSReq"})
        static = self.endpoint.static_sha256
        if not (static and hmac.compare_digest(digest(challenge), static)):
            # The challenge may be one-time or checked remotely: run the profile's rules
            # first, so a CSR the profile refuses does not even reserve it.
            self.door.check(request)
        # A one-time challenge is held for this request and spent only if it is issued
        # or goes pending; any refusal from here on gives it back (challenges.py).
        reservation = Reservation(self._one_time)
        try:
            if not self.door.verify_challenge(ChallengeContext(
                    protocol=PROTOCOL, endpoint=self.endpoint.label, challenge=challenge,
                    csr=csr, settings=settings_for(self.endpoint, reservation),
                    transaction_id=message.transaction_id)):
                # A retry of a transaction whose one-time challenge the first attempt
                # spent gets the first answer; the core checks it is the same key
                # (RFC 8894 §3.2.1.1: a retried request keeps its transactionID).
                existing = self.door.find_transaction(PROTOCOL, self.endpoint.label,
                                                      message.transaction_id)
                if existing is None:
                    raise Unauthorized("the challenge password is not valid")
        except BaseException:
            reservation.release()
            raise
        return self._submit(request, reservation)

    def _renewal_req(self, message: PKIMessage, payload: bytes) -> _Result:
        """RFC 8894 §3.3.1.2: signed with the certificate being renewed. The core's
        renewal rule (`enroll.renewal`) decides: live, this profile's line, same identity,
        no added name; the renewed certificate is marked superseded."""
        csr = _csr(payload)
        record = self.door.lookup(message.signer)
        if record is None:
            raise Unauthorized("RenewalReq must be signed by a certificate issued here")
        return self._renew(message, csr, record, "RenewalReq")

    def _certified_signer(self, message: PKIMessage) -> CertificateRecord | None:
        """The certificate of this engine a request's signature proves: the signer
        certificate itself, or the live one for the signer's key (its CMS signature,
        verified in `_dispatch`, proves the key whatever certificate carries it)."""
        return self.door.lookup(message.signer) \
            or self.door.lookup_key(message.signer.public_key())

    def _renew(self, message: PKIMessage, csr: x509.CertificateSigningRequest,
               record: CertificateRecord, message_type: str) -> _Result:
        """A renewal by `record`, whichever message type carried it."""
        reservation = Reservation(self._one_time)
        if self.endpoint.renewal_challenge and not self.door.verify_challenge(
                ChallengeContext(protocol=PROTOCOL, endpoint=self.endpoint.label,
                                 challenge=_challenge_password(csr), csr=csr,
                                 settings=settings_for(self.endpoint, reservation),
                                 transaction_id=message.transaction_id)):
            raise Unauthorized("this endpoint requires a valid challenge password for "
                               "renewals too")
        request = EnrollmentRequest(
            csr=csr, profile=self.endpoint.profile,
            requester=Requester(f"cert:{record.serial_hex}", "renewal-cert"),
            protocol=PROTOCOL, endpoint=self.endpoint.label,
            # The same client key gives the same transactionID (micromdm derives it from
            # the key), so a renewal transaction is scoped by the certificate it renews.
            transaction_id=_renewal_tid(message.transaction_id, record.serial_hex),
            replaces=record.serial_hex, credential=record.serial_hex,
            renewal_grace=self.endpoint.renewal_grace, ca=self.endpoint.ca,
            attributes={"scep_message_type": message_type})
        return self._submit(request, reservation)

    def _submit(self, request: EnrollmentRequest, reservation: Reservation) -> _Result:
        """Submit, giving a held one-time challenge back if the request is refused."""
        try:
            outcome = self.door.submit(request)
        except BaseException:
            reservation.release()
            raise
        if isinstance(outcome, Rejected):
            reservation.release()
        return self._answer(outcome)

    def _cert_poll(self, message: PKIMessage, payload: bytes) -> _Result:
        """RFC 8894 §3.3.3. The IssuerAndSubject content is not read (see `_dispatch`):
        the transactionID and the signer find and authorise the request."""
        signer_record = self._certified_signer(message)
        candidates = [message.transaction_id]
        if signer_record is not None:
            candidates.insert(0, _renewal_tid(message.transaction_id, signer_record.serial_hex))
        for tid in candidates:
            record = self.door.find_transaction(PROTOCOL, self.endpoint.label, tid)
            if record is not None:
                break
        else:
            raise NotFound("no request with this transactionID")
        same_key = spki_sha256(message.signer.public_key()) == record.key_fingerprint
        renewing = signer_record is not None and record.replaces == signer_record.serial_hex
        if not (same_key or renewing):
            raise Unauthorized("CertPoll must be signed by the requester")
        return self._answer(self.door.status(record.id))

    def _get_cert(self, message: PKIMessage, payload: bytes) -> _Result:
        # Nothing authenticates an IssuerAndSerialNumber: "not found" is the one answer
        # too, or whether the content parsed would show (docs/scep.md). The lookup runs
        # for unreadable content as well, so the time does not show it either.
        parsed = _issuer_and_serial(payload)
        issuer, serial = parsed or (b"", 0)
        record = self.door.certificate(serial)
        if parsed is None or record is None \
                or record.certificate.issuer.public_bytes() != issuer:
            raise Undecryptable("no certificate with this issuer and serial number"
                                if parsed else "the content is not an IssuerAndSerialNumber")
        return _Result(PKIStatus.SUCCESS, signeddata.degenerate([record.certificate]))

    def _get_crl(self, message: PKIMessage, payload: bytes) -> _Result:
        parsed = _issuer_and_serial(payload)
        crl = self.door.crl(parsed[0] if parsed else b"")
        if parsed is None or crl is None:
            raise Undecryptable("no CA with this issuer name"
                                if parsed else "the content is not an IssuerAndSerialNumber")
        return _Result(PKIStatus.SUCCESS, signeddata.degenerate(crls=[crl]))

    def _answer(self, outcome: Outcome) -> _Result:
        if isinstance(outcome, Issued):
            return _Result(PKIStatus.SUCCESS, signeddata.degenerate([outcome.certificate]))
        if isinstance(outcome, Pending):
            return _Result(PKIStatus.PENDING)
        return _Result(PKIStatus.FAILURE, fail_info=FailInfo.BAD_REQUEST,
                       fail_text=outcome.reason)


def _read_envelope(content: bytes, live: tuple[RA, ...]) -> tuple[envelope.Sealed, RA]:
    """The envelope's recipientInfo for one of the live RA generations (by issuer and
    serial number, or key identifier) and that RA. Every generation gets the same
    reading, so which one matched shows only in the CertRep's signer."""
    for ra in live[:-1]:
        try:
            return envelope.read(content, ra.certificate), ra
        except ScepFailure as exc:
            if exc.fail_info is not FailInfo.BAD_MESSAGE_CHECK:
                raise
    return envelope.read(content, live[-1].certificate), live[-1]


def _csr(payload: bytes) -> x509.CertificateSigningRequest:
    """The decrypted content as a self-signed PKCS#10; any failure is `Undecryptable`."""
    try:
        return load_csr(payload)
    except EnrollError as exc:
        raise Undecryptable(f"the content is not a valid PKCS#10 request: {exc.detail}") \
            from exc


def _issuer_and_serial(payload: bytes) -> tuple[bytes, int] | None:
    """GetCert/GetCRL content, or None when it does not parse."""
    try:
        return parse_issuer_and_serial(payload)
    except ScepFailure:
        return None


def _renewal_tid(transaction_id: str, serial_hex: str) -> str:
    return f"{transaction_id}/renew/{serial_hex}"


_STRING_CODECS = {
    12: "utf-8",       # UTF8String
    19: "utf-8",       # PrintableString
    22: "utf-8",       # IA5String
    26: "utf-8",       # VisibleString
    20: "latin-1",     # TeletexString: read as ISO 8859-1, as OpenSSL does
    28: "utf-32-be",   # UniversalString
    30: "utf-16-be",   # BMPString (NDES and the Windows clients write it)
}
"""The string types a challengePassword (RFC 2985 §5.4.1: a DirectoryString, in practice
also IA5String) is written in, and how its bytes decode."""


def _challenge_password(csr: x509.CertificateSigningRequest) -> str:
    try:
        attribute = csr.attributes.get_attribute_for_oid(AttributeOID.CHALLENGE_PASSWORD)
    except x509.AttributeNotFound:
        return ""
    # `cryptography` hands the value's bytes and its ASN.1 tag, not a decoded string.
    codec = _STRING_CODECS.get(attribute._type)  # noqa: SLF001 - no public accessor
    if codec is None:
        raise BadCSR("challengePassword is not a string")
    try:
        return attribute.value.decode(codec)
    except UnicodeDecodeError as exc:
        raise BadCSR("challengePassword is not a valid string") from exc
