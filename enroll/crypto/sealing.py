"""Sealing secrets at rest with the operator's passphrase (CA keys, SCEP RA keys, EST's
server-generated keys, ACME EAB keys).

A sealed blob (format v2, what `seal` writes) carries its own KDF parameters::

    b"ENRSEAL2" | log2(n) (1) | r (1) | p (1) | salt (16) | nonce (12)
              | AES-256-GCM(data, aad = everything before the nonce + context)

The AES key is a key-encryption key (KEK) derived by scrypt (cryptography's `Scrypt`,
default n=2^15, r=8, p=1: 32 MiB) from the passphrase, the salt and the parameters in
the header; the header is authenticated, so a blob whose parameters were edited does not
open. The `context` names what the blob is for (``localca/ca-key/issuing``); a blob moved
to another row, or opened as something else, does not open.

Cost on the request path: scrypt is slow on purpose, so a process derives each KEK once.
New blobs use one random salt per process (`_PROCESS_SALT`), so a worker that keeps a
server-generated EST key per request pays one scrypt for its first seal and an AES-GCM
encryption (random 96-bit nonce per item) for every other; KEKs for other processes'
salts are kept in a small cache (`_kek`, 64 entries). The callers on a request path are
EST (sealing a kept key per /serverkeygen request, opening it when the client collects
it) and ACME newAccount with EAB (opening the kid's key); each costs one AES-GCM
operation, plus one scrypt the first time a process meets a salt. The KEKs are as secret
as the passphrase the configuration already holds in memory. `enroll ca
rotate-passphrase` re-seals every blob under one salt, so after a rotation a worker
opens everything stored with one derivation (and one more for its own new seals).

`unseal` also reads the older formats, never writes them:

- v1 (``ENRSEAL1`` | salt | nonce | GCM, aad = magic + context): scrypt with the fixed
  parameters n=2^15, r=8, p=1;
- before v1, the local CA and the SCEP RA stored a PKCS#8 ``ENCRYPTED PRIVATE KEY`` PEM
  under the passphrase (PBKDF2-HMAC-SHA256, 2,048 iterations, AES-256-CBC; binds no
  context). It comes back as unencrypted PKCS#8 DER, which is what blobs of keys hold.

Whatever goes wrong (wrong passphrase, wrong context, damage) is one `UnsealError`.
"""

from __future__ import annotations

import functools
import secrets
from collections.abc import Callable
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from enroll.config_values import Secret
from enroll.crypto.keys import PrivateKey

MAGIC = b"ENRSEAL2"
MAGIC_V1 = b"ENRSEAL1"
_SALT_BYTES = 16
_NONCE_BYTES = 12
_PARAM_BYTES = 3
_LEGACY_PEM = b"-----BEGIN ENCRYPTED PRIVATE KEY-----"
_PROCESS_SALT = secrets.token_bytes(_SALT_BYTES)
_MAX_MEMORY = 256 * 1024 * 1024
"""scrypt needs about 128·r·n bytes; a header asking for more is refused, not run."""


class UnsealError(Exception):
    """The blob does not open: wrong passphrase, wrong context, or damaged."""


@dataclass(frozen=True, slots=True)
class ScryptParams:
    log2_n: int
    r: int
    p: int

    def check(self) -> None:
        """Raise `UnsealError` for parameters outside what this module runs."""
        if not (10 <= self.log2_n <= 22 and 1 <= self.r <= 32 and 1 <= self.p <= 16
                and 128 * self.r * (1 << self.log2_n) <= _MAX_MEMORY):
            raise UnsealError("the sealed blob asks for unsupported scrypt parameters")


DEFAULT_PARAMS = ScryptParams(log2_n=15, r=8, p=1)
"""What `seal` uses: 32 MiB and about 0.1 s per derivation (once per process and salt)."""
V1_PARAMS = ScryptParams(log2_n=15, r=8, p=1)


@dataclass(frozen=True, slots=True)
class Header:
    """What a blob says about itself (`inspect`)."""

    version: int
    """2 (current), 1, or 0 for the pre-v1 PKCS#8 PEM (PBKDF2)."""
    kdf: str
    params: ScryptParams | None
    salt: bytes | None


@functools.lru_cache(maxsize=64)
def _kek(passphrase: str, salt: bytes, params: ScryptParams) -> AESGCM:
    kdf = Scrypt(salt=salt, length=32, n=1 << params.log2_n, r=params.r, p=params.p)
    return AESGCM(kdf.derive(passphrase.encode()))


def kek(passphrase: Secret, salt: bytes, params: ScryptParams = DEFAULT_PARAMS) -> AESGCM:
    """The cached AES-256-GCM key scrypt derives from (`passphrase`, `salt`, `params`)
    (for a protocol's own pre-v1 reader that used the same KDF)."""
    params.check()
    return _kek(passphrase.reveal(), salt, params)


def seal(data: bytes, passphrase: Secret, *, context: str,
         params: ScryptParams = DEFAULT_PARAMS) -> bytes:
    """Encrypt and authenticate `data` for storage, bound to `context` (format v2)."""
    header = MAGIC + bytes((params.log2_n, params.r, params.p)) + _PROCESS_SALT
    nonce = secrets.token_bytes(_NONCE_BYTES)
    aead = kek(passphrase, _PROCESS_SALT, params)
    return header + nonce + aead.encrypt(nonce, data, header + context.encode())


def unseal(blob: bytes, passphrase: Secret, *, context: str) -> bytes:
    """The data `seal` was given for this `context` (v2, v1 or a pre-v1 PEM key);
    raises `UnsealError`."""
    if blob.startswith(_LEGACY_PEM):
        return _unseal_legacy_pem(blob, passphrase)
    salt, params, aad, nonce_at = _parse(blob)
    nonce, body = blob[nonce_at:nonce_at + _NONCE_BYTES], blob[nonce_at + _NONCE_BYTES:]
    try:
        return kek(passphrase, salt, params).decrypt(nonce, body, aad + context.encode())
    except InvalidTag:
        raise UnsealError("wrong passphrase or context, or a damaged blob") from None


_V2_SALT = len(MAGIC) + _PARAM_BYTES
_V2_NONCE = _V2_SALT + _SALT_BYTES
_V1_NONCE = len(MAGIC_V1) + _SALT_BYTES


def _parse(blob: bytes) -> tuple[bytes, ScryptParams, bytes, int]:
    """(salt, parameters, associated data prefix, offset of the nonce) of a v2/v1 blob."""
    if blob.startswith(MAGIC) and len(blob) > _V2_NONCE + _NONCE_BYTES:
        params = ScryptParams(*blob[len(MAGIC):_V2_SALT])
        return blob[_V2_SALT:_V2_NONCE], params, blob[:_V2_NONCE], _V2_NONCE
    if blob.startswith(MAGIC_V1) and len(blob) > _V1_NONCE + _NONCE_BYTES:
        return blob[len(MAGIC_V1):_V1_NONCE], V1_PARAMS, MAGIC_V1, _V1_NONCE
    raise UnsealError("not a sealed blob")


def is_sealed(blob: bytes) -> bool:
    """Is `blob` in a shared sealing format (v2 or v1, as opposed to something a
    component wrote before them)?"""
    try:
        _parse(blob)
    except UnsealError:
        return False
    return True


def inspect(blob: bytes) -> Header:
    """The format and KDF parameters `blob` was sealed with (raises `UnsealError` for
    something that is not a sealed blob)."""
    if blob.startswith(_LEGACY_PEM):
        return Header(version=0, kdf="pbkdf2-sha256", params=None, salt=None)
    salt, params, _, _ = _parse(blob)
    return Header(version=2 if blob.startswith(MAGIC) else 1, kdf="scrypt", params=params,
                  salt=salt)


def is_current(blob: bytes) -> bool:
    """Sealed as `seal` seals today (v2 with the default parameters)?"""
    try:
        header = inspect(blob)
    except UnsealError:
        return False
    return header.version == 2 and header.params == DEFAULT_PARAMS


def reseal(blob: bytes, old: Secret, new: Secret, *, context: str,
           read: Callable[[bytes, Secret], bytes] | None = None) -> bytes:
    """`blob` opened with `old` and sealed again with `new` (v2, this process's salt).

    `read(blob, passphrase)` opens a protocol's own older format (default: `unseal`
    for `context`). A blob that already opens with `new` is returned as it is, so a
    rotation can be run again after a straggler was sealed under the old passphrase.
    Raises `UnsealError` naming `context` if it opens with neither."""
    opener = read or (lambda b, p: unseal(b, p, context=context))
    try:
        data = opener(blob, old)
    except UnsealError:
        if is_sealed(blob):
            try:
                unseal(blob, new, context=context)
                return blob
            except UnsealError:
                pass
        raise UnsealError(f"{context} does not open with the current passphrase") from None
    return seal(data, new, context=context)


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
        # The DER is what `seal_key` wrote, authenticated by the AEAD tag: the RSA
        # consistency check (p·q = n and the CRT values; ~25 ms per key, paid by every
        # worker at start-up and by every CLI command) cannot find anything new in it.
        key = serialization.load_der_private_key(der, password=None,
                                                 unsafe_skip_rsa_key_validation=True)
    except (ValueError, TypeError) as exc:
        raise UnsealError("the sealed data is not a private key") from exc
    return key  # type: ignore[return-value]


def _unseal_legacy_pem(blob: bytes, passphrase: Secret) -> bytes:
    # PKCS#8 PBES2 (PBKDF2-HMAC-SHA256, 2,048 iterations): read, never written.
    try:
        key = serialization.load_pem_private_key(blob, passphrase.reveal().encode())
    except (ValueError, TypeError) as exc:
        raise UnsealError("wrong passphrase, or a damaged key") from exc
    return key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())
