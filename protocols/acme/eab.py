"""External Account Binding (RFC 8555 §7.3.4).

An EAB key is ``(kid, HMAC key)``. Only the kid and its name policy are stored: the HMAC
key is derived as HMAC-SHA256(endpoint secret, kid), so the database never holds a
usable key on its own row and nothing needs decrypting. A key binds one account once
(conditional UPDATE in `store.bind_eab_key`)."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from typing import Any

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
from .store import get_eab_key


def derive_key(master: bytes, kid: str) -> bytes:
    return hmac.new(master, b"acme-eab:" + kid.encode(), hashlib.sha256).digest()


def new_kid() -> str:
    return "kid-" + secrets.token_urlsafe(12)


def encoded_key(master: bytes, kid: str) -> str:
    """The HMAC key as the operator hands it to a client (base64url)."""
    return b64e(derive_key(master, kid))


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
    row = get_eab_key(conn, kid)
    if row is None or row["endpoint"] != ep.label:
        raise unauthorized_eab()
    verify_hmac(inner, derive_key(ep.eab_secret, kid))
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
