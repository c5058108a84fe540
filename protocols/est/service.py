"""The EST operations of one endpoint (RFC 7030 §4), independent of HTTP.

Each operation authenticates, builds an `EnrollmentRequest` and calls the core. Every
method here may block (database, signing, KDF): call it from a worker thread.

Idempotency (RFC 7030 §4.2.3: a client told 202 resubmits the same request): the
transaction id is a digest of who asks, the public key and the requested names, so the
core's (protocol, endpoint, transaction id) rule answers a resubmission with the first
request's outcome: the certificate once approved, an error once rejected. A finished
transaction whose certificate has since expired or been revoked is a new request (the
core releases its id).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import AttributeOID

from enroll import refusals, renewal
from enroll.csr import load_csr
from enroll.door import Door, FrontEnd
from enroll.errors import BadCSR, Unauthorized, Unavailable
from enroll.model import (
    NOT_RECOVERABLE,
    CertificateStatus,
    EnrollmentRequest,
    Issued,
    Outcome,
    Pending,
    Requester,
)
from enroll.rate_limits import Limit

from . import csrattrs, keyenvelope, serverkeygen, store, wire
from .auth import Authenticator, CertIdentity, Transport, basic_credentials
from .settings import EndpointSettings

PROTOCOL = "est"


@dataclass(frozen=True, slots=True)
class KeyAndOutcome:
    key: bytes | None
    """The PKCS#8 DER, or the EnvelopedData carrying it when `encrypted`."""
    outcome: Outcome
    encrypted: bool = False


def _names_bytes(csr: x509.CertificateSigningRequest) -> bytes:
    try:
        san = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        return san.public_bytes()
    except x509.ExtensionNotFound:
        return b""
    except ValueError as exc:
        raise BadCSR("CSR extensions could not be parsed") from exc


def transaction_id(kind: str, *parts: bytes) -> str:
    digest = hashlib.sha256(kind.encode())
    for part in parts:
        digest.update(len(part).to_bytes(4, "big"))
        digest.update(part)
    return f"{kind}:{digest.hexdigest()}"


def _spki(csr: x509.CertificateSigningRequest) -> bytes:
    return csr.public_key().public_bytes(serialization.Encoding.DER,
                                         serialization.PublicFormat.SubjectPublicKeyInfo)


def _name_set(names: list[x509.GeneralName]) -> set[tuple[str, str]]:
    return {(type(n).__name__, str(n.value).lower()) for n in names}


def _rdns(name: x509.Name) -> list[tuple[str, str]]:
    return [(a.oid.dotted_string, str(a.value)) for a in name]


class EstService:
    def __init__(self, frontend: FrontEnd, endpoint: EndpointSettings) -> None:
        self.authority: Door = frontend.door
        self.db = frontend.db
        self.clock = frontend.clock
        self.blocking = frontend.blocking
        self.limits = frontend.limits
        self.passphrase = frontend.passphrase
        self.endpoint = endpoint
        self.auth = Authenticator(endpoint, self.authority, frontend.db, frontend.clock)
        profile = self.authority.profile(endpoint.profile)
        self.profile = profile
        self.cacerts_body = wire.certs_only(list(self.authority.chain(endpoint.ca)))
        self.csrattrs_der = csrattrs.build(profile, endpoint.tls_unique == "required")

    # -- authentication -----------------------------------------------------------------

    def authenticate(self, authorization: str, transport: Transport) -> Requester:
        """Basic credentials when sent (they must be right), else the client cert."""
        return self._authenticate(authorization, transport)[0]

    def _authenticate(self, authorization: str,
                      transport: Transport) -> tuple[Requester, dict[str, Any]]:
        """The requester, and how a client certificate binds the request
        (`EnrollmentRequest.credential` / `authorized`): with ``client_cert_scope =
        "identity"`` (the default) a certificate authenticates only its own identity and
        names; with ``"profile"`` anything the endpoint's profile allows."""
        credentials = basic_credentials(authorization)
        if credentials is not None:
            return self._basic(*credentials, transport.source), {}
        if transport.client_cert is not None and "client-cert" in self.endpoint.auth:
            identity = self.auth.certificate(transport.client_cert,
                                             chain=transport.client_chain)
            if self.endpoint.client_cert_scope == "profile":
                return identity.requester, {}
            if identity.record is not None:
                return identity.requester, {"credential": identity.record.serial_hex}
            return identity.requester, {"authorized": renewal.certificate_authorization(
                identity.certificate, "the names of the client certificate")}
        raise Unauthorized("authentication required")

    def _basic(self, user: str, password: str, source: str | None) -> Requester:
        """Basic authentication behind the endpoint's failure limits: a throttled
        address or user name is refused before the password hash runs."""
        rates = self.endpoint.rate_limits
        limits = [Limit("est.auth_failures", f"{self.endpoint.label}|user|{user[:128]}",
                        rates["auth_failures_per_user"])]
        if source is not None:
            limits.append(Limit("est.auth_failures", f"{self.endpoint.label}|addr|{source}",
                                rates["auth_failures_per_address"]))
        self.limits.check(limits, "failed authentications")
        try:
            return self.auth.basic(user, password)
        except Unauthorized:
            self.limits.hit(limits)
            raise

    def check_pop(self, csr: x509.CertificateSigningRequest, transport: Transport) -> None:
        """RFC 7030 §3.5: the CSR's challengePassword holds base64(tls-unique) of this
        TLS connection, binding the request to the authenticated channel."""
        mode = self.endpoint.tls_unique
        if mode == "off":
            return
        try:
            value: bytes | None = csr.attributes.get_attribute_for_oid(
                AttributeOID.CHALLENGE_PASSWORD).value
        except x509.AttributeNotFound:
            value = None
        except ValueError as exc:
            raise BadCSR("CSR attributes could not be parsed") from exc
        if transport.tls_unique is None or value is None:
            if mode == "required":
                raise BadCSR("this endpoint requires tls-unique proof of possession "
                             "(RFC 7030 §3.5) over TLS 1.2 to this server")
            return
        if not hmac.compare_digest(value.strip(), base64.b64encode(transport.tls_unique)):
            raise BadCSR("tls-unique proof of possession does not match this TLS session")

    # -- operations ---------------------------------------------------------------------

    def _request(self, csr: x509.CertificateSigningRequest, requester: Requester, tid: str,
                 kind: str = "simpleenroll", *, recoverable: bool = True,
                 **binding: Any) -> EnrollmentRequest:
        attributes: dict[str, Any] = {"operation": kind}
        if not recoverable:
            attributes[NOT_RECOVERABLE] = True
        return EnrollmentRequest(
            csr=csr, profile=self.endpoint.profile, requester=requester, protocol=PROTOCOL,
            endpoint=self.endpoint.label, transaction_id=tid, ca=self.endpoint.ca,
            attributes=attributes, **binding)

    def simpleenroll(self, authorization: str, transport: Transport, body: bytes) -> Outcome:
        """RFC 7030 §4.2.1."""
        requester, binding = self._authenticate(authorization, transport)
        with refusals.attributed(requester.identity):
            csr = load_csr(wire.decode_base64_body(body))
            self.check_pop(csr, transport)
            tid = transaction_id("enroll", requester.identity.encode(), _spki(csr),
                                 csr.subject.public_bytes(), _names_bytes(csr))
            return self.authority.submit(self._request(csr, requester, tid, **binding))

    def simplereenroll(self, authorization: str, transport: Transport,
                       body: bytes) -> Outcome:
        """RFC 7030 §4.2.2: authorized by the TLS client certificate being renewed; the
        CSR's subject and subjectAltName must be identical to that certificate's."""
        if transport.client_cert is None:
            raise Unauthorized("re-enrollment needs the current certificate as the TLS "
                               "client certificate")
        if basic_credentials(authorization) is not None:
            self.authenticate(authorization, transport)
        identity = self.auth.certificate(transport.client_cert,
                                         grace=self.endpoint.reenroll_grace)
        if identity.record is None:
            raise Unauthorized("only certificates issued here can be re-enrolled")
        requester = Requester(f"cert:{identity.record.serial_hex}", "renewal-cert")
        with refusals.attributed(requester.identity):
            csr = load_csr(wire.decode_base64_body(body))
            self.check_pop(csr, transport)
            self._check_same_names(csr, identity)
            tid = transaction_id("reenroll", identity.record.serial_hex.encode(),
                                 _spki(csr), csr.subject.public_bytes(), _names_bytes(csr))
            serial = identity.record.serial_hex
            return self.authority.submit(self._request(
                csr, requester, tid, "simplereenroll", replaces=serial, credential=serial,
                renewal_grace=self.endpoint.reenroll_grace))

    @staticmethod
    def _check_same_names(csr: x509.CertificateSigningRequest, identity: CertIdentity) -> None:
        cert = identity.certificate
        if _rdns(csr.subject) != _rdns(cert.subject):
            raise BadCSR("re-enrollment must keep the subject of the current certificate "
                         "(RFC 7030 §4.2.2)")
        try:
            have = list(cert.extensions.get_extension_for_class(
                x509.SubjectAlternativeName).value)
        except x509.ExtensionNotFound:
            have = []
        try:
            asked = list(csr.extensions.get_extension_for_class(
                x509.SubjectAlternativeName).value)
        except x509.ExtensionNotFound:
            asked = []
        except ValueError as exc:
            raise BadCSR("CSR extensions could not be parsed") from exc
        if _name_set(asked) != _name_set(have):
            raise BadCSR("re-enrollment must keep the subjectAltName of the current "
                         "certificate (RFC 7030 §4.2.2)")

    def serverkeygen(self, authorization: str, transport: Transport,
                     body: bytes) -> KeyAndOutcome:
        """RFC 7030 §4.4: a key made here, returned with its certificate.

        A server-generated key goes over the wire once, to the requester who asked (the
        same authenticated identity), and never for a certificate that is revoked or
        expired. The same template again (a client polling after 202, RFC 7030 §4.2.3)
        collects a key still waiting for it; once a key was delivered, the same
        template is a new request for a new key pair. Archived keys stay in the archive
        for ``enroll est archive export``."""
        if not self.endpoint.serverkeygen:
            from enroll.errors import NotFound

            raise NotFound("server-side key generation is not enabled on this endpoint")
        requester, binding = self._authenticate(authorization, transport)
        with refusals.attributed(requester.identity):
            return self._serverkeygen(requester, binding, transport, body)

    def _serverkeygen(self, requester: Requester, binding: dict[str, Any],
                      transport: Transport, body: bytes) -> KeyAndOutcome:
        template = load_csr(wire.decode_base64_body(body))
        self.check_pop(template, transport)
        # Settled before anything is generated or stored: a key the client asked for
        # encrypted goes back encrypted or not at all (RFC 7030 §4.4.1).
        recipient = keyenvelope.recipient(template, transport.client_cert,
                                           self.endpoint.key_encryption_keys)
        asked = transaction_id("serverkeygen", requester.identity.encode(), _spki(template),
                               template.subject.public_bytes(), _names_bytes(template))
        with self.db.read() as tx:
            waiting = store.undelivered_keys(tx, self.endpoint.label, asked,
                                             requester.identity)
        for kept in waiting:
            answer = self._collect(kept)
            if answer is not None:
                return self._wrapped(answer, recipient)
        tid = asked
        if self.authority.find_transaction(PROTOCOL, self.endpoint.label, asked) is not None:
            # That request's key was delivered (or can no longer be): a new one.
            tid = transaction_id("next", asked.encode(), secrets.token_bytes(16))
        return self._wrapped(self._generate(template, requester, asked, tid, binding),
                             recipient)

    @staticmethod
    def _wrapped(answer: KeyAndOutcome,
                 recipient: keyenvelope.Recipient | None) -> KeyAndOutcome:
        if answer.key is None or recipient is None:
            return answer
        return KeyAndOutcome(keyenvelope.envelope(answer.key, recipient), answer.outcome,
                             encrypted=True)

    def _generate(self, template: x509.CertificateSigningRequest, requester: Requester,
                  asked: str, tid: str, binding: dict[str, Any]) -> KeyAndOutcome:
        if self.profile.approval == "manual" and self.passphrase is None:
            # The key would have to wait for the officer somewhere; refuse before
            # anything is stored rather than lose it.
            raise Unavailable("server-generated keys cannot wait for approval here "
                              "(no ca_passphrase is configured)")
        key, csr = serverkeygen.new_key_and_csr(self.profile.server_key_type, template)
        der = serverkeygen.pkcs8_der(key)
        # The key is stored only once the core answered (kept while waiting for an
        # approval, archived): if this worker dies while the request is being signed,
        # the key dies with it, and recovery must not certify a lost key. A request
        # queued for approval has its key kept when the officer's approval signs it.
        recoverable = self.profile.approval == "manual"
        outcome = self.authority.submit(self._request(csr, requester, tid, "serverkeygen",
                                                      recoverable=recoverable, **binding))
        keep = isinstance(outcome, Pending) or (isinstance(outcome, Issued)
                                                and self.endpoint.archive_keys)
        if keep:
            # Issued now: archived, and delivered by this very answer.
            serial = outcome.serial_hex if isinstance(outcome, Issued) else None
            now = self.clock.now()
            sealed = serverkeygen.seal_key(der, self.passphrase, outcome.request_id)
            with self.db.write() as tx:
                store.insert_key(tx, request_id=outcome.request_id,
                                 endpoint=self.endpoint.label, serial=serial,
                                 key_type=self.profile.server_key_type, encrypted_key=sealed,
                                 archived=self.endpoint.archive_keys, now=now,
                                 client_request=asked, requester=requester.identity,
                                 delivered_at=now if serial is not None else None)
        return KeyAndOutcome(der if isinstance(outcome, Issued) else None, outcome)

    def _collect(self, kept: store.StoredKey) -> KeyAndOutcome | None:
        """A kept key's answer: still waiting, refused, or the key itself, delivered
        once. None when it can no longer be delivered (someone collected it first, or
        its certificate was revoked or has expired): the caller makes a new key."""
        outcome = self.authority.status(kept.request_id)
        if not isinstance(outcome, Issued):
            return KeyAndOutcome(None, outcome)
        if not self._deliverable(outcome):
            with self.db.write() as tx:  # an archived key stays for the operator
                store.set_key_serial(tx, kept.request_id, outcome.serial_hex)
                store.forget_delivered_key(tx, kept.request_id)
            return None
        der = serverkeygen.open_key(kept.encrypted_key, self.passphrase, kept.request_id)
        with self.db.write() as tx:
            if not store.mark_delivered(tx, kept.request_id, outcome.serial_hex,
                                        self.clock.now()):
                return None
            store.forget_delivered_key(tx, kept.request_id)
        return KeyAndOutcome(der, outcome)

    def _deliverable(self, issued: Issued) -> bool:
        """Is the certificate of a kept key still one to hand its key out with?"""
        if issued.certificate.not_valid_after_utc <= self.clock.now():
            return False
        record = self.authority.certificate(issued.certificate.serial_number)
        return record is not None and record.status is CertificateStatus.VALID
