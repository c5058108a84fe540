"""Stored password hashes for EST Basic users, and checking them fast.

Two formats, chosen by where the password comes from:

- ``hmac-sha256$<salt hex>$<digest hex>``: for generated secrets (256 bits of entropy,
  the embedded default's user). A fast keyed hash is enough when guessing is hopeless.
- ``scrypt$<log2 n>$<r>$<p>$<salt hex>$<digest hex>``: for passwords an operator chose.
  Deliberately slow (tens of ms), so a successful check is remembered for a short while
  in `VerifiedCache` rather than paid on every request (PERFORMANCE.md: a slow KDF per
  request caps EST at 10-20 issuances/s).

Every comparison is constant-time; no hash or password is ever logged.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time

from enroll.errors import ConfigError

MAX_PASSWORD_BYTES = 1024
SCRYPT_LOG2_N = 15
SCRYPT_R = 8
SCRYPT_P = 1


def generate() -> str:
    """A fresh password for a generated user (URL-safe, 43 characters)."""
    return secrets.token_urlsafe(32)


def hash_fast(password: str) -> str:
    salt = secrets.token_bytes(16)
    digest = hmac.new(salt, password.encode(), hashlib.sha256).hexdigest()
    return f"hmac-sha256${salt.hex()}${digest}"


def hash_slow(password: str, log2_n: int = SCRYPT_LOG2_N) -> str:
    salt = secrets.token_bytes(16)
    digest = _scrypt(password.encode(), salt, log2_n, SCRYPT_R, SCRYPT_P)
    return f"scrypt${log2_n}${SCRYPT_R}${SCRYPT_P}${salt.hex()}${digest.hex()}"


def _scrypt(password: bytes, salt: bytes, log2_n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(password, salt=salt, n=1 << log2_n, r=r, p=p, dklen=32,
                          maxmem=256 * 1024 * 1024)


def check_hash_format(stored: str, key: str) -> str:
    """Validate a stored hash at start-up; returns it unchanged or raises ConfigError."""
    parts = stored.split("$")
    try:
        if parts[0] == "hmac-sha256" and len(parts) == 3:
            bytes.fromhex(parts[1])
            if len(bytes.fromhex(parts[2])) == 32:
                return stored
        if parts[0] == "scrypt" and len(parts) == 6:
            log2_n, r, p = int(parts[1]), int(parts[2]), int(parts[3])
            bytes.fromhex(parts[4])
            if 10 <= log2_n <= 20 and 1 <= r <= 32 and 1 <= p <= 16 and \
                    len(bytes.fromhex(parts[5])) == 32:
                return stored
    except ValueError:
        pass
    raise ConfigError(key, "expected a hash from `enroll est hash-password` "
                           "(hmac-sha256$… or scrypt$…)")


def verify(password: str, stored: str) -> bool:
    """Does `password` match the stored hash? Constant-time comparison."""
    raw = password.encode()
    if len(raw) > MAX_PASSWORD_BYTES:
        return False
    try:
        return _verify(raw, stored.split("$"))
    except (ValueError, IndexError):
        return False  # a damaged stored hash matches nothing


def _verify(raw: bytes, parts: list[str]) -> bool:
    if parts[0] == "hmac-sha256":
        salt, expected = bytes.fromhex(parts[1]), bytes.fromhex(parts[2])
        return hmac.compare_digest(hmac.new(salt, raw, hashlib.sha256).digest(), expected)
    if parts[0] == "scrypt":
        log2_n, r, p = int(parts[1]), int(parts[2]), int(parts[3])
        salt, expected = bytes.fromhex(parts[4]), bytes.fromhex(parts[5])
        return hmac.compare_digest(_scrypt(raw, salt, log2_n, r, p), expected)
    return False


def is_slow(stored: str) -> bool:
    return stored.startswith("scrypt$")


class VerifiedCache:
    """Recently verified (user, stored hash, SHA-256 of the password), kept `ttl` seconds.

    Only successes are cached, keyed by a digest of the password (never the password), so
    a wrong password always pays the full KDF. Bounded: cleared when it grows past
    `max_entries`. Per process; a second worker verifies once for itself.
    """

    def __init__(self, ttl: float = 60.0, max_entries: int = 10_000) -> None:
        self._ttl = ttl
        self._max = max_entries
        self._entries: dict[bytes, float] = {}
        self._lock = threading.Lock()

    @staticmethod
    def _key(user: str, stored: str, password: str) -> bytes:
        return hashlib.sha256(b"\0".join((user.encode(), stored.encode(),
                                          password.encode()))).digest()

    def check(self, user: str, stored: str, password: str) -> bool:
        """True if verified (from the cache or by the KDF); caches slow successes."""
        if not is_slow(stored):
            return verify(password, stored)
        key = self._key(user, stored, password)
        now = time.monotonic()
        expires = self._entries.get(key)
        if expires is not None and expires > now:
            return True
        if not verify(password, stored):
            return False
        with self._lock:
            if len(self._entries) >= self._max:
                self._entries.clear()
            self._entries[key] = now + self._ttl
        return True
