"""ECDH key agreement for CMS (RFC 5753 §3.1): how a CertRep reaches a client whose
certificate holds an EC key, which cannot receive RSA key transport.

Ephemeral-static ECDH (dhSinglePass-stdDH-sha256kdf-scheme), the ANSI X9.63 KDF with
SHA-256, and AES-128 key wrap (RFC 3394) for the content-encryption key.
"""

from __future__ import annotations

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.kdf.x963kdf import X963KDF
from cryptography.hazmat.primitives.keywrap import aes_key_unwrap, aes_key_wrap

from . import der, derreader

OID_EC_PUBLIC_KEY = "1.2.840.10045.2.1"
OID_ECDH_SHA256_KDF = "1.3.132.1.11.1"  # dhSinglePass-stdDH-sha256kdf-scheme
OID_AES128_WRAP = "2.16.840.1.101.3.4.1.5"
KEK_BYTES = 16
CURVES = (ec.SECP256R1, ec.SECP384R1, ec.SECP521R1)


def _kek(shared_secret: bytes) -> bytes:
    # RFC 5753 §7.2: ECC-CMS-SharedInfo with the wrap algorithm and the KEK size in bits.
    shared_info = der.seq(der.seq(der.oid(OID_AES128_WRAP)),
                          der.context(2, der.octets((KEK_BYTES * 8).to_bytes(4, "big"))))
    return X963KDF(algorithm=hashes.SHA256(), length=KEK_BYTES,
                   sharedinfo=shared_info).derive(shared_secret)


def _key_encryption_algorithm() -> bytes:
    return der.seq(der.oid(OID_ECDH_SHA256_KDF), der.seq(der.oid(OID_AES128_WRAP)))


def recipient_info(cert: x509.Certificate, cek: bytes) -> bytes:
    """A KeyAgreeRecipientInfo ([1]) carrying `cek` to the holder of `cert`'s EC key."""
    public_key = cert.public_key()
    assert isinstance(public_key, ec.EllipticCurvePublicKey)
    ephemeral = ec.generate_private_key(public_key.curve)
    kek = _kek(ephemeral.exchange(ec.ECDH(), public_key))
    point = ephemeral.public_key().public_bytes(serialization.Encoding.X962,
                                                serialization.PublicFormat.UncompressedPoint)
    originator_key = der.context(1, der.seq(der.oid(OID_EC_PUBLIC_KEY)) +
                                 der.tlv(0x03, b"\x00" + point))
    recipient_encrypted_key = der.seq(
        der.seq(cert.issuer.public_bytes(), der.integer(cert.serial_number)),
        der.octets(aes_key_wrap(kek, cek)))
    return der.context(1, der.integer(3) + der.context(0, originator_key) +
                       _key_encryption_algorithm() + der.seq(recipient_encrypted_key))


def unwrap(kari_content: bytes, key: ec.EllipticCurvePrivateKey) -> bytes:
    """The content-encryption key from a KeyAgreeRecipientInfo's content (client side)."""
    r = derreader
    parts = r.children(kari_content)
    if r.integer(parts[0]) != 3 or parts[1].tag != 0xA0:
        raise r.NotSimple("unexpected KeyAgreeRecipientInfo")
    originator = r.only(parts[1].content)
    algorithm, bitstring = r.children(r.expect(originator, 0xA1).content)
    point = r.expect(bitstring, 0x03).content[1:]
    if r.oid(r.children(algorithm.content)[0]) != OID_EC_PUBLIC_KEY:
        raise r.NotSimple("originator key is not EC")
    index = 3 if parts[2].tag == 0xA1 else 2  # optional ukm
    if parts[index].raw != _key_encryption_algorithm():
        raise r.NotSimple("unsupported key agreement algorithm")
    encrypted = r.children(r.children(parts[index + 1].content)[0].content)[1]
    ephemeral = ec.EllipticCurvePublicKey.from_encoded_point(key.curve, point)
    return aes_key_unwrap(_kek(key.exchange(ec.ECDH(), ephemeral)), r.octets(encrypted))
