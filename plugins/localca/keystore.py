"""CA private keys at rest: PKCS#8 encrypted with the operator's passphrase.

The clear key exists only in memory. A wrong passphrase fails start-up with a clear
message rather than at the first signature.
"""

from __future__ import annotations

from cryptography.hazmat.primitives import serialization

from enroll.config_values import Secret
from enroll.crypto.keys import PrivateKey
from enroll.errors import ConfigError

MISSING = ("CA private keys are encrypted at rest: set ca_passphrase_file in the config or "
           "ENROLL_CA_PASSPHRASE")


def seal(key: PrivateKey, passphrase: Secret | None) -> bytes:
    if passphrase is None:
        raise ConfigError("ca_passphrase", MISSING)
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(passphrase.reveal().encode()))


def unseal(blob: bytes, passphrase: Secret | None, ca: str) -> PrivateKey:
    if passphrase is None:
        raise ConfigError("ca_passphrase", MISSING)
    try:
        key = serialization.load_pem_private_key(blob, passphrase.reveal().encode())
    except (ValueError, TypeError) as exc:
        raise ConfigError("ca_passphrase",
                          f"cannot decrypt the key of CA {ca!r}: wrong passphrase?") from exc
    return key  # type: ignore[return-value]
