"""Sealing secrets at rest with the operator's passphrase (CA keys, SCEP RA keys, EST's
server-generated keys).

A sealed blob (format v1) is::

    b"ENRSEAL1" | salt (16) | nonce (12) | AES-256-GCM(data, aad=b"ENRSEAL1" + context)

with the AES key derived by scrypt (N=2^15, r=8, p=1) from the passphrase and the salt.
The `context` names what the blob is for (``localca/ca-key/issuing``); a blob moved to
another row, or opened as something else, does not open.

scrypt is slow on purpose, so a process derives each (passphrase, salt) key once: new
blobs use one random salt per process, and keys for other processes' salts are kept in a
small cache. The derived keys are as secret as the passphrase the configuration already
holds in memory.

`unseal` also reads the format written before v1 by the local CA and the SCEP RA: a
PKCS#8 ``ENCRYPTED PRIVATE KEY`` PEM under the passphrase (which binds no context). It
returns the key as unencrypted PKCS#8 DER, which is what v1 blobs of keys hold.
"""

from __future__ import annotations

import functools
import hashlib
import secrets

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from enroll.config_values import Secret
from enroll.crypto.keys import PrivateKey

MAGIC = b"ENRSEAL1"
_SALT_BYTES = 16
_NONCE_BYTES = 12
_LEGACY_PEM = b"-----BEGIN ENCRYPTED PRIVATE KEY-----"
_PROCESS_SALT = secrets.token_bytes(_SALT_BYTES)


class UnsealError(Exception):
    """The blob does not open: wrong passphrase, wrong context, or damaged."""


@functools.lru_cache(maxsize=16)
def _cipher(passphrase: str, salt: bytes) -> AESGCM:
    key = hashlib.scrypt(passphrase.encode(), salt=salt, n=1 << 15, r=8, p=1, dklen=32,
                         maxmem=64 * 1024 * 1024)
    return AESGCM(key)


def seal(data: bytes, passphrase: Secret, *, context: str) -> bytes:
    """Encrypt and authenticate `data` for storage, bound to `context`."""
    nonce = secrets.token_bytes(_NONCE_BYTES)
    aead = _cipher(passphrase.reveal(), _PROCESS_SALT)
    return MAGIC + _PROCESS_SALT + nonce + aead.encrypt(nonce, data,
                                                        MAGIC + context.encode())


def unseal(blob: bytes, passphrase: Secret, *, context: str) -> bytes:
    """The data `seal` was given for this `context`; raises `UnsealError`."""
    if blob.startswith(_LEGACY_PEM):
        return _unseal_legacy_pem(blob, passphrase)
    if not is_sealed(blob):
        raise UnsealError("not a sealed blob")
    salt = blob[len(MAGIC):len(MAGIC) + _SALT_BYTES]
    nonce = blob[len(MAGIC) + _SALT_BYTES:len(MAGIC) + _SALT_BYTES + _NONCE_BYTES]
    body = blob[len(MAGIC) + _SALT_BYTES + _NONCE_BYTES:]
    try:
        return _cipher(passphrase.reveal(), salt).decrypt(nonce, body,
                                                          MAGIC + context.encode())
    except InvalidTag:
        raise UnsealError("wrong passphrase or context, or a damaged blob") from None


def is_sealed(blob: bytes) -> bool:
    """Is `blob` in the v1 format (as opposed to something written before it)?"""
    return blob.startswith(MAGIC) and len(blob) > len(MAGIC) + _SALT_BYTES + _NONCE_BYTES


def seal_key(key: PrivateKey, passphrase: Secret, *, context: str) -> bytes:
    """`seal` of the key's unencrypted PKCS#8 DER."""
    der = key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    return seal(der, passphrase, context=context)


def unseal_key(blob: bytes, passphrase: Secret, *, context: str) -> PrivateKey:
    """The private key `seal_key` sealed (or a pre-v1 PKCS#8 PEM held); raises
    `UnsealError`."""
    der = unseal(blob, passphrase, context=context)
    try:
        key = serialization.load_der_private_key(der, password=None)
    except (ValueError, TypeError) as exc:
        raise UnsealError("the sealed data is not a private key") from exc
    return key  # type: ignore[return-value]


def _unseal_legacy_pem(blob: bytes, passphrase: Secret) -> bytes:
    try:
        key = serialization.load_pem_private_key(blob, passphrase.reveal().encode())
    except (ValueError, TypeError) as exc:
        raise UnsealError("wrong passphrase, or a damaged key") from exc
    return key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())
