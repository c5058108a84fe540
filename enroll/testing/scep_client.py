"""A minimal SCEP client, transport-agnostic: builds pkiMessages and reads CertReps.

Used by the test suite and `tests/vectors/scep/make_vectors.py`; it is a second,
independent reader of what the server writes (a server and client built from the same
bug agree with each other, so interop is also checked with micromdm's scepclient).
It reuses the SCEP front end's wire modules (`pkimessage`, `envelope`,
`signeddata`): a test-support module may import a protocol, the core may not, and
``enroll serve`` never imports `enroll.testing`. mypy checks `protocols/` under the name
`protocols`, not `enroll.protocols`, so what those imports return is annotated here.
"""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.name import _ASN1Type
from cryptography.x509.oid import AttributeOID, NameOID

from enroll.protocols.scep import envelope, signeddata
from enroll.protocols.scep.pkimessage import (
    CertRep,
    MessageType,
    PKIStatus,
    build_request,
    issuer_and_serial,
    issuer_and_subject,
    parse_certrep,
)

DER = serialization.Encoding.DER


def self_signed(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey, cn: str = "scep-client",
                now: dt.datetime | None = None) -> x509.Certificate:
    """The throw-away certificate a client signs its first request with (RFC 8894 §2.3)."""
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    now = now or dt.datetime.now(dt.UTC)
    return (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1)).sign(key, hashes.SHA256()))


CHALLENGE_STRING_TYPES = {
    "utf8": (_ASN1Type.UTF8String, "utf-8"),
    "printable": (_ASN1Type.PrintableString, "ascii"),
    "bmp": (_ASN1Type.BMPString, "utf-16-be"),
    "teletex": (_ASN1Type.T61String, "latin-1"),
    "universal": (_ASN1Type.UniversalString, "utf-32-be"),
}
"""The string types clients write a challengePassword in (NDES-era clients: BMPString)."""


def csr_with_challenge(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey, cn: str,
                       challenge: str | None, dns: tuple[str, ...] = (),
                       string_type: str = "utf8") -> x509.CertificateSigningRequest:
    """A CSR for `key` with the challengePassword written as `string_type` (a key of
    `CHALLENGE_STRING_TYPES`)."""
    builder = x509.CertificateSigningRequestBuilder().subject_name(
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
    if dns:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName(d) for d in dns]), critical=False)
    if challenge is not None:
        tag, codec = CHALLENGE_STRING_TYPES[string_type]
        builder = builder.add_attribute(AttributeOID.CHALLENGE_PASSWORD,
                                        challenge.encode(codec), _tag=tag)
    return builder.sign(key, hashes.SHA256())


@dataclass
class Reply:
    certrep: CertRep
    certificates: list[x509.Certificate]
    crls: list[bytes]

    @property
    def status(self) -> PKIStatus:
        return self.certrep.status

    @property
    def certificate(self) -> x509.Certificate | None:
        return self.certificates[0] if self.certificates else None


class ScepClient:
    """One device: a key, the certificate it signs with, and the server's RA."""

    def __init__(self, ra: x509.Certificate,
                 key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | None = None,
                 cipher: str = "aes128_cbc", digest: str = "sha256") -> None:
        self.ra = ra
        self.key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey = \
            key or rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.cipher = cipher
        self.digest = digest
        self.signer = self_signed(self.key)

    def pkcs_req(self, csr: x509.CertificateSigningRequest, transaction_id: str | None = None,
                 message_type: MessageType | str = MessageType.PKCS_REQ,
                 now: dt.datetime | None = None) -> tuple[bytes, bytes]:
        """(message, senderNonce) for a PKCSReq (or RenewalReq when signed with an issued
        certificate: set `signer` first)."""
        nonce = os.urandom(16)
        tid = transaction_id or os.urandom(12).hex()
        message = build_request(message_type, csr.public_bytes(DER), [self.ra], self.signer,
                                self.key, tid, nonce, self.cipher, self.digest, now=now)
        return message, nonce

    def cert_poll(self, issuer: x509.Name, subject: x509.Name,
                  transaction_id: str) -> bytes:
        message: bytes = build_request(MessageType.CERT_POLL, issuer_and_subject(issuer, subject),
                                       [self.ra], self.signer, self.key, transaction_id,
                                       cipher=self.cipher, digest=self.digest)
        return message

    def get_cert(self, issuer: x509.Name, serial: int,
                 message_type: MessageType = MessageType.GET_CERT) -> bytes:
        message: bytes = build_request(message_type, issuer_and_serial(issuer, serial),
                                       [self.ra], self.signer, self.key, os.urandom(8).hex(),
                                       cipher=self.cipher, digest=self.digest)
        return message

    def read(self, answer: bytes) -> Reply:
        """Verify a CertRep against the RA and open its envelope."""
        certrep = parse_certrep(answer, self.ra)
        certs: list[x509.Certificate] = []
        crls: list[bytes] = []
        if certrep.status is PKIStatus.SUCCESS and certrep.enveloped:
            if isinstance(self.key, ec.EllipticCurvePrivateKey):
                inner = envelope.open_with_ec_key(certrep.enveloped, self.key)
            else:
                inner, _ = envelope.decrypt(certrep.enveloped, self.signer, self.key,
                                            envelope.CIPHERS)
            certs, crls = signeddata.degenerate_contents(inner)
        return Reply(certrep, certs, crls)
