"""/serverkeygen (RFC 7030 §4.4): the server makes the key pair.

The client's CSR says what the certificate should name (subject and requested
extensions) and proves the client can sign *something*; its public key is not used. We
generate a key of the profile's ``server_key_type``, put the client's subject and
extensions into a CSR signed by that key, and send it through the normal pipeline.

Keys we must keep (a request waiting for approval, whose client comes back for it, or an
endpoint with ``archive_keys = true``) are stored AES-256-GCM encrypted under a key
derived from the CA passphrase, bound to their request id.
"""

from __future__ import annotations

import hashlib
import secrets
import threading

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from enroll.config_values import Secret
from enroll.crypto.keys import PrivateKey, generate_key
from enroll.errors import BadCSR, Unavailable

_KDF_SALT = b"enroll/est/server-generated-keys/v1"


def new_key_and_csr(key_type: str, template: x509.CertificateSigningRequest
                    ) -> tuple[PrivateKey, x509.CertificateSigningRequest]:
    """A fresh key and a CSR carrying `template`'s subject and extensions."""
    key = generate_key(key_type)
    builder = x509.CertificateSigningRequestBuilder().subject_name(template.subject)
    try:
        for ext in template.extensions:
            builder = builder.add_extension(ext.value, critical=ext.critical)
    except (ValueError, TypeError) as exc:
        raise BadCSR("CSR extensions could not be parsed") from exc
    algorithm = None if isinstance(key, ed25519.Ed25519PrivateKey) else hashes.SHA256()
    return key, builder.sign(key, algorithm)


def pkcs8_der(key: PrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


class KeyBox:
    """Encrypts server-generated keys for storage. The AES key is derived once (scrypt)
    from the CA passphrase, lazily, so endpoints that never store a key never pay it."""

    def __init__(self, passphrase: Secret | None) -> None:
        self._passphrase = passphrase
        self._aead: AESGCM | None = None
        self._lock = threading.Lock()

    @property
    def available(self) -> bool:
        return self._passphrase is not None

    def _cipher(self) -> AESGCM:
        if self._passphrase is None:
            raise Unavailable("this server cannot keep server-generated keys "
                              "(no ca_passphrase is configured)")
        with self._lock:
            if self._aead is None:
                key = hashlib.scrypt(self._passphrase.reveal().encode(), salt=_KDF_SALT,
                                     n=1 << 15, r=8, p=1, dklen=32, maxmem=128 * 1024 * 1024)
                self._aead = AESGCM(key)
            return self._aead

    def seal(self, der: bytes, request_id: str) -> bytes:
        nonce = secrets.token_bytes(12)
        return nonce + self._cipher().encrypt(nonce, der, request_id.encode())

    def open(self, blob: bytes, request_id: str) -> bytes:
        return self._cipher().decrypt(blob[:12], blob[12:], request_id.encode())
