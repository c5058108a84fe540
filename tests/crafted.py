"""Hostile PKCS#10 requests, built by hand in DER (asn1crypto) and signed with real keys.

`cryptography`'s CSR builder refuses to make most of these (two SAN extensions, a
subject value that is not UTF-8, an RSA key with e = 1, an EC point off the curve), so
the CertificationRequestInfo is assembled here and signed by a real key; where the key
itself is the point (off-curve, unsupported curve, DSA, X25519) its SubjectPublicKeyInfo
bytes are put in as they are and signed by another key, so whichever check fires first
(key parsing or the signature) is the one under test.

`python tests/crafted.py` (re)writes the vectors in tests/vectors/core/hostile/, which
seed the fuzzers (bench/fuzz.py). Tests import the functions directly.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

from asn1crypto import algos, core
from asn1crypto import keys as akeys
from asn1crypto import x509 as ax509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, padding, rsa, x25519

HOSTILE_DIR = Path(__file__).parent / "vectors" / "core" / "hostile"
SIGNER = ec.generate_private_key(ec.SECP256R1())
"""The key that signs every vector whose own key is not the point (a SCEP test signs
the pkiMessage with it too, so the signer key is the CSR key)."""


def _spki_der(public_key: object) -> bytes:
    return public_key.public_bytes(  # type: ignore[attr-defined, no-any-return]
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def _name(cn_value: core.Asn1Value | None = None, cn: str = "device.example") -> ax509.Name:
    """A Name with one CN; `cn_value` replaces the (UTF8String) value as given."""
    value = cn_value if cn_value is not None else core.UTF8String(cn)
    atv = core.Sequence()
    atv.contents = core.ObjectIdentifier("2.5.4.3").dump() + value.dump()
    rdn = core.SetOf()
    rdn.contents = atv.dump()
    rdns = core.SequenceOf()
    rdns.contents = rdn.dump()
    return ax509.Name.load(rdns.dump())


def _ext(oid: str, value_der: bytes, critical: bool = False) -> bytes:
    parts = core.ObjectIdentifier(oid).dump()
    if critical:
        parts += core.Boolean(True).dump()
    parts += core.OctetString(value_der).dump()
    return b"\x30" + _len(len(parts)) + parts


def _len(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(raw)]) + raw


def _tlv(tag: int, content: bytes) -> bytes:
    return bytes([tag]) + _len(len(content)) + content


def san_der(*dns_names: str) -> bytes:
    return _tlv(0x30, b"".join(_tlv(0x82, n.encode()) for n in dns_names))


def _ext_request(*extensions: bytes) -> bytes:
    """The extensionRequest attribute (PKCS#9) holding the given Extension DERs."""
    exts = _tlv(0x30, b"".join(extensions))
    return _tlv(0x30, core.ObjectIdentifier("1.2.840.113549.1.9.14").dump()
                + _tlv(0x31, exts))


def build(*, spki: bytes | None = None, subject: ax509.Name | None = None,
          attributes: list[bytes] | None = None, key: object = None) -> bytes:
    """DER CertificationRequest: version 0, `subject`, `spki` (default: `key`'s),
    `attributes` (Attribute DERs), signed by `key` (default: a P-256 key)."""
    signer = key if key is not None else SIGNER
    spki = spki if spki is not None else _spki_der(signer.public_key())  # type: ignore[attr-defined]
    subject = subject if subject is not None else _name()
    attrs = _tlv(0xA0, b"".join(attributes or []))
    info = _tlv(0x30, core.Integer(0).dump() + subject.dump() + spki + attrs)
    if isinstance(signer, rsa.RSAPrivateKey):
        signature = signer.sign(info, padding.PKCS1v15(), hashes.SHA256())
        alg = algos.SignedDigestAlgorithm({"algorithm": "sha256_rsa"})
    elif isinstance(signer, ec.EllipticCurvePrivateKey):
        signature = signer.sign(info, ec.ECDSA(hashes.SHA256()))
        alg = algos.SignedDigestAlgorithm({"algorithm": "sha256_ecdsa"})
    else:
        raise TypeError("signer must be RSA or EC")
    return _tlv(0x30, info + alg.dump() + core.BitString.load(
        b"\x03" + _len(len(signature) + 1) + b"\x00" + signature).dump())


# -- the vectors ---------------------------------------------------------------------------

def two_san_extensions() -> bytes:
    """x509.DuplicateExtension when the pipeline reads the extensions."""
    return build(attributes=[_ext_request(_ext("2.5.29.17", san_der("a.example")),
                                          _ext("2.5.29.17", san_der("b.example")))])


def garbage_san() -> bytes:
    """A SAN extension whose value is not a GeneralNames."""
    return build(attributes=[_ext_request(_ext("2.5.29.17", b"\x30\x03\x82\x05a"))])


def garbage_extension_request() -> bytes:
    """An extensionRequest attribute whose value is not Extensions."""
    return build(attributes=[_tlv(0x30, core.ObjectIdentifier("1.2.840.113549.1.9.14").dump()
                                  + _tlv(0x31, b"\x04\x01\x00"))])


def rsa_e1() -> bytes:
    """An RSA key with public exponent 1 (signed by a P-256 key: the key is the point)."""
    n = rsa.generate_private_key(65537, 2048).public_key().public_numbers().n
    spki = akeys.PublicKeyInfo({
        "algorithm": {"algorithm": "rsa", "parameters": core.Null()},
        "public_key": akeys.RSAPublicKey({"modulus": n, "public_exponent": 1})}).dump()
    return build(spki=spki)


def ec_off_curve() -> bytes:
    """A P-256 point that is not on the curve."""
    good = _spki_der(ec.generate_private_key(ec.SECP256R1()).public_key())
    bad = bytearray(good)
    bad[-1] ^= 0x01  # flip a bit of y: (x, y') is off the curve
    return build(spki=bytes(bad))


def ec_secp192r1() -> bytes:
    """A named curve cryptography may not support (secp192r1), made by hand."""
    point = b"\x04" + b"\x11" * 48
    spki = akeys.PublicKeyInfo({
        "algorithm": {"algorithm": "ec",
                      "parameters": akeys.ECDomainParameters("named", "1.2.840.10045.3.1.1")},
        "public_key": point}).dump()
    return build(spki=spki)


def ec_brainpool() -> bytes:
    """A curve enroll does not certify, self-signed: the profile's key rule refuses it."""
    return build(key=ec.generate_private_key(ec.BrainpoolP256R1()))


def ec_unknown_curve() -> bytes:
    point = b"\x04" + b"\x22" * 64
    spki = akeys.PublicKeyInfo({
        "algorithm": {"algorithm": "ec",
                      "parameters": akeys.ECDomainParameters("named", "1.2.3.4.5.6")},
        "public_key": point}).dump()
    return build(spki=spki)


def dsa_key() -> bytes:
    key = dsa.generate_private_key(2048)
    return build(spki=_spki_der(key.public_key()))


def x25519_key() -> bytes:
    return build(spki=_spki_der(x25519.X25519PrivateKey.generate().public_key()))


def unknown_algorithm_key() -> bytes:
    spki = _tlv(0x30, _tlv(0x30, core.ObjectIdentifier("1.2.3.4.5").dump())
                + _tlv(0x03, b"\x00" + b"\x01" * 32))
    return build(spki=spki)


def subject_bad_utf8() -> bytes:
    """A CN UTF8String that is not UTF-8."""
    return build(subject=_name(core.UTF8String.load(b"\x0c\x04\xff\xfe\xc3\x28")))


def subject_bad_bmp() -> bytes:
    """A CN BMPString with an odd number of bytes."""
    return build(subject=_name(core.BMPString.load(b"\x1e\x03\x00a\x00")))


def subject_bad_printable() -> bytes:
    """A PrintableString holding bytes that are not ASCII."""
    return build(subject=_name(core.PrintableString.load(b"\x13\x03\xff\xfe\xfd")))


def subject_empty_rdn() -> bytes:
    rdns = core.SequenceOf()
    rdns.contents = b"\x31\x00"
    return build(subject=ax509.Name.load(rdns.dump()))


def challenge_not_utf8() -> bytes:
    attr = _tlv(0x30, core.ObjectIdentifier("1.2.840.113549.1.9.7").dump()
                + _tlv(0x31, b"\x0c\x02\xff\xfe"))
    return build(attributes=[attr])


def attribute_garbage_value() -> bytes:
    """A challengePassword whose value is not a string at all."""
    attr = _tlv(0x30, core.ObjectIdentifier("1.2.840.113549.1.9.7").dump()
                + _tlv(0x31, b"\x30\x00"))
    return build(attributes=[attr])


def two_challenge_attributes() -> bytes:
    one = _tlv(0x30, core.ObjectIdentifier("1.2.840.113549.1.9.7").dump()
               + _tlv(0x31, core.UTF8String("a").dump()))
    return build(attributes=[one, one])


def rsa_signed_good() -> bytes:
    """A well-formed request (RSA-2048): the control every hostile vector varies."""
    return build(key=rsa.generate_private_key(65537, 2048))


def resigned_certificate(cert_der: bytes, key: ec.EllipticCurvePrivateKey,
                         extra_extensions: list[bytes],
                         replace: dict[str, bytes] | None = None) -> bytes:
    """`cert_der` with the Extension DERs in `extra_extensions` appended to its own
    (two SANs, a second acmeIdentifier…) and the TBSCertificate fields named in
    `replace` (``issuer``, ``subject_public_key_info``…) swapped for the DER given,
    re-signed by `key` (ECDSA-SHA256): certificates cryptography refuses to build."""
    cert = ax509.Certificate.load(cert_der)
    tbs = cert["tbs_certificate"]
    replace = replace or {}
    fields = b"".join(replace.get(name) or tbs[name].dump()
                      for name, _spec, *_ in tbs._fields
                      if name != "extensions" and not isinstance(tbs[name], core.Void))
    own = [e.dump() for e in tbs["extensions"]] \
        if not isinstance(tbs["extensions"], core.Void) else []
    tbs_der = _tlv(0x30, fields + _tlv(0xA3, _tlv(0x30, b"".join(own + extra_extensions))))
    signature = key.sign(tbs_der, ec.ECDSA(hashes.SHA256()))
    return _tlv(0x30, tbs_der + cert["signature_algorithm"].dump()
                + _tlv(0x03, b"\x00" + signature))


def bad_utf8_name() -> bytes:
    """A Name whose CN is a UTF8String that is not UTF-8."""
    return _name(core.UTF8String.load(b"\x0c\x03\xff\xfe\xfd")).dump()


def off_curve_spki() -> bytes:
    good = bytearray(_spki_der(ec.generate_private_key(ec.SECP256R1()).public_key()))
    good[-1] ^= 0x01
    return bytes(good)


def extension(oid: str, value_der: bytes, critical: bool = False) -> bytes:
    """One Extension (RFC 5280 §4.1) as DER."""
    return _ext(oid, value_der, critical)


HOSTILE: dict[str, Callable[[], bytes]] = {
    "two_san_extensions": two_san_extensions,
    "garbage_san": garbage_san,
    "garbage_extension_request": garbage_extension_request,
    "rsa_e1": rsa_e1,
    "ec_off_curve": ec_off_curve,
    "ec_secp192r1": ec_secp192r1,
    "ec_brainpool": ec_brainpool,
    "ec_unknown_curve": ec_unknown_curve,
    "dsa_key": dsa_key,
    "x25519_key": x25519_key,
    "unknown_algorithm_key": unknown_algorithm_key,
    "subject_bad_utf8": subject_bad_utf8,
    "subject_bad_bmp": subject_bad_bmp,
    "subject_bad_printable": subject_bad_printable,
    "subject_empty_rdn": subject_empty_rdn,
    "challenge_not_utf8": challenge_not_utf8,
    "attribute_garbage_value": attribute_garbage_value,
    "two_challenge_attributes": two_challenge_attributes,
}


ATTRIBUTE_ONLY = ("challenge_not_utf8", "attribute_garbage_value", "two_challenge_attributes")
"""Vectors whose only fault is in an attribute a protocol may read (SCEP's
challengePassword): the CSR itself loads, so only the door that reads it refuses."""
REFUSED = {name: make for name, make in HOSTILE.items() if name not in ATTRIBUTE_ONLY}
"""Vectors every door refuses: the loader or the profile's key rule."""
UNLOADABLE = {name: make for name, make in REFUSED.items() if name != "ec_brainpool"}
"""Vectors `load_csr` itself refuses (ec_brainpool loads: the profile refuses its key)."""


def main() -> None:
    HOSTILE_DIR.mkdir(parents=True, exist_ok=True)
    for name, make in HOSTILE.items():
        (HOSTILE_DIR / f"{name}.csr.der").write_bytes(make())
    print(f"wrote {len(HOSTILE)} vectors to {HOSTILE_DIR}", file=sys.stderr)


if __name__ == "__main__":
    main()
