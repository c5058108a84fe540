"""OCSP (RFC 6960): the responder for every CA, answering from the store, signed by the
CA backends."""

from __future__ import annotations

import datetime as dt
import hashlib
from typing import TYPE_CHECKING

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp

from enroll.clock import Clock
from enroll.errors import MalformedInput
from enroll.model import CertificateStatus
from enroll.store import queries
from enroll.store.db import Database

if TYPE_CHECKING:
    from enroll.ca_registry import CARegistry

MAX_OCSP_REQUEST = 8 * 1024
OCSP_VALIDITY = dt.timedelta(hours=1)


class OCSPResponder:
    """RFC 6960 responder for every CA: good / revoked / unknown, signed by the CA."""

    def __init__(self, db: Database, cas: CARegistry, clock: Clock) -> None:
        self.db = db
        self.cas = cas
        self.clock = clock
        self._by_key_hash: dict[tuple[str, bytes, bytes], str] = {}
        for name in cas.names():
            cert = cas.get(name).certificate
            spki = _key_bits(cert)
            name_der = cert.subject.public_bytes()
            for alg in ("sha1", "sha256", "sha384", "sha512"):
                self._by_key_hash[(alg, hashlib.new(alg, name_der).digest(),
                                   hashlib.new(alg, spki).digest())] = name

    def respond(self, der: bytes) -> bytes:
        if len(der) > MAX_OCSP_REQUEST:
            raise MalformedInput("OCSP request too large")
        try:
            # Everything the answer reads is decoded here (cryptography parses lazily):
            # a request that does not decode is malformedRequest, never an exception.
            req = ocsp.load_der_ocsp_request(der)
            alg = req.hash_algorithm.name
            key = (alg, req.issuer_name_hash, req.issuer_key_hash)
            serial = req.serial_number
            nonces = [ext.value for ext in req.extensions
                      if isinstance(ext.value, x509.OCSPNonce)]
        except (ValueError, x509.UnsupportedGeneralNameType, Exception):  # noqa: BLE001
            return _malformed()
        if serial < 0 or serial.bit_length() > 160 or len(nonces) > 1:
            # RFC 5280 §4.1.2.2: a positive serial of at most 20 octets; one nonce.
            return _malformed()
        ca_name = self._by_key_hash.get(key)
        if ca_name is None:
            return ocsp.OCSPResponseBuilder.build_unsuccessful(
                ocsp.OCSPResponseStatus.UNAUTHORIZED).public_bytes(serialization.Encoding.DER)
        backend = self.cas.get(ca_name)
        with self.db.read() as tx:
            record = queries.get_certificate(tx, format(serial, "x"))
        now = self.clock.now()
        hash_alg = {"sha1": hashes.SHA1(), "sha256": hashes.SHA256(),  # noqa: S303
                    "sha384": hashes.SHA384(), "sha512": hashes.SHA512()}[alg]
        builder = ocsp.OCSPResponseBuilder()
        if record is None or record.ca != ca_name:
            builder = builder.add_response_by_hash(
                issuer_name_hash=req.issuer_name_hash, issuer_key_hash=req.issuer_key_hash,
                serial_number=serial, algorithm=hash_alg, cert_status=ocsp.OCSPCertStatus.UNKNOWN,
                this_update=now, next_update=now + OCSP_VALIDITY, revocation_time=None,
                revocation_reason=None)
        else:
            revoked = record.status is CertificateStatus.REVOKED
            builder = builder.add_response(
                cert=record.certificate, issuer=backend.certificate, algorithm=hash_alg,
                cert_status=ocsp.OCSPCertStatus.REVOKED if revoked else ocsp.OCSPCertStatus.GOOD,
                this_update=now, next_update=now + OCSP_VALIDITY,
                revocation_time=record.revoked_at if revoked else None,
                revocation_reason=record.revocation_reason if revoked else None)
        for nonce in nonces:
            builder = builder.add_extension(nonce, critical=False)
        return backend.sign_ocsp(builder).public_bytes(serialization.Encoding.DER)


def _malformed() -> bytes:
    return ocsp.OCSPResponseBuilder.build_unsuccessful(
        ocsp.OCSPResponseStatus.MALFORMED_REQUEST).public_bytes(serialization.Encoding.DER)


def _key_bits(cert: x509.Certificate) -> bytes:
    """The subjectPublicKey BIT STRING contents (what issuerKeyHash hashes, RFC 6960)."""
    from asn1crypto import x509 as asn1_x509

    parsed = asn1_x509.Certificate.load(cert.public_bytes(serialization.Encoding.DER))
    return bytes(parsed["tbs_certificate"]["subject_public_key_info"]["public_key"].contents[1:])
