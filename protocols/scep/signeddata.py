"""CMS SignedData (RFC 5652 §5) as SCEP uses it: parse and verify one signer, sign with
SCEP's authenticated attributes, and degenerate certs-only / CRLs-only structures.

Pure functions over bytes and `cryptography` objects: no I/O, no configuration.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from asn1crypto import cms, core
from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from enroll.client_certificates import load_certificate
from enroll.errors import MalformedInput

from . import der, derreader
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
    attributes: Mapping[str, Sequence[bytes]]
    """Signed attributes by dotted OID; each value as DER, still undecoded."""
    signer: x509.Certificate
    digest: str
    signature_algorithm: str
    signed_attributes_der: bytes
    signature: bytes


def value_of(value: bytes, spec: type[core.Asn1Value]) -> Any:
    """The native value of one DER attribute value read as `spec`."""
    return spec.load(value, strict=True).native


def _malformed(detail: str) -> ScepFailure:
    return ScepFailure(FailInfo.BAD_REQUEST, detail)


def parse(der: bytes) -> SignedMessage:
    """Parse a DER ContentInfo holding SignedData. Raises `ScepFailure` (badRequest) on
    anything that is not one well-formed SignedData with one signer and its certificate.
    Does not verify the signature: see `verify`."""
    try:
        return _parse_fast(der)
    except (derreader.NotSimple, ValueError, IndexError):
        pass  # BER or an unusual shape: the general parser decides
    return _parse_general(der)


_SIG_ALGS = {
    "1.2.840.113549.1.1.1": "rsassa_pkcs1v15", "1.2.840.113549.1.1.5": "rsassa_pkcs1v15",
    "1.2.840.113549.1.1.11": "rsassa_pkcs1v15", "1.2.840.113549.1.1.12": "rsassa_pkcs1v15",
    "1.2.840.113549.1.1.13": "rsassa_pkcs1v15", "1.2.840.10045.2.1": "ecdsa",
    "1.2.840.10045.4.1": "ecdsa", "1.2.840.10045.4.3.2": "ecdsa",
    "1.2.840.10045.4.3.3": "ecdsa", "1.2.840.10045.4.3.4": "ecdsa",
}


def _parse_fast(data: bytes) -> SignedMessage:
    r = derreader
    info = r.children(r.expect(r.only(data), 0x30).content)
    if len(info) != 2 or r.oid(info[0]) != OID_SIGNED_DATA:
        raise r.NotSimple("not SignedData")
    fields = r.children(r.expect(r.only(r.expect(info[1], 0xA0).content), 0x30).content)
    if len(fields) < 4:
        raise r.NotSimple("short SignedData")
    encap = r.children(r.expect(fields[2], 0x30).content)
    if not encap or r.oid(encap[0]) != OID_DATA or len(encap) > 2:
        raise r.NotSimple("unexpected encapContentInfo")
    content = r.octets(r.only(r.expect(encap[1], 0xA0).content)) if len(encap) == 2 else None
    certs = [c.raw for c in r.children(fields[3].content)][:MAX_CERTIFICATES] \
        if fields[3].tag == 0xA0 else []
    signer_infos = r.children(r.expect(fields[-1], 0x31).content)
    if len(signer_infos) != 1:
        raise _malformed("expected exactly one signerInfo")
    si = r.children(r.expect(signer_infos[0], 0x30).content)
    if len(si) < 6 or si[3].tag != 0xA0:
        raise r.NotSimple("unexpected SignerInfo")
    signer = _find_signer_der(si[1], certs)
    attrs = r.children(si[3].content)
    if not attrs or len(attrs) > MAX_SIGNED_ATTRIBUTES:
        raise _malformed("signed attributes missing or too many")
    attributes: dict[str, list[bytes]] = {}
    for attr in attrs:
        parts = r.children(r.expect(attr, 0x30).content)
        if len(parts) != 2:
            raise r.NotSimple("bad Attribute")
        values = [v.raw for v in r.children(r.expect(parts[1], 0x31).content)]
        attributes.setdefault(r.oid(parts[0]), []).extend(values)
    digest_oid = r.oid(r.children(r.expect(si[2], 0x30).content)[0])
    digest = next((name for name, o in DIGEST_OIDS.items() if o == digest_oid), digest_oid)
    sig_oid = r.oid(r.children(r.expect(si[4], 0x30).content)[0])
    signature = r.expect(si[5], 0x04).content
    # RFC 5652 §5.4: the signature covers the DER of the attributes as a SET OF.
    return SignedMessage(content, attributes, signer, digest, _SIG_ALGS.get(sig_oid, sig_oid),
                         b"\x31" + si[3].raw[1:], signature)


def _find_signer_der(sid: derreader.TLV, certs: list[bytes]) -> x509.Certificate:
    if sid.tag == 0x30:
        issuer_tlv, serial_tlv = derreader.children(sid.content)
        issuer, serial = issuer_tlv.raw, derreader.integer(serial_tlv)
        for cert in _certificates(certs):
            if cert.serial_number == serial and cert.issuer.public_bytes() == issuer:
                return cert
    elif sid.tag == 0x80:  # [0] subjectKeyIdentifier
        for cert in _certificates(certs):
            try:
                ski = cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
            except x509.ExtensionNotFound:
                continue
            if ski.value.digest == sid.content:
                return cert
    raise ScepFailure(FailInfo.BAD_MESSAGE_CHECK, "the signer's certificate is not included")


def _certificates(certs: list[bytes]) -> Iterator[x509.Certificate]:
    for raw in certs:
        try:
            yield load_certificate(raw, public_key=False)
        except MalformedInput:
            continue  # an extra certificate we cannot read is not the signer


def _parse_general(der: bytes) -> SignedMessage:
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
        attributes: dict[str, list[bytes]] = {}
        for attr in signed_attrs:
            attributes.setdefault(_dotted(attr["type"]), []).extend(
                v.dump() for v in attr["values"])
        raw_attrs = signed_attrs.dump()
        digest = si["digest_algorithm"]["algorithm"].native
        sig_alg = si["signature_algorithm"].signature_algo
        signature = si["signature"].native
        signer = load_certificate(signer_asn1.dump(), public_key=False)
    except ScepFailure:
        raise
    except (ValueError, TypeError, KeyError, IndexError, MalformedInput) as exc:
        raise _malformed("malformed SignedData") from exc
    # RFC 5652 §5.4: the signature covers the DER of the attributes as a SET OF.
    return SignedMessage(content, attributes, signer, str(digest), str(sig_alg),
                         b"\x31" + raw_attrs[1:], bytes(signature))


_DOTTED: dict[bytes, str] = {}


def _dotted(oid: core.ObjectIdentifier) -> str:
    # asn1crypto recomputes the dotted form on every access; attribute types repeat.
    key = oid.contents
    dotted = _DOTTED.get(key)
    if dotted is None:
        dotted = oid.dotted
        if len(_DOTTED) < 1024:
            _DOTTED[key] = dotted
    return dotted


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
    try:
        key = message.signer.public_key()
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise ScepFailure(FailInfo.BAD_ALG, "the signer's key type is not supported") from exc
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


OID_DATA = "1.2.840.113549.1.7.1"
OID_SIGNED_DATA = "1.2.840.113549.1.7.2"
DIGEST_OIDS = {"sha1": "1.3.14.3.2.26", "sha256": "2.16.840.1.101.3.4.2.1",
               "sha384": "2.16.840.1.101.3.4.2.2", "sha512": "2.16.840.1.101.3.4.2.3"}
ECDSA_OIDS = {"sha1": "1.2.840.10045.4.1", "sha256": "1.2.840.10045.4.3.2",
              "sha384": "1.2.840.10045.4.3.3", "sha512": "1.2.840.10045.4.3.4"}
OID_RSA = "1.2.840.113549.1.1.1"


def attribute(oid: str, value_der: bytes) -> bytes:
    """An Attribute (RFC 5652 §5.3) with one DER-encoded value."""
    return der.seq(der.oid(oid), der.set_of([value_der]))


def issuer_and_serial(cert: x509.Certificate) -> bytes:
    return der.seq(cert.issuer.public_bytes(), der.integer(cert.serial_number))


def _utc_time(when: dt.datetime) -> bytes:
    return der.tlv(0x17, when.astimezone(dt.UTC).strftime("%y%m%d%H%M%SZ").encode())


def sign(content: bytes | None, attributes: Sequence[bytes],
         signer: x509.Certificate, key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey,
         digest: str = "sha256", certificates: Sequence[x509.Certificate] = (),
         now: dt.datetime | None = None) -> bytes:
    """A SignedData over `content` (id-data; absent when None) with contentType,
    messageDigest, signingTime and the given (DER) attributes, signed by `key`."""
    algorithm = HASHES[digest]()
    h = hashes.Hash(algorithm)
    h.update(content or b"")
    attrs = [
        attribute("1.2.840.113549.1.9.3", der.oid(OID_DATA)),
        attribute("1.2.840.113549.1.9.4", der.octets(h.finalize())),
        attribute("1.2.840.113549.1.9.5", _utc_time(now or dt.datetime.now(dt.UTC))),
        *attributes,
    ]
    # RFC 5652 §5.4: the signature covers the attributes as a DER SET OF (sorted;
    # verifiers that re-encode, such as Go's pkcs7, rely on it).
    signed_attrs = der.set_of(attrs)
    if isinstance(key, rsa.RSAPrivateKey):
        signature = key.sign(signed_attrs, padding.PKCS1v15(), algorithm)
        sig_alg = der.seq(der.oid(OID_RSA), der.NULL)
    else:
        signature = key.sign(signed_attrs, ec.ECDSA(algorithm))
        sig_alg = der.seq(der.oid(ECDSA_OIDS[digest]))
    digest_alg = der.seq(der.oid(DIGEST_OIDS[digest]))
    signer_info = der.seq(
        der.integer(1), issuer_and_serial(signer), digest_alg,
        b"\xa0" + signed_attrs[1:],  # [0] IMPLICIT SET OF Attribute
        sig_alg, der.octets(signature))
    encap = der.seq(der.oid(OID_DATA), der.context(0, der.octets(content))) \
        if content is not None else der.seq(der.oid(OID_DATA))
    certs = [signer, *certificates]
    signed = der.seq(
        der.integer(1), der.set_of([digest_alg]), encap,
        der.context(0, b"".join(c.public_bytes(DER) for c in certs)),
        der.set_of([signer_info]))
    return der.seq(der.oid(OID_SIGNED_DATA), der.context(0, signed))


def degenerate(certificates: Sequence[x509.Certificate] = (),
               crls: Sequence[bytes] = ()) -> bytes:
    """RFC 8894 §3.4: a certs-only (or CRLs-only) SignedData with no signers.
    Certificates keep the order given (the RA first)."""
    parts = [der.integer(1), der.set_of([]), der.seq(der.oid(OID_DATA))]
    if certificates:
        parts.append(der.context(0, b"".join(c.public_bytes(DER) for c in certificates)))
    if crls:
        parts.append(der.context(1, b"".join(crls)))
    parts.append(der.set_of([]))
    return der.seq(der.oid(OID_SIGNED_DATA), der.context(0, der.seq(*parts)))


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
