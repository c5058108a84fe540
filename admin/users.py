"""Console users: scrypt passwords and TOTP second factors (RFC 6238, via pyotp).

A password hash is ``scrypt$<n>$<r>$<p>$<salt b64>$<hash b64>`` (hashlib.scrypt, 2^15, 8,
1: about 50 ms and 32 MiB a try, so a stolen table is slow to attack). `verify_password`
spends the same scrypt on an unknown user, so timing does not tell which names exist.

A TOTP seed is 160 random bits (RFC 4226's recommended length), sealed with the CA
passphrase under the context ``admin-totp:<username>``; a code is accepted in its 30 s
step or the one either side (clock drift), and once only (`store.use_totp_step`).
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import re
import secrets

import pyotp

from enroll.config_values import Secret
from enroll.crypto import sealing
from enroll.errors import ConfigError
from enroll.store.transaction import Tx

from . import store

N, R, P = 2 ** 15, 8, 1
MAXMEM = 64 * 1024 * 1024
MAX_PASSWORD = 1024
MIN_PASSWORD = 12
ISSUER = "enroll"
_USERNAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,127}")
_DUMMY = "scrypt$32768$8$1$AAAAAAAAAAAAAAAAAAAAAA==$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="


def check_username(name: str) -> str:
    if not _USERNAME.fullmatch(name):
        raise ConfigError("username", "a user name is 1-128 letters, digits, '.', '_', '@' "
                          "or '-', starting with a letter or digit")
    return name


def check_password(password: str) -> str:
    if not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
        raise ConfigError("password", f"a console password is {MIN_PASSWORD} to "
                          f"{MAX_PASSWORD} characters")
    return password


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(password.encode()[:MAX_PASSWORD * 4], salt=salt, n=n, r=r, p=p,
                          maxmem=MAXMEM, dklen=32)


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    derived = _scrypt(password, salt, N, R, P)
    return "$".join(["scrypt", str(N), str(R), str(P), base64.b64encode(salt).decode(),
                     base64.b64encode(derived).decode()])


def verify_password(stored: str | None, password: str) -> bool:
    """Constant work whether or not the user exists (`stored` None)."""
    try:
        scheme, n, r, p, salt, expected = (stored or _DUMMY).split("$")
        if scheme != "scrypt" or int(n) > 2 ** 17:
            return False
        derived = _scrypt(password, base64.b64decode(salt), int(n), int(r), int(p))
        return hmac.compare_digest(derived, base64.b64decode(expected)) and stored is not None
    except (ValueError, TypeError):
        return False


def totp_context(username: str) -> str:
    return f"admin-totp:{username}"


def new_totp_seed() -> str:
    return pyotp.random_base32(32)


def provisioning_uri(seed: str, username: str) -> str:
    """The ``otpauth://`` URI an authenticator app reads from the QR code."""
    return pyotp.TOTP(seed).provisioning_uri(name=username, issuer_name=ISSUER)


def seal_seed(seed: str, username: str, passphrase: Secret) -> bytes:
    return sealing.seal(seed.encode(), passphrase, context=totp_context(username))


def open_seed(user: store.User, passphrase: Secret) -> str | None:
    if user.totp_sealed is None:
        return None
    return sealing.unseal(user.totp_sealed, passphrase, context=totp_context(user.username)
                          ).decode()


def code_step(seed: str, code: str, now: dt.datetime) -> int | None:
    """The time step `code` belongs to (now, one before or one after), or None."""
    code = code.strip().replace(" ", "")
    if not re.fullmatch(r"[0-9]{6}", code):
        return None
    totp = pyotp.TOTP(seed)
    step = int(now.timestamp()) // totp.interval
    found = None
    for candidate in (step - 1, step, step + 1):
        if hmac.compare_digest(totp.generate_otp(candidate), code):
            found = candidate
    return found


def check_code(tx: Tx, user: store.User, passphrase: Secret, code: str,
               now: dt.datetime) -> bool:
    """True once for a valid, unused code of `user`'s enrolled second factor."""
    seed = open_seed(user, passphrase)
    if seed is None:
        return False
    step = code_step(seed, code, now)
    return step is not None and store.use_totp_step(tx, user.username, step)
