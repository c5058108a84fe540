"""Authorizations and challenges (RFC 8555 §7.5): reading, deactivating, responding, and
recording validation results so any worker answers the polling client."""

from __future__ import annotations

from typing import Any

from enroll.store.transaction import Tx

from . import device_attest, limits, store, validation
from .accounts import Verified
from .endpoint import AcmeEndpoint
from .jws import thumbprint
from .problems import AcmeProblem, document, malformed, not_found, unauthorized
from .settings import DEVICE_ATTEST


def load_authz(ep: AcmeEndpoint, v: Verified,
               authz_id: str) -> tuple[store.Authz, list[store.Challenge]]:
    with ep.db.read() as conn:
        authz = store.get_authz(conn, authz_id)
        if authz is None:
            raise not_found("no such authorization")
        if v.account is None or authz.account_id != v.account.id:
            raise unauthorized("this authorization belongs to another account")
        return authz, store.authz_challenges(conn, authz_id)


def update_authz(ep: AcmeEndpoint, v: Verified,
                 authz_id: str) -> tuple[store.Authz, list[store.Challenge]]:
    """POST-as-GET reads; ``{"status": "deactivated"}`` deactivates (§7.5.2)."""
    authz, challenges = load_authz(ep, v, authz_id)
    if v.jws.post_as_get:
        return authz, challenges
    if v.jws.payload().get("status") != "deactivated":
        raise malformed("an authorization can only be deactivated")
    with ep.db.write() as conn:
        if not (store.set_authz(conn, authz.id, "pending", "deactivated")
                or store.set_authz(conn, authz.id, "valid", "deactivated")):
            raise malformed(f"authorization is {authz.status}")
        store.set_order(conn, authz.order_id, ("pending", "ready"), status="invalid")
    return load_authz(ep, v, authz_id)


def respond(ep: AcmeEndpoint, v: Verified,
            challenge_id: str) -> tuple[store.Challenge, store.Authz, bool]:
    """§7.5.1: the client is ready. Moves pending -> processing once; returns the
    challenge, its authorization, and whether a validation should start now."""
    with ep.db.read() as conn:
        challenge = store.get_challenge(conn, challenge_id)
        authz = None if challenge is None else store.get_authz(conn, challenge.authz_id)
    if challenge is None or authz is None:
        raise not_found("no such challenge")
    if v.account is None or authz.account_id != v.account.id:
        raise unauthorized("this challenge belongs to another account")
    if v.jws.post_as_get or challenge.status != "pending":
        return challenge, authz, False
    if authz.status != "pending":
        raise AcmeProblem("malformed", f"authorization is {authz.status}", 400)
    if not ep.validation.skip:
        limits.take_validation_slot(ep, authz.account_id)
    try:
        with ep.db.write() as conn:
            started = store.set_challenge(conn, challenge.id, "pending", "processing")
    except BaseException:
        if not ep.validation.skip:
            limits.release_validation_slot(ep)
        raise
    if not started and not ep.validation.skip:
        limits.release_validation_slot(ep)  # another request started it
    if started and ep.validation.skip:
        # TEST ONLY (acme.skip_validation): pass without looking.
        record_result(ep, challenge.id, None)
    with ep.db.read() as conn:
        fresh = store.get_challenge(conn, challenge.id)
    assert fresh is not None
    return fresh, authz, started and not ep.validation.skip


def record_result(ep: AcmeEndpoint, challenge_id: str, error: dict[str, Any] | None,
                  attested: dict[str, Any] | None = None) -> store.Challenge | None:
    """Store a validation result and move the authorization and order on (§7.1.6), in
    one transaction; a failure counts against the account and name
    (`limits.validation_failed`). `attested`: what a device-attest-01 device proved,
    kept on the authorization for finalize. Returns the challenge as it stands
    afterwards."""
    now = ep.clock.now()
    with ep.db.write() as conn:
        failed = _record(conn, challenge_id, error, now, attested)
        fresh = store.get_challenge(conn, challenge_id)
    if failed is not None:
        limits.validation_failed(ep, *failed)
        # A failed validation is a refusal of the authorization: audited (counted per
        # window and account) like every other refusal.
        ep.authority.record_refusal(f"acme:{ep.label}", "acme_validation_failed", None,
                                    f"acme-account:{failed[0]}",
                                    {"identifier": failed[1],
                                     "problem": (error or {}).get("type", "")})
    return fresh


def _record(conn: Tx, challenge_id: str, error: dict[str, Any] | None, now: Any,
            attested: dict[str, Any] | None = None) -> tuple[str, str] | None:
    """Returns (account, name) when this call recorded a failed validation."""
    challenge = store.get_challenge(conn, challenge_id)
    if challenge is None:
        return None
    authz = store.get_authz(conn, challenge.authz_id)
    assert authz is not None
    status = "invalid" if error else "valid"
    if not store.set_challenge(conn, challenge.id, "processing", status,
                               validated_at=now if not error else None, error=error):
        return None
    failed = (authz.account_id, authz.value) if error else None
    if attested is not None and not error:
        store.set_attested(conn, authz.id, attested)
    if not store.set_authz(conn, authz.id, "pending", status):
        return failed
    if error:
        identifier = {"type": authz.type, "value": authz.value}
        store.set_order(conn, authz.order_id, "pending", status="invalid", error=document(
            "unauthorized", f"authorization for {authz.value} failed", 403,
            subproblems=[dict(error, identifier=identifier)]))
    elif all(a.status == "valid" for a in store.order_authzs(conn, authz.order_id)):
        store.set_order(conn, authz.order_id, "pending", status="ready")
    return failed


async def validate(ep: AcmeEndpoint, challenge: store.Challenge, authz: store.Authz,
                   account_jwk: dict[str, Any],
                   payload: object = None) -> tuple[dict[str, Any] | None,
                                                    dict[str, Any] | None]:
    """Perform the challenge: (None, what a device attested) on success, else (the
    problem document, None). `payload` is the client's response (device-attest-01)."""
    key_authorization = f"{challenge.token}.{thumbprint(account_jwk)}"
    if challenge.type == DEVICE_ATTEST:
        try:
            return None, await ep.blocking.run(device_attest.verify, ep, authz,
                                               challenge.token, key_authorization, payload)
        except device_attest.Refused as exc:
            return exc.problem, None
    name = authz.value
    try:
        await validation.run(challenge.type, name, challenge.token, key_authorization,
                             ep.validation)
    except validation.ValidationFailed as exc:
        return exc.document(), None
    return None, None
