"""OCSP (RFC 6960, the RFC 5019 profile): answered from stored, pre-signed responses.

An anonymous request never costs a fresh signature. The signed response per (CA, serial,
CertID hash) is kept in ``ocsp_responses``, shared by every worker, together with the
certificate state it was signed for (good / revoked). A request reads the certificate's
state and the stored response (two primary-key lookups) and serves the stored one while
it says the same state and less than half its validity has passed; otherwise it is
re-signed once (a striped lock per worker keeps concurrent misses to one signature) and
stored. A revocation re-signs right after its transaction (`OCSPResponder.revoked`); as
every answer compares the stored state with the certificate's, a stale "good" is never
served after a revocation commits, whichever worker signed it.

A serial this responder did not issue, or one of another CA, is answered
``unauthorized`` (RFC 6960 §2.3, RFC 5019 §2.2.3): unsigned, so it costs nothing and
stores nothing. Request nonces are ignored (RFC 5019 §4): the stored response is the
answer. thisUpdate is set back by the CA's ``ocsp_backdate`` for clock skew; nextUpdate
is ``ocsp_validity`` after signing.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp

from enroll import metrics
from enroll.clock import Clock
from enroll.config import CASettings
from enroll.errors import MalformedInput
from enroll.store import ocsp_responses as stored
from enroll.store.db import Database

if TYPE_CHECKING:
    from enroll.ca_registry import CARegistry

log = logging.getLogger("enroll.ocsp")
MAX_OCSP_REQUEST = 8 * 1024
DEFAULT_SETTINGS = CASettings(name="", backend="", parent=None, subject="", key_type="",
                              validity_days=1, crl_validity=1, crl_refresh=1, options={})
_HASHES: dict[str, hashes.HashAlgorithm] = {
    "sha1": hashes.SHA1(), "sha256": hashes.SHA256(),  # noqa: S303 - RFC 5019 CertIDs
    "sha384": hashes.SHA384(), "sha512": hashes.SHA512()}
_STRIPES = 64


@dataclass(frozen=True, slots=True)
class OCSPAnswer:
    """A DER OCSPResponse and, for a successful one, its validity (for the HTTP caching
    headers of RFC 5019 §6)."""

    der: bytes
    this_update: dt.datetime | None = None
    next_update: dt.datetime | None = None


class OCSPResponder:
    """RFC 6960 responder for every CA: good / revoked, pre-signed and stored."""

    def __init__(self, db: Database, cas: CARegistry, clock: Clock,
                 settings: Mapping[str, CASettings] | None = None) -> None:
        self.db = db
        self.cas = cas
        self.clock = clock
        self.settings = settings or {}
        self._locks = [threading.Lock() for _ in range(_STRIPES)]
        # (hash name, issuerNameHash, issuerKeyHash) -> CA name; (CA, hash) -> the hashes
        self._by_key_hash: dict[tuple[str, bytes, bytes], str] = {}
        self._issuer_hashes: dict[tuple[str, str], tuple[bytes, bytes]] = {}
        for name in cas.names():
            cert = cas.get(name).certificate
            spki = _key_bits(cert)
            name_der = cert.subject.public_bytes()
            for alg in _HASHES:
                pair = hashlib.new(alg, name_der).digest(), hashlib.new(alg, spki).digest()
                self._by_key_hash[(alg, *pair)] = name
                self._issuer_hashes[(name, alg)] = pair

    def respond(self, der: bytes) -> bytes:
        return self.answer(der).der

    def answer(self, der: bytes) -> OCSPAnswer:
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
            return _unsuccessful(ocsp.OCSPResponseStatus.MALFORMED_REQUEST, "malformed")
        if serial < 0 or serial.bit_length() > 160 or len(nonces) > 1:
            # RFC 5280 §4.1.2.2: a positive serial of at most 20 octets; one nonce.
            return _unsuccessful(ocsp.OCSPResponseStatus.MALFORMED_REQUEST, "malformed")
        ca_name = self._by_key_hash.get(key)
        if ca_name is None:
            return _unsuccessful(ocsp.OCSPResponseStatus.UNAUTHORIZED, "unauthorized")
        return self._answer(ca_name, format(serial, "x"), alg)

    def _answer(self, ca: str, serial_hex: str, alg: str) -> OCSPAnswer:
        with self.db.read() as tx:
            state = stored.certificate_state(tx, serial_hex)
            response = stored.get(tx, ca, serial_hex, alg) if state is not None else None
        if state is None or state.ca != ca:
            return _unsuccessful(ocsp.OCSPResponseStatus.UNAUTHORIZED, "unauthorized")
        if self._fresh(ca, state, response):
            assert response is not None
            metrics.OCSP_RESPONSES.labels("stored").inc()
            return OCSPAnswer(response.der, response.this_update, response.next_update)
        lock = self._locks[hash((ca, serial_hex, alg)) % _STRIPES]
        with lock:
            # Another thread of this worker may have signed it while this one waited.
            with self.db.read() as tx:
                state = stored.certificate_state(tx, serial_hex)
                response = stored.get(tx, ca, serial_hex, alg)
            if state is None or state.ca != ca:  # purged meanwhile
                return _unsuccessful(ocsp.OCSPResponseStatus.UNAUTHORIZED, "unauthorized")
            if not self._fresh(ca, state, response):
                response = self._sign(ca, serial_hex, alg, state)
                metrics.OCSP_RESPONSES.labels("signed").inc()
            else:
                metrics.OCSP_RESPONSES.labels("stored").inc()
        assert response is not None
        return OCSPAnswer(response.der, response.this_update, response.next_update)

    def _fresh(self, ca: str, state: stored.CertificateState,
               response: stored.StoredResponse | None) -> bool:
        """Whether `response` still says `state` and has more than half its validity left."""
        if response is None or response.status != state.status:
            return False
        half = dt.timedelta(seconds=self._settings(ca).ocsp_validity / 2)
        return self.clock.now() < response.next_update - half

    def _settings(self, ca: str) -> CASettings:
        return self.settings.get(ca, DEFAULT_SETTINGS)

    def _sign(self, ca: str, serial_hex: str, alg: str,
              state: stored.CertificateState) -> stored.StoredResponse:
        settings = self._settings(ca)
        now = self.clock.now()
        this_update = now - dt.timedelta(seconds=settings.ocsp_backdate)
        next_update = now + dt.timedelta(seconds=settings.ocsp_validity)
        name_hash, key_hash = self._issuer_hashes[(ca, alg)]
        revoked = state.status == stored.REVOKED
        # No reasonCode for unspecified (RFC 5280 §5.3.1), as on the CRL.
        reason = (x509.ReasonFlags(state.reason) if revoked and state.reason
                  and state.reason != x509.ReasonFlags.unspecified.value else None)
        builder = ocsp.OCSPResponseBuilder().add_response_by_hash(
            issuer_name_hash=name_hash, issuer_key_hash=key_hash,
            serial_number=int(serial_hex, 16), algorithm=_HASHES[alg],
            cert_status=ocsp.OCSPCertStatus.REVOKED if revoked else ocsp.OCSPCertStatus.GOOD,
            this_update=_naive_utc(this_update), next_update=_naive_utc(next_update),
            revocation_time=_naive_utc(state.revoked_at) if revoked and state.revoked_at
            else None,
            revocation_reason=reason)
        der = self.cas.get(ca).sign_ocsp(builder).public_bytes(serialization.Encoding.DER)
        metrics.OCSP_SIGNATURES.labels(ca).inc()
        # Times as the response carries them (whole seconds), for Last-Modified/Expires.
        response = stored.StoredResponse(state.status, this_update.replace(microsecond=0),
                                         next_update.replace(microsecond=0), der)
        try:
            with self.db.write() as tx:
                stored.put(tx, ca, serial_hex, alg, response)
        except Exception:  # the answer is valid without being stored; the next one retries
            log.exception("OCSP: storing the response for %s failed", serial_hex)
        return response

    def revoked(self, ca: str, serial_hex: str) -> None:
        """Re-sign the stored responses of a certificate just revoked (SHA-1 CertIDs,
        RFC 5019's, when none is stored yet), so the next request costs nothing."""
        with self.db.read() as tx:
            algs = stored.hash_algorithms(tx, ca, serial_hex) or ["sha1"]
        for alg in algs:
            if (ca, alg) in self._issuer_hashes:
                self._answer(ca, serial_hex, alg)


def _naive_utc(value: dt.datetime) -> dt.datetime:
    """What the builders store: naive UTC."""
    offset = value.utcoffset()
    return (value - offset if offset else value).replace(tzinfo=None)


def _unsuccessful(status: ocsp.OCSPResponseStatus, label: str) -> OCSPAnswer:
    metrics.OCSP_RESPONSES.labels(label).inc()
    return OCSPAnswer(_UNSUCCESSFUL[status])


_UNSUCCESSFUL = {
    s: ocsp.OCSPResponseBuilder.build_unsuccessful(s).public_bytes(serialization.Encoding.DER)
    for s in (ocsp.OCSPResponseStatus.MALFORMED_REQUEST, ocsp.OCSPResponseStatus.UNAUTHORIZED)}


def _key_bits(cert: x509.Certificate) -> bytes:
    """The subjectPublicKey BIT STRING contents (what issuerKeyHash hashes, RFC 6960)."""
    from asn1crypto import x509 as asn1_x509

    parsed = asn1_x509.Certificate.load(cert.public_bytes(serialization.Encoding.DER))
    return bytes(parsed["tbs_certificate"]["subject_public_key_info"]["public_key"].contents[1:])
