"""Encrypted server-generated keys (RFC 7030 §4.4.1.1, §4.4.1.2, §4.4.2).

A /serverkeygen client that wants its private key protected beyond TLS says so in the
CSR: an ``AsymmetricDecryptKeyIdentifier`` attribute (the subjectKeyIdentifier of a key
it holds) or a ``DecryptKeyIdentifier`` attribute (the identifier of a symmetric key
shared with the server beforehand). The server must then encrypt the key to that key
or refuse: a key asked for encrypted never goes back in clear.

What we send (RFC 7030 §4.4.2 by way of RFC 5958 §4): an ``application/pkcs7-mime;
smime-type=server-generated-key`` part holding a CMS EnvelopedData whose content is a
SignedData whose content (``id-ct-KP-aKeyPackage``) is the AsymmetricKeyPackage with the
one OneAsymmetricKey (the PKCS#8 we would otherwise send). The EnvelopedData has one
recipient and AES-256-CBC content encryption: a KeyTransRecipientInfo naming the
client's certificate by its subjectKeyIdentifier, RSAES-OAEP (SHA-256, MGF1-SHA-256) key
transport; or a KEKRecipientInfo naming the pre-shared key by its identifier, AES key
wrap (RFC 3394) with that key.

The SignedData carries no signerInfo: an EST endpoint has no signing key of its own
(the CA key signs certificates only), and the key's origin is already authenticated by
the TLS server certificate of the very connection it travels on.

Recipients: only a certificate the client proved it holds on this request (the TLS
client certificate, or the one a proven proxy forwarded) whose subjectKeyIdentifier is
the one asked for, and only RSA (key transport); or, for ``DecryptKeyIdentifier``, one
of the endpoint's ``serverkeygen_keys``. Anything else is refused (400), and nothing is
generated or stored before the recipient is settled.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from dataclasses import dataclass

from asn1crypto import cms, core
from cryptography import x509
from cryptography.hazmat.primitives import hashes, keywrap, padding, serialization
from cryptography.hazmat.primitives.asymmetric import padding as asympadding
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from enroll.config_values import Secret
from enroll.errors import BadCSR

DECRYPT_KEY_ID = x509.ObjectIdentifier("1.2.840.113549.1.9.16.2.37")
"""id-aa-decryptKeyID (RFC 4108 §2.2.5): a symmetric key shared beforehand."""
ASYMMETRIC_DECRYPT_KEY_ID = x509.ObjectIdentifier("1.2.840.113549.1.9.16.2.54")
"""id-aa-asymmDecryptKeyID (RFC 7030 §4.4.1.2): the SKI of the client's key."""
KEY_PACKAGE = "2.16.840.1.101.2.1.2.78.5"
"""id-ct-KP-aKeyPackage (RFC 5958 §2)."""
MAX_KEY_ID = 64


@dataclass(frozen=True, slots=True)
class Recipient:
    """Whom the key is encrypted to: a certificate's key or a pre-shared AES key."""

    key_id: bytes
    certificate: x509.Certificate | None = None
    kek: Secret | None = None
    """The AES key-encryption key, hex."""


def _attribute(csr: x509.CertificateSigningRequest, oid: x509.ObjectIdentifier
               ) -> bytes | None:
    try:
        attribute = csr.attributes.get_attribute_for_oid(oid)
    except x509.AttributeNotFound:
        return None
    except ValueError as exc:
        raise BadCSR("CSR attributes could not be parsed") from exc
    return attribute.value


def subject_key_id(cert: x509.Certificate) -> bytes:
    """The certificate's subjectKeyIdentifier, or the RFC 5280 §4.2.1.2 (1) value a
    client computes for a certificate without one."""
    try:
        return cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    except x509.ExtensionNotFound:
        return x509.SubjectKeyIdentifier.from_public_key(cert.public_key()).digest
    except ValueError:  # an unparsable extension: the computed one
        spki = cert.public_key().public_bytes(serialization.Encoding.DER,
                                              serialization.PublicFormat.SubjectPublicKeyInfo)
        return hashlib.sha1(spki).digest()  # noqa: S324 - RFC 5280 key identifier


def recipient(csr: x509.CertificateSigningRequest, client_cert: x509.Certificate | None,
              keks: Mapping[bytes, Secret] | None = None) -> Recipient | None:
    """Whom to encrypt the generated key to, None when the client did not ask for
    encryption. `keks`: the endpoint's pre-shared keys by identifier. Raises `BadCSR`
    (400) when it asked for encryption we cannot do."""
    symmetric = _attribute(csr, DECRYPT_KEY_ID)
    asymmetric = _attribute(csr, ASYMMETRIC_DECRYPT_KEY_ID)
    if symmetric is not None and asymmetric is not None:
        raise BadCSR("the request carries both DecryptKeyIdentifier and "
                     "AsymmetricDecryptKeyIdentifier; send one")
    if symmetric is not None:
        kek = (keks or {}).get(symmetric)
        if kek is None:
            raise BadCSR("DecryptKeyIdentifier (RFC 7030 §4.4.1.1) names no key "
                         "configured on this endpoint (serverkeygen_keys); a key asked "
                         "for encrypted is never sent in clear")
        return Recipient(symmetric, kek=kek)
    if asymmetric is None:
        return None
    if not asymmetric or len(asymmetric) > MAX_KEY_ID:
        raise BadCSR("AsymmetricDecryptKeyIdentifier must be a key identifier of 1 to "
                     f"{MAX_KEY_ID} octets")
    if client_cert is None or subject_key_id(client_cert) != asymmetric:
        raise BadCSR("AsymmetricDecryptKeyIdentifier (RFC 7030 §4.4.1.2) names no key "
                     "known here: it must be the subjectKeyIdentifier of the TLS client "
                     "certificate of this request")
    if not isinstance(client_cert.public_key(), rsa.RSAPublicKey):
        raise BadCSR("the key named by AsymmetricDecryptKeyIdentifier must be RSA "
                     "(key transport); other keys are not supported")
    return Recipient(asymmetric, certificate=client_cert)


def _recipient_info(to: Recipient, cek: bytes) -> cms.RecipientInfo:
    if to.kek is not None:
        kek = bytes.fromhex(to.kek.reveal())
        return cms.RecipientInfo({"kekri": cms.KEKRecipientInfo({
            "version": "v4",
            "kekid": {"key_identifier": to.key_id},
            "key_encryption_algorithm": {"algorithm": f"aes{len(kek) * 8}_wrap"},
            "encrypted_key": keywrap.aes_key_wrap(kek, cek),
        })})
    assert to.certificate is not None  # noqa: S101 - one or the other, `recipient` says
    public_key = to.certificate.public_key()
    assert isinstance(public_key, rsa.RSAPublicKey)  # noqa: S101 - `recipient` checked
    encrypted_key = public_key.encrypt(cek, asympadding.OAEP(
        asympadding.MGF1(hashes.SHA256()), hashes.SHA256(), None))
    oaep = {"algorithm": "rsaes_oaep", "parameters": {
        "hash_algorithm": {"algorithm": "sha256"},
        "mask_gen_algorithm": {"algorithm": "mgf1", "parameters": {"algorithm": "sha256"}},
    }}
    return cms.RecipientInfo({"ktri": cms.KeyTransRecipientInfo({
        "version": "v2",  # RFC 5652 §6.2.1: v2 with a subjectKeyIdentifier rid
        "rid": cms.RecipientIdentifier({"subject_key_identifier": to.key_id}),
        "key_encryption_algorithm": oaep,
        "encrypted_key": encrypted_key,
    })})


class _KeyPackage(core.SequenceOf):  # type: ignore[misc]
    _child_spec = core.Any


def envelope(pkcs8_der: bytes, to: Recipient) -> bytes:
    """DER of the ContentInfo (EnvelopedData) carrying `pkcs8_der` to `to`."""
    package = _KeyPackage([core.Any.load(pkcs8_der)]).dump()
    signed = cms.ContentInfo({"content_type": "signed_data", "content": cms.SignedData({
        "version": "v3",
        "digest_algorithms": [],
        "encap_content_info": {"content_type": KEY_PACKAGE,
                               "content": core.ParsableOctetString(package)},
        "signer_infos": [],
    })}).dump()
    cek, iv = os.urandom(32), os.urandom(16)
    padder = padding.PKCS7(128).padder()
    encryptor = Cipher(algorithms.AES(cek), modes.CBC(iv)).encryptor()
    ciphertext = encryptor.update(padder.update(signed) + padder.finalize()) + \
        encryptor.finalize()
    enveloped = cms.EnvelopedData({
        "version": "v2",  # RFC 5652 §6.1: a recipientInfo of a version other than 0
        "recipient_infos": [_recipient_info(to, cek)],
        "encrypted_content_info": {
            "content_type": "signed_data",
            "content_encryption_algorithm": {"algorithm": "aes256_cbc", "parameters": iv},
            "encrypted_content": ciphertext,
        },
    })
    return bytes(cms.ContentInfo({"content_type": "enveloped_data",
                                  "content": enveloped}).dump())
