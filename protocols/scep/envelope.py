"""CMS EnvelopedData (RFC 5652 §6) with RSA key transport, as SCEP uses it
(RFC 8894 §3.2.2): decrypt what a client enveloped to our RA certificate, envelope a
response to the client's certificate.

Content ciphers: AES-128-CBC, AES-256-CBC, DES-EDE3-CBC and single DES-CBC (the last two
only where an endpoint's ``algorithms`` switch them on). Reading an envelope (`read`) and
opening it (`open_sealed`) are separate: every failure of the second is one answer.
Pure functions, no I/O.
"""

from __future__ import annotations

import hmac
import os
from collections.abc import Iterable
from dataclasses import dataclass

from asn1crypto import cms, parser
from cryptography import x509
from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
from cryptography.hazmat.primitives import padding as sympadding
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from . import der, derreader, keyagreement
from .failinfo import FailInfo, ScepFailure, Undecryptable

DER = serialization.Encoding.DER
CIPHERS: dict[str, tuple[int, int]] = {
    # asn1crypto name: (key bytes, block/IV bytes)
    "aes128_cbc": (16, 16),
    "aes256_cbc": (32, 16),
    "tripledes_3key": (24, 8),
    # Single DES: legacy only. It has no GetCACaps keyword (it is the pre-RFC default),
    # and micromdm's scepclient 2.1 always uses it.
    "des": (8, 8),
}
MAX_RECIPIENTS = 8


def _algorithm(name: str, key: bytes) -> algorithms.AES | TripleDES:
    if name == "des":
        return TripleDES(key * 3)  # K1 = K2 = K3 is single DES
    return TripleDES(key) if name == "tripledes_3key" else algorithms.AES(key)


def _read_general(der: bytes, recipient: x509.Certificate) -> tuple[bytes, str, bytes, bytes]:
    try:
        info = cms.ContentInfo.load(der, strict=True)
        if info["content_type"].native != "enveloped_data":
            raise ScepFailure(FailInfo.BAD_REQUEST, "content is not EnvelopedData")
        ed = info["content"]
        our_issuer, our_serial = recipient.issuer.public_bytes(), recipient.serial_number
        encrypted_key = None
        for ri in list(ed["recipient_infos"])[:MAX_RECIPIENTS]:
            if ri.name != "ktri":
                continue
            rid = ri.chosen["rid"]
            if rid.name == "issuer_and_serial_number":
                match = (rid.chosen["serial_number"].native == our_serial
                         and rid.chosen["issuer"].dump() == our_issuer)
            else:
                match = rid.chosen.native == _key_identifier(recipient)
            if match:
                if ri.chosen["key_encryption_algorithm"]["algorithm"].native != "rsaes_pkcs1v15":
                    raise ScepFailure(FailInfo.BAD_ALG, "key transport must be rsaEncryption")
                encrypted_key = ri.chosen["encrypted_key"].native
                break
        if encrypted_key is None:
            raise ScepFailure(FailInfo.BAD_MESSAGE_CHECK,
                              "the envelope is not addressed to this endpoint")
        eci = ed["encrypted_content_info"]
        alg = eci["content_encryption_algorithm"]
        cipher_name = alg["algorithm"].native
        ciphertext = _encrypted_content(eci)
        iv = alg.encryption_iv if cipher_name in CIPHERS else b""
    except ScepFailure:
        raise
    except (ValueError, TypeError, KeyError) as exc:
        raise ScepFailure(FailInfo.BAD_REQUEST, "malformed EnvelopedData") from exc
    return encrypted_key, cipher_name, iv, ciphertext


_CIPHER_NAMES = {"2.16.840.1.101.3.4.1.2": "aes128_cbc", "2.16.840.1.101.3.4.1.42": "aes256_cbc",
                 "1.2.840.113549.3.7": "tripledes_3key", "1.3.14.3.2.7": "des"}


def _read_fast(data: bytes, recipient: x509.Certificate) -> tuple[bytes, str, bytes, bytes]:
    """(encrypted key, cipher name, IV, ciphertext) of plain-DER EnvelopedData."""
    r = derreader
    info = r.children(r.expect(r.only(data), 0x30).content)
    if len(info) != 2 or r.oid(info[0]) != "1.2.840.113549.1.7.3":
        raise r.NotSimple("not EnvelopedData")
    fields = r.children(r.expect(r.only(r.expect(info[1], 0xA0).content), 0x30).content)
    index = 2 if len(fields) > 1 and fields[1].tag == 0xA0 else 1  # originatorInfo
    if len(fields) < index + 2:
        raise r.NotSimple("short EnvelopedData")
    recipient_infos = r.children(r.expect(fields[index], 0x31).content)[:MAX_RECIPIENTS]
    our_issuer, our_serial = recipient.issuer.public_bytes(), recipient.serial_number
    encrypted_key = None
    for ri in recipient_infos:
        if ri.tag != 0x30:
            continue  # key agreement, KEK, password: not key transport
        parts = r.children(ri.content)
        if len(parts) != 4:
            raise r.NotSimple("unexpected KeyTransRecipientInfo")
        rid = parts[1]
        if rid.tag == 0x30:
            issuer, serial = r.children(rid.content)
            match = issuer.raw == our_issuer and r.integer(serial) == our_serial
        elif rid.tag == 0x80:
            match = rid.content == _key_identifier(recipient)
        else:
            raise r.NotSimple("unexpected RecipientIdentifier")
        if match:
            if r.oid(r.children(r.expect(parts[2], 0x30).content)[0]) != "1.2.840.113549.1.1.1":
                raise ScepFailure(FailInfo.BAD_ALG, "key transport must be rsaEncryption")
            encrypted_key = r.expect(parts[3], 0x04).content
            break
    if encrypted_key is None:
        raise ScepFailure(FailInfo.BAD_MESSAGE_CHECK,
                          "the envelope is not addressed to this endpoint")
    eci = r.children(r.expect(fields[index + 1], 0x30).content)
    if len(eci) != 3:
        raise r.NotSimple("unexpected EncryptedContentInfo")
    alg = r.children(r.expect(eci[1], 0x30).content)
    cipher_oid = r.oid(alg[0])
    cipher_name = _CIPHER_NAMES.get(cipher_oid, cipher_oid)
    iv = r.expect(alg[1], 0x04).content if len(alg) == 2 and cipher_name in CIPHERS else b""
    body = eci[2]
    if body.tag == 0x80:
        ciphertext = body.content
    elif body.tag == 0xA0:  # BER constructed form (Go's pkcs7 and others)
        ciphertext = b"".join(r.expect(s, 0x04).content for s in r.children(body.content))
    else:
        raise r.NotSimple("unexpected encryptedContent")
    return encrypted_key, cipher_name, iv, ciphertext


def _key_identifier(cert: x509.Certificate) -> bytes | None:
    try:
        return cert.extensions.get_extension_for_class(
            x509.SubjectKeyIdentifier).value.digest
    except x509.ExtensionNotFound:
        return None


def _elements(data: bytes) -> list[tuple[int, int, int, bytes]]:
    """(class, method, tag, contents) of each BER element in `data`."""
    result, pointer = [], 0
    while pointer < len(data):
        length = parser.peek(data[pointer:])
        cls, method, tag, _header, contents, _trailer = parser.parse(
            data[pointer:pointer + length])
        result.append((cls, method, tag, contents))
        pointer += length
    return result


def _encrypted_content(eci: cms.EncryptedContentInfo) -> bytes:
    """encryptedContent ([0] IMPLICIT OCTET STRING), accepting the BER constructed
    form (one level of segments) that Go's pkcs7 and others emit."""
    for cls, method, tag, contents in _elements(eci.contents):
        if cls != 2 or tag != 0:  # context-specific [0]
            continue
        if method == 0:
            return bytes(contents)
        segments = []
        for s_cls, s_method, s_tag, s_contents in _elements(contents):
            if s_cls != 0 or s_tag != 4 or s_method != 0:
                raise ValueError("unexpected encryptedContent segment")
            segments.append(s_contents)
        return b"".join(segments)
    raise ValueError("encryptedContent missing")


@dataclass(frozen=True, slots=True)
class Sealed:
    """What an EnvelopedData addressed to us carries, read but not decrypted."""

    encrypted_key: bytes
    cipher: str
    """asn1crypto name (a `CIPHERS` key) or the dotted OID of an unknown cipher."""
    iv: bytes
    ciphertext: bytes


def read(der: bytes, recipient: x509.Certificate) -> Sealed:
    """The key-transport recipientInfo for `recipient` and the encrypted content.

    Nothing is decrypted, so every answer here depends only on what an eavesdropper
    sees too. Raises `ScepFailure`: badRequest if not EnvelopedData, badMessageCheck if
    no recipientInfo names our certificate or the ciphertext has an impossible shape,
    badAlg for key transport other than rsaEncryption."""
    try:
        encrypted_key, cipher_name, iv, ciphertext = _read_fast(der, recipient)
    except (derreader.NotSimple, ValueError, IndexError):
        # BER or an unusual shape: the general parser decides.
        encrypted_key, cipher_name, iv, ciphertext = _read_general(der, recipient)
    if cipher_name in CIPHERS:
        block = CIPHERS[cipher_name][1]
        if not isinstance(ciphertext, bytes) or not ciphertext or len(ciphertext) % block \
                or len(iv) != block:
            raise ScepFailure(FailInfo.BAD_MESSAGE_CHECK, "malformed encrypted content")
    return Sealed(bytes(encrypted_key), cipher_name, bytes(iv), bytes(ciphertext))


# Implicit rejection (RFC 3218 §2.3.2, the Bleichenbacher countermeasure): a key
# transport that does not give a key of the right length is replaced by one derived
# from the encrypted key under this per-process secret, and the content is decrypted
# with it all the same. The same ciphertext always gets the same substitute key.
_REJECTION_SECRET = os.urandom(32)


def _substitute_key(sealed: Sealed, length: int) -> bytes:
    material = sealed.cipher.encode() + b"\0" + sealed.encrypted_key
    return hmac.digest(_REJECTION_SECRET, material, "sha256")[:length]


def open_sealed(sealed: Sealed, key: rsa.RSAPrivateKey) -> bytes:
    """The plaintext of `sealed` (its cipher must be one of `CIPHERS`).

    Raises `Undecryptable` (one failInfo, one text) whatever failed: the RSA key
    transport, the content key's length, the CBC padding. The flow is the same for
    each: a failed key transport goes on with a substitute key (above)."""
    key_len, block = CIPHERS[sealed.cipher]
    substitute = _substitute_key(sealed, key_len)
    try:
        # OpenSSL 3.2+ does implicit rejection itself (a synthetic message instead of
        # an error); older builds raise ValueError.
        cek = key.decrypt(sealed.encrypted_key, padding.PKCS1v15())
    except ValueError:
        cek = b""
    transported = len(cek) == key_len
    if not transported:
        cek = substitute
    decryptor = Cipher(_algorithm(sealed.cipher, cek), modes.CBC(sealed.iv)).decryptor()
    padded = decryptor.update(sealed.ciphertext) + decryptor.finalize()
    unpadder = sympadding.PKCS7(block * 8).unpadder()
    try:
        plaintext: bytes | None = unpadder.update(padded) + unpadder.finalize()
    except ValueError:
        plaintext = None
    if not transported:
        raise Undecryptable("the RSA key transport does not give a content key")
    if plaintext is None:
        raise Undecryptable("the CBC padding is wrong")
    return plaintext


def decrypt(der: bytes, recipient: x509.Certificate, key: rsa.RSAPrivateKey,
            allowed_ciphers: Iterable[str]) -> tuple[bytes, str]:
    """The plaintext of an EnvelopedData addressed to `recipient`, and the cipher name:
    `read`, the cipher checked against `allowed_ciphers` (badAlg), `open_sealed`."""
    sealed = read(der, recipient)
    if sealed.cipher not in CIPHERS or sealed.cipher not in allowed_ciphers:
        raise ScepFailure(FailInfo.BAD_ALG, f"content cipher {sealed.cipher} not allowed")
    return open_sealed(sealed, key), sealed.cipher


CIPHER_OIDS = {"aes128_cbc": "2.16.840.1.101.3.4.1.2", "aes256_cbc": "2.16.840.1.101.3.4.1.42",
               "tripledes_3key": "1.2.840.113549.3.7", "des": "1.3.14.3.2.7"}


def encrypt(content: bytes, recipients: Iterable[x509.Certificate],
            cipher_name: str = "aes128_cbc") -> bytes:
    """EnvelopedData of `content` to each recipient: RSA key transport, or ECDH key
    agreement (RFC 5753) for an EC certificate."""
    recipients = list(recipients)
    ec_recipient = any(isinstance(c.public_key(), ec.EllipticCurvePublicKey)
                       for c in recipients)
    if ec_recipient and CIPHERS[cipher_name][0] < 16:
        cipher_name = "aes128_cbc"  # AES key wrap cannot carry a single-DES key
    key_len, block = CIPHERS[cipher_name]
    cek, iv = os.urandom(key_len), os.urandom(block)
    padder = sympadding.PKCS7(block * 8).padder()
    padded = padder.update(content) + padder.finalize()
    encryptor = Cipher(_algorithm(cipher_name, cek), modes.CBC(iv)).encryptor()
    ciphertext = encryptor.update(padded) + encryptor.finalize()
    infos = []
    for cert in recipients:
        public_key = cert.public_key()
        if isinstance(public_key, ec.EllipticCurvePublicKey) and \
                isinstance(public_key.curve, keyagreement.CURVES):
            infos.append(keyagreement.recipient_info(cert, cek))
            continue
        if not isinstance(public_key, rsa.RSAPublicKey):
            raise ScepFailure(FailInfo.BAD_ALG,
                              "responses are enveloped to RSA or NIST-curve EC keys only")
        infos.append(der.seq(
            der.integer(0),
            der.seq(cert.issuer.public_bytes(), der.integer(cert.serial_number)),
            der.seq(der.oid("1.2.840.113549.1.1.1"), der.NULL),
            der.octets(public_key.encrypt(cek, padding.PKCS1v15()))))
    encrypted_content_info = der.seq(
        der.oid("1.2.840.113549.1.7.1"),
        der.seq(der.oid(CIPHER_OIDS[cipher_name]), der.octets(iv)),
        der.context(0, ciphertext, constructed=False))
    # RFC 5652 §6.1: version 2 once any recipientInfo is not version 0 (KARI is 3).
    enveloped = der.seq(der.integer(2 if ec_recipient else 0), der.set_of(infos),
                        encrypted_content_info)
    return der.seq(der.oid("1.2.840.113549.1.7.3"), der.context(0, enveloped))


def open_with_ec_key(data: bytes, key: ec.EllipticCurvePrivateKey) -> bytes:
    """Client side: the plaintext of an EnvelopedData whose (first) key-agreement
    recipientInfo is for `key`."""
    r = derreader
    info = r.children(r.only(data).content)
    fields = r.children(r.only(info[1].content).content)
    kari = next(ri for ri in r.children(fields[1].content) if ri.tag == 0xA1)
    cek = keyagreement.unwrap(kari.content, key)
    eci = r.children(fields[2].content)
    alg = r.children(eci[1].content)
    name = _CIPHER_NAMES[r.oid(alg[0])]
    decryptor = Cipher(_algorithm(name, cek), modes.CBC(r.octets(alg[1]))).decryptor()
    padded = decryptor.update(eci[2].content) + decryptor.finalize()
    unpadder = sympadding.PKCS7(CIPHERS[name][1] * 8).unpadder()
    return unpadder.update(padded) + unpadder.finalize()
