"""External Account Binding (RFC 8555 §7.3.4).

An EAB key is ``(kid, HMAC key)``. `create` makes a random 32-byte HMAC key, hands it to
the operator once, and stores it sealed under the CA passphrase like a CA key
(`enroll.crypto.sealing`, context ``acme/eab-key/<kid>``): reading the database is not
enough to use it. Keys made before that (``hmac_key`` NULL) are still derived as
HMAC-SHA256(the ``eab`` secret in ``acme_secrets``, kid) when used, until ``enroll ca
rotate-passphrase`` seals them as well (`reseal`). A key binds one account once
(conditional UPDATE in `store.bind_eab_key`)."""

from __future__ import annotations

import datetime as dt
import fnmatch
import hashlib
import hmac
import logging
import secrets
from typing import Any

from enroll.config_values import Secret
from enroll.crypto import sealing
from enroll.errors import ConfigError
from enroll.store.transaction import Tx

from . import store
from .endpoint import AcmeEndpoint
from .jws import (
    b64d,
    b64e,
    canonical_thumbprint,
    load_json,
    parse,
    thumbprint,
    unauthorized_eab,
    verify_hmac,
)
from .problems import AcmeProblem, malformed

log = logging.getLogger("enroll.acme")
KEY_BYTES = 32
LEGACY_SECRET = "eab"  # noqa: S105 - the name of a row, not a secret
"""The ``acme_secrets`` row keys made before they were sealed are derived from."""


def derive_key(master: bytes, kid: str) -> bytes:
    """The HMAC key of a kid made before keys were sealed."""
    return hmac.new(master, b"acme-eab:" + kid.encode(), hashlib.sha256).digest()


def new_kid() -> str:
    return "kid-" + secrets.token_urlsafe(12)


def context(kid: str) -> str:
    return f"acme/eab-key/{kid}"


def _require(passphrase: Secret | None) -> Secret:
    if passphrase is None:
        raise ConfigError("ca_passphrase", "EAB keys are sealed with the CA passphrase: set "
                          "ca_passphrase_file in the config or ENROLL_CA_PASSPHRASE")
    return passphrase


def create(tx: Tx, endpoint: str, allow: list[str] | None, passphrase: Secret | None,
           now: dt.datetime, identity: list[str] | None = None) -> tuple[str, str]:
    """A new key for `endpoint`, stored sealed; returns (kid, the HMAC key base64url),
    the only time the key is shown. `identity`: patterns of the identities whose
    certificates, from any door, the account it binds may replace (`identity_matches`)."""
    kid, key = new_kid(), secrets.token_bytes(KEY_BYTES)
    store.add_eab_key(tx, kid, endpoint, allow, now,
                      sealing.seal(key, _require(passphrase), context=context(kid)),
                      identity=identity)
    return kid, b64e(key)


def revoke(tx: Tx, kid: str) -> dict[str, Any] | None:
    """End a key (the admin API): it binds no account any more, and the account it
    bound, if any, is deactivated (RFC 8555 §7.3.6: its key authorizes nothing more).
    Returns the key's row as it was, or None if there is no such key."""
    row = store.get_eab_key(tx, kid)
    if row is None:
        return None
    store.delete_eab_key(tx, kid)
    if row["account_id"] is not None:
        store.update_account(tx, row["account_id"], status="deactivated")
    row.pop("hmac_key", None)
    return row


MAX_IDENTITY_PATTERN = 600


def check_identity_patterns(patterns: list[str], key: str) -> None:
    """An identity pattern is ``kind:…`` as identities are stored (``san.dns:*.corp.example``,
    ``subject.CN:printer-*``), fnmatch-style, bounded."""
    for pattern in patterns:
        if not 2 < len(pattern) <= MAX_IDENTITY_PATTERN or ":" not in pattern.strip(":"):
            raise ConfigError(key, f"not an identity pattern: {pattern[:64]!r} (expected "
                              "kind:value, e.g. 'san.dns:*.corp.example')")


def identity_matches(patterns: list[str] | None, identity: str | None) -> bool:
    """Whether a certificate's stored identity matches one of the key's patterns
    (fnmatch, case-insensitive: identities are DNS-like names)."""
    if not patterns or not identity:
        return False
    folded = identity.lower()
    return any(fnmatch.fnmatchcase(folded, p.lower()) for p in patterns)


def reseal(tx: Tx, old: Secret, new: Secret) -> int:
    """Re-seal every EAB key from `old` to `new`; keys made before they were sealed are
    derived one last time and sealed (rotation is their migration), and the secret they
    were derived from is deleted. Returns the count."""
    keys = store.eab_key_blobs(tx)
    master = store.get_secret(tx, LEGACY_SECRET) if any(b is None for _, b in keys) else None
    for kid, blob in keys:
        if blob is None:
            if master is None:
                raise sealing.UnsealError(f"{context(kid)} has no sealed key and the "
                                          "database secret it was derived from is gone")
            fresh = sealing.seal(derive_key(master, kid), new, context=context(kid))
        else:
            fresh = sealing.reseal(blob, old, new, context=context(kid))
        if fresh != blob and not store.replace_eab_key_blob(tx, kid, blob, fresh):
            raise sealing.UnsealError(f"{context(kid)} changed during the rotation")
    # No key is derived from it any more: the database no longer holds what made them.
    store.delete_secret(tx, LEGACY_SECRET)
    return len(keys)


def _hmac_key(ep: AcmeEndpoint, conn: Tx, row: dict[str, Any]) -> bytes | None:
    blob = row["hmac_key"]
    if blob is None:
        # A key made before keys were sealed; the secret is only read, never created,
        # so a deployment that never had such keys has no secret to derive them from.
        master = store.get_secret(conn, LEGACY_SECRET)
        return None if master is None else derive_key(master, row["kid"])
    if ep.passphrase is None:
        log.error("EAB key %s is sealed but no ca_passphrase is configured", row["kid"])
        return None
    try:
        return sealing.unseal(blob, ep.passphrase, context=context(row["kid"]))
    except sealing.UnsealError:
        # Not the client's fault, and nothing it can fix: the operator must re-run
        # `enroll ca rotate-passphrase` (a key sealed under an older passphrase).
        log.error("EAB key %s does not open with the configured ca_passphrase", row["kid"])
        return None


def verify_binding(ep: AcmeEndpoint, conn: Any, binding: Any, outer_jwk: dict[str, Any],
                   url: str) -> dict[str, Any]:
    """Check an externalAccountBinding JWS; returns the stored key row (kid, allow)."""
    if not isinstance(binding, dict):
        raise malformed("externalAccountBinding must be a JWS object")
    inner = parse(binding)
    kid = inner.protected.get("kid")
    if not isinstance(kid, str) or len(kid) > 64 or inner.protected.get("url") != url:
        raise malformed("externalAccountBinding needs kid and the newAccount url")
    if "nonce" in inner.protected:
        raise malformed("externalAccountBinding must not carry a nonce")
    row = store.get_eab_key(conn, kid)
    if row is None or row["endpoint"] != ep.label:
        raise unauthorized_eab()
    key = _hmac_key(ep, conn, row)
    if key is None:
        raise unauthorized_eab()
    verify_hmac(inner, key)
    try:
        jwk = load_json(b64d(inner.payload_b64, "externalAccountBinding payload"),
                        "externalAccountBinding payload")
        same = canonical_thumbprint(jwk) == thumbprint(outer_jwk)
    except (AcmeProblem, ValueError, KeyError, TypeError):
        same = False
    if not same:
        raise malformed("externalAccountBinding payload must be the account key")
    if row["account_id"] is not None:
        raise AcmeProblem("unauthorized", "this external account key is already bound", 403)
    return row
