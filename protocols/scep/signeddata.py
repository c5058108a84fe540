"""CMS SignedData (RFC 5652 §5) as SCEP uses it: parse and verify one signer, sign with
SCEP's authenticated attributes, and degenerate certs-only / CRLs-only structures.

Pure functions over bytes and `cryptography` objects: no I/O, no configuration.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from asn1crypto import cms, core
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from .failinfo import FailInfo, ScepFailure

DER = serialization.Encoding.DER
HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "sha1": hashes.SHA1, "sha256": hashes.SHA256, "sha384": hashes.SHA384,
    "sha512": hashes.SHA512,
}
MAX_CERTIFICATES = 8
MAX_SIGNED_ATTRIBUTES = 32


@dataclass(frozen=True, slots=True)
class SignedMessage:
    """A parsed SignedData with exactly one signer (SCEP §3.2: one signerInfo)."""

    content: bytes | None
    attributes: Mapping[str, Sequence[core.Any]]
    """Signed attributes by dotted OID; values still undecoded."""
    signer: x509.Certificate
    digest: str
    signature_algorithm: str
    signed_attributes_der: bytes
    signature: bytes


def value_of(value: Any, spec: type[core.Asn1Value]) -> Any:
    """The native value of an attribute value: asn1crypto parses the attributes it
    knows, and leaves the others (SCEP's) as `core.Any`."""
    parsed = value.parse(spec) if isinstance(value, core.Any) else value
    return parsed.native


def _malformed(detail: str) -> ScepFailure:
    return ScepFailure(FailInfo.BAD_REQUEST, detail)


def parse(der: bytes) -> SignedMessage:
    """Parse a DER ContentInfo holding SignedData. Raises `ScepFailure` (badRequest) on
    anything that is not one well-formed SignedData with one signer and its certificate.
    Does not verify the signature: see `verify`."""
    try:
        info = cms.ContentInfo.load(der, strict=True)
        if info["content_type"].native != "signed_data":
            raise _malformed("not a CMS SignedData")
        sd = info["content"]
        signer_infos = sd["signer_infos"]
        if len(signer_infos) != 1:
            raise _malformed("expected exactly one signerInfo")
        si = signer_infos[0]
        eci = sd["encap_content_info"]
        content = eci["content"].native if eci["content"].native is not None else None
        if content is not None and not isinstance(content, bytes):
            content = eci["content"].contents
        certs = [c.chosen for c in sd["certificates"] or []
                 if c.name == "certificate"][:MAX_CERTIFICATES]
        signer_asn1 = _find_signer(si["sid"], certs)
        signed_attrs = si["signed_attrs"]
        if not signed_attrs or len(signed_attrs) > MAX_SIGNED_ATTRIBUTES:
            raise _malformed("signed attributes missing or too many")
        attributes: dict[str, list[core.Any]] = {}
        for attr in signed_attrs:
            attributes.setdefault(attr["type"].dotted, []).extend(list(attr["values"]))
        raw_attrs = signed_attrs.dump()
        digest = si["digest_algorithm"]["algorithm"].native
        sig_alg = si["signature_algorithm"].signature_algo
        signature = si["signature"].native
        signer = x509.load_der_x509_certificate(signer_asn1.dump())
    except ScepFailure:
        raise
    except (ValueError, TypeError, KeyError, IndexError) as exc:
        raise _malformed("malformed SignedData") from exc
    # RFC 5652 §5.4: the signature covers the DER of the attributes as a SET OF.
    return SignedMessage(content, attributes, signer, str(digest), str(sig_alg),
                         b"\x31" + raw_attrs[1:], bytes(signature))


def _find_signer(sid: cms.SignerIdentifier, certs: list[Any]) -> Any:
    for cert in certs:
        if sid.name == "issuer_and_serial_number":
            ias = sid.chosen
            if (cert.serial_number == ias["serial_number"].native
                    and cert.issuer.dump() == ias["issuer"].dump()):
                return cert
        elif sid.name == "subject_key_identifier":
            if cert.key_identifier == sid.chosen.native:
                return cert
    raise ScepFailure(FailInfo.BAD_MESSAGE_CHECK, "the signer's certificate is not included")


def verify(message: SignedMessage, allowed_digests: Iterable[str]) -> None:
    """Check the digest algorithm, messageDigest and the signature (RFC 5652 §5.6).

    Raises `ScepFailure`: badAlg for a digest or signature algorithm not allowed here,
    badMessageCheck when the digest or signature does not match."""
    if message.digest not in allowed_digests or message.digest not in HASHES:
        raise ScepFailure(FailInfo.BAD_ALG, f"digest algorithm {message.digest} not allowed")
    algorithm = HASHES[message.digest]()
    md_values = message.attributes.get("1.2.840.113549.1.9.4", [])
    if len(md_values) != 1:
        raise ScepFailure(FailInfo.BAD_MESSAGE_CHECK, "messageDigest attribute missing")
    try:
        expected = value_of(md_values[0], core.OctetString)
    except (ValueError, TypeError) as exc:
        raise ScepFailure(FailInfo.BAD_MESSAGE_CHECK, "malformed messageDigest") from exc
    h = hashes.Hash(algorithm)
    h.update(message.content or b"")
    if h.finalize() != expected:
        raise ScepFailure(FailInfo.BAD_MESSAGE_CHECK, "messageDigest does not match content")
    key = message.signer.public_key()
    try:
        if isinstance(key, rsa.RSAPublicKey) and message.signature_algorithm in (
                "rsassa_pkcs1v15",):
            key.verify(message.signature, message.signed_attributes_der, padding.PKCS1v15(),
                       algorithm)
        elif isinstance(key, ec.EllipticCurvePublicKey) and message.signature_algorithm == "ecdsa":
            key.verify(message.signature, message.signed_attributes_der, ec.ECDSA(algorithm))
        else:
            raise ScepFailure(FailInfo.BAD_ALG, "signature algorithm not supported")
    except InvalidSignature as exc:
        raise ScepFailure(FailInfo.BAD_MESSAGE_CHECK, "signature does not verify") from exc


def signing_time(message: SignedMessage) -> dt.datetime | None:
    values = message.attributes.get("1.2.840.113549.1.9.5", [])
    if not values:
        return None
    try:
        when = value_of(values[0], cms.Time)
    except ValueError as exc:
        raise ScepFailure(FailInfo.BAD_REQUEST, "malformed signingTime") from exc
    if not isinstance(when, dt.datetime):
        raise ScepFailure(FailInfo.BAD_REQUEST, "malformed signingTime")
    return when if when.tzinfo else when.replace(tzinfo=dt.UTC)


def attribute(oid: str, value: core.Asn1Value) -> cms.CMSAttribute:
    return cms.CMSAttribute({"type": oid, "values": [value]})


def _cert_asn1(cert: x509.Certificate) -> Any:
    from asn1crypto import x509 as ax509

    return ax509.Certificate.load(cert.public_bytes(DER))


def sign(content: bytes | None, attributes: Sequence[cms.CMSAttribute],
         signer: x509.Certificate, key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey,
         digest: str = "sha256", certificates: Sequence[x509.Certificate] = (),
         now: dt.datetime | None = None) -> bytes:
    """A SignedData over `content` (id-data; absent when None) with contentType,
    messageDigest, signingTime and the given attributes, signed by `key`."""
    algorithm = HASHES[digest]()
    h = hashes.Hash(algorithm)
    h.update(content or b"")
    attrs = [
        attribute("1.2.840.113549.1.9.3", cms.ContentType("data")),
        attribute("1.2.840.113549.1.9.4", core.OctetString(h.finalize())),
        attribute("1.2.840.113549.1.9.5", cms.Time(
            {"utc_time": (now or dt.datetime.now(dt.UTC)).replace(microsecond=0)})),
        *attributes,
    ]
    # DER: a SET OF is sorted by encoding; verifiers that re-encode (Go) rely on it.
    attrs.sort(key=lambda a: a.dump())
    signed_attrs = cms.CMSAttributes(attrs)
    to_sign = b"\x31" + signed_attrs.dump()[1:]
    if isinstance(key, rsa.RSAPrivateKey):
        signature = key.sign(to_sign, padding.PKCS1v15(), algorithm)
        sig_alg = "rsassa_pkcs1v15"
    else:
        signature = key.sign(to_sign, ec.ECDSA(algorithm))
        sig_alg = "ecdsa"
    signer_asn1 = _cert_asn1(signer)
    sid = cms.SignerIdentifier({"issuer_and_serial_number": cms.IssuerAndSerialNumber({
        "issuer": signer_asn1.issuer, "serial_number": signer_asn1.serial_number})})
    signer_info = cms.SignerInfo({
        "version": "v1", "sid": sid, "digest_algorithm": {"algorithm": digest},
        "signed_attrs": signed_attrs, "signature_algorithm": {"algorithm": sig_alg},
        "signature": signature,
    })
    certs = [signer_asn1, *(_cert_asn1(c) for c in certificates)]
    signed = cms.SignedData({
        "version": "v1", "digest_algorithms": [{"algorithm": digest}],
        "encap_content_info": {"content_type": "data", "content": content},
        "certificates": certs, "signer_infos": [signer_info],
    })
    return cms.ContentInfo({"content_type": "signed_data", "content": signed}).dump()


def degenerate(certificates: Sequence[x509.Certificate] = (),
               crls: Sequence[bytes] = ()) -> bytes:
    """RFC 8894 §3.4: a certs-only (or CRLs-only) SignedData with no signers."""
    from asn1crypto import crl as acrl

    fields: dict[str, Any] = {
        "version": "v1", "digest_algorithms": [],
        "encap_content_info": {"content_type": "data"}, "signer_infos": [],
    }
    if certificates:
        fields["certificates"] = [_cert_asn1(c) for c in certificates]
    if crls:
        fields["crls"] = [acrl.CertificateList.load(c) for c in crls]
    return cms.ContentInfo({"content_type": "signed_data",
                            "content": cms.SignedData(fields)}).dump()


def degenerate_contents(der: bytes) -> tuple[list[x509.Certificate], list[bytes]]:
    """Certificates and CRLs (DER) of a degenerate SignedData."""
    try:
        info = cms.ContentInfo.load(der, strict=True)
        if info["content_type"].native != "signed_data":
            raise _malformed("not a CMS SignedData")
        sd = info["content"]
        certs = [x509.load_der_x509_certificate(c.chosen.dump())
                 for c in sd["certificates"] or [] if c.name == "certificate"]
        crls = [c.chosen.dump() for c in sd["crls"] or [] if c.name == "crl"]
    except (ValueError, TypeError, KeyError) as exc:
        raise _malformed("malformed degenerate SignedData") from exc
    return certs, crls
