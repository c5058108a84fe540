"""Request authentication and the account resources (RFC 8555 §6.2, §7.3)."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

from sqlalchemy.exc import IntegrityError

from enroll.errors import BadCSR

from . import eab, fields, store
from .endpoint import AcmeEndpoint
from .jws import Jws, canonical_jwk, canonical_thumbprint, key_from_jwk, parse, thumbprint, verify
from .problems import (
    AcmeProblem,
    bad_public_key,
    bad_signature_algorithm,
    deactivated,
    malformed,
    unauthorized,
)

_FORBIDDEN_ALGS = ("none",)


@dataclass(frozen=True, slots=True)
class Verified:
    """A request whose signature, url and nonce checked out."""

    jws: Jws
    account: store.Account | None
    jwk: dict[str, Any] | None


_KEYS: dict[tuple[str, str], tuple[Any, str]] = {}
_KEYS_MAX = 4096


def _account_key(account: store.Account) -> tuple[Any, str]:
    """The account's public key, built from its stored JWK once per (account, key):
    a key change gives a new thumbprint and so a new entry."""
    slot = (account.id, account.thumbprint)
    found = _KEYS.get(slot)
    if found is None:
        found = key_from_jwk(account.jwk, minimal=False)
        if len(_KEYS) >= _KEYS_MAX:
            _KEYS.clear()
        _KEYS[slot] = found
    return found


def account_url(base: str, account_id: str) -> str:
    return f"{base}/acct/{account_id}"


def authenticate(ep: AcmeEndpoint, jws: Jws, url: str, base: str, *, want: str) -> Verified:
    """RFC 8555 §6.2-6.5: alg, url, kid/jwk, signature, then the nonce. `want` is
    ``kid``, ``jwk`` or ``any`` (revokeCert takes either)."""
    h = jws.protected
    alg = h.get("alg")
    if not isinstance(alg, str) or alg in _FORBIDDEN_ALGS or alg.startswith("HS"):
        raise bad_signature_algorithm("unsupported alg") from None
    if not isinstance(h.get("url"), str):
        # RFC 8555 §6.4: the url header is required; without it the JWS is malformed.
        raise malformed("the protected header has no url")
    if h.get("url") != url:
        # RFC 8555 §6.4: the url header must equal the request URL.
        raise unauthorized("url header does not match the request URL")
    has_jwk, has_kid = "jwk" in h, "kid" in h
    if has_jwk == has_kid:
        raise malformed("the protected header needs exactly one of jwk and kid")
    if want == "kid" and has_jwk:
        raise malformed("this resource needs a kid (account URL)")
    if want == "jwk" and has_kid:
        raise malformed("this resource needs a jwk")
    account = None
    if has_jwk:
        key, key_alg, jwk = canonical_jwk(h["jwk"])
    else:
        kid = h["kid"]
        prefix = f"{base}/acct/"
        if not isinstance(kid, str) or not kid.startswith(prefix) or len(kid) > 512:
            raise AcmeProblem("accountDoesNotExist", "unknown account", 400)
        with ep.db.read() as conn:
            account = store.get_account(conn, kid[len(prefix):])
        if account is None or account.endpoint != ep.label:
            raise AcmeProblem("accountDoesNotExist", "unknown account", 400)
        if account.status != "valid":
            raise deactivated()
        jwk = account.jwk
        key, key_alg = _account_key(account)
    verify(jws, key, key_alg)
    ep.nonces.consume(h.get("nonce"), ep.clock.now())
    return Verified(jws, account, jwk)


def check_account_key(ep: AcmeEndpoint, key: Any) -> None:
    """The core's weak-key checks and blocklist, for an account key: ``badPublicKey``."""
    try:
        ep.authority.check_public_key(key)
    except BadCSR as exc:
        raise bad_public_key(exc) from None


def new_account(ep: AcmeEndpoint, v: Verified, url: str) -> tuple[store.Account, bool]:
    """RFC 8555 §7.3: create, or find the existing account for this key. Returns the
    account and whether it was created. A weak or blocked key gets neither."""
    assert v.jwk is not None
    payload = v.jws.payload()
    check_account_key(ep, key_from_jwk(v.jwk)[0])
    thumb = thumbprint(v.jwk)
    with ep.db.read() as conn:
        existing = store.find_account(conn, ep.label, thumb)
    if existing is not None:
        if existing.status != "valid":
            # RFC 8555 §7.3.6: a deactivated account's key authorizes nothing more.
            raise deactivated()
        return existing, False
    if payload.get("onlyReturnExisting") is True:
        raise AcmeProblem("accountDoesNotExist", "no account for this key", 400)
    if ep.settings.terms_of_service and payload.get("termsOfServiceAgreed") is not True:
        raise AcmeProblem("userActionRequired", "agree to the terms of service", 403)
    contact = fields.contact(payload.get("contact"))
    binding = payload.get("externalAccountBinding")
    if ep.settings.eab_required and binding is None:
        raise AcmeProblem("externalAccountRequired", "this endpoint needs an external "
                          "account binding", 403)
    account = store.Account(secrets.token_urlsafe(12), ep.label, thumb, v.jwk, "valid",
                            contact, None, None)
    now = ep.clock.now()
    if binding is not None:
        # Checked before the write transaction: opening the sealed key may derive its
        # KEK (scrypt) once, which must not hold SQLite's writer lock.
        with ep.db.read() as conn:
            row = eab.verify_binding(ep, conn, binding, v.jwk, url)
        account = store.Account(account.id, ep.label, thumb, v.jwk, "valid",
                                contact, row["kid"], row["allow"])
    try:
        with ep.db.write() as conn:
            store.add_account(conn, account, now)
            if binding is not None and not store.bind_eab_key(conn, account.eab_kid or "",
                                                              account.id, now):
                raise AcmeProblem("unauthorized", "this external account key is already "
                                  "bound", 403)
    except IntegrityError:
        # A concurrent newAccount with the same key won: answer with that account.
        with ep.db.read() as conn:
            existing = store.find_account(conn, ep.label, thumb)
        if existing is None:
            raise
        return existing, False
    return account, True


def update_account(ep: AcmeEndpoint, v: Verified, account_id: str) -> store.Account:
    """RFC 8555 §7.3.2 (contact), §7.3.6 (deactivation); POST-as-GET reads it."""
    account = v.account
    if account is None or account.id != account_id:
        raise unauthorized("an account can only read or change itself")
    if v.jws.post_as_get:
        return account
    payload = v.jws.payload()
    values: dict[str, Any] = {}
    if "contact" in payload:
        values["contact"] = fields.contact(payload["contact"])
    if "status" in payload:
        if payload["status"] != "deactivated":
            raise malformed("status can only be set to deactivated")
        values["status"] = "deactivated"
    if values:
        with ep.db.write() as conn:
            if not store.update_account(conn, account.id, **values):
                raise deactivated()
    with ep.db.read() as conn:
        updated = store.get_account(conn, account.id)
    assert updated is not None
    return updated


def key_change(ep: AcmeEndpoint, v: Verified, url: str, base: str) -> store.Account:
    """RFC 8555 §7.3.5: the inner JWS, signed by the new key, names the account and the
    old key; the new key must not belong to another account (409 with its Location)."""
    account = v.account
    assert account is not None
    inner = parse(v.jws.payload())
    h = inner.protected
    if "jwk" not in h or "kid" in h or "nonce" in h:
        raise malformed("the inner JWS needs a jwk and no kid or nonce")
    if h.get("url") != url:
        raise malformed("the inner JWS url must equal the outer url")
    new_key, alg, new_jwk = canonical_jwk(h["jwk"])
    if not isinstance(h.get("alg"), str) or h["alg"].startswith("HS") or h["alg"] == "none":
        raise bad_signature_algorithm("unsupported alg")
    verify(inner, new_key, alg)
    payload = inner.payload()
    if payload.get("account") != account_url(base, account.id):
        raise malformed("the inner payload must name the signing account")
    old = payload.get("oldKey")
    try:
        old_ok = isinstance(old, dict) and canonical_thumbprint(old) == account.thumbprint
    except AcmeProblem:
        old_ok = False
    if not old_ok:
        raise malformed("oldKey is not the account's current key")
    check_account_key(ep, new_key)
    new_thumb = thumbprint(new_jwk)
    try:
        with ep.db.write() as conn:
            other = store.find_account(conn, ep.label, new_thumb)
            if other is not None:
                raise AcmeProblem("malformed", "the new key belongs to another account", 409,
                                  headers={"Location": account_url(base, other.id)})
            if not store.update_account(conn, account.id, jwk=new_jwk, thumbprint=new_thumb):
                raise deactivated()
    except IntegrityError:
        raise AcmeProblem("malformed", "the new key belongs to another account", 409) from None
    with ep.db.read() as conn:
        updated = store.get_account(conn, account.id)
    assert updated is not None
    return updated
