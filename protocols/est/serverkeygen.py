"""/serverkeygen (RFC 7030 §4.4): the server makes the key pair.

The client's CSR says what the certificate should name (subject and requested
extensions) and proves the client can sign *something*; its public key is not used. We
generate a key of the profile's ``server_key_type``, put the client's subject and
extensions into a CSR signed by that key, and send it through the normal pipeline.

Keys we must keep (a request waiting for approval, whose client comes back for it, or an
endpoint with ``archive_keys = true``) are sealed with the CA passphrase
(`enroll.crypto.sealing`), bound to their request id.
"""

from __future__ import annotations

import functools

from cryptography import x509
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from enroll.config_values import Secret
from enroll.crypto import sealing
from enroll.crypto.keys import PrivateKey, generate_key
from enroll.errors import BadCSR, Unavailable
from enroll.store.transaction import Tx

from . import store

_PRE_V1_SALT = b"enroll/est/server-generated-keys/v1"


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


def seal_key(der: bytes, passphrase: Secret | None, request_id: str) -> bytes:
    """The PKCS#8 `der` sealed for the ``est_keys`` row of `request_id`."""
    return sealing.seal(der, _require(passphrase), context=_context(request_id))


def open_key(blob: bytes, passphrase: Secret | None, request_id: str) -> bytes:
    """The PKCS#8 DER `seal_key` sealed, or a blob written before the shared format."""
    if not sealing.is_sealed(blob):
        return _open_before_v1(blob, _require(passphrase), request_id)
    return sealing.unseal(blob, _require(passphrase), context=_context(request_id))


def _open_for(request_id: str, blob: bytes, passphrase: Secret) -> bytes:
    return open_key(blob, passphrase, request_id)


def _require(passphrase: Secret | None) -> Secret:
    if passphrase is None:
        raise Unavailable("this server cannot keep server-generated keys "
                          "(no ca_passphrase is configured)")
    return passphrase


def _context(request_id: str) -> str:
    return f"est/server-key/{request_id}"


def _open_before_v1(blob: bytes, passphrase: Secret, request_id: str) -> bytes:
    # The format EST wrote before enroll.crypto.sealing: nonce (12) | AES-256-GCM with
    # the request id as associated data, under scrypt of the passphrase and a fixed salt.
    # Same KDF as sealing v1, so the key is derived once per process (sealing.kek).
    aead = sealing.kek(passphrase, _PRE_V1_SALT, sealing.V1_PARAMS)
    try:
        return aead.decrypt(blob[:12], blob[12:], request_id.encode())
    except InvalidTag:
        raise sealing.UnsealError("wrong passphrase or request, or a damaged blob") \
            from None


def reseal(tx: Tx, old: Secret, new: Secret) -> int:
    """Re-seal every kept key from `old` to `new` (``enroll ca rotate-passphrase``);
    keys in the pre-v1 format come out in the shared one."""
    keys = store.key_blobs(tx)
    for request_id, blob in keys:
        fresh = sealing.reseal(blob, old, new, context=_context(request_id),
                               read=functools.partial(_open_for, request_id))
        if fresh != blob and not store.replace_key_blob(tx, request_id, blob, fresh):
            raise sealing.UnsealError(f"{_context(request_id)} changed during the rotation")
    return len(keys)
