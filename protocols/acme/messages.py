"""The JSON objects ACME sends (RFC 8555 §7.1): directory, account, order, authorization,
challenge. Pure functions from stored dataclasses to dicts."""

from __future__ import annotations

from typing import Any

from .fields import rfc3339
from .settings import EndpointSettings
from .store import Account, Authz, Challenge, Order


def directory(base: str, endpoint: EndpointSettings,
              descriptions: dict[str, str]) -> dict[str, Any]:
    meta: dict[str, Any] = {"externalAccountRequired": endpoint.eab_required,
                            "profiles": {p: descriptions.get(p, p) for p in endpoint.profiles}}
    if endpoint.terms_of_service:
        meta["termsOfService"] = endpoint.terms_of_service
    if endpoint.website:
        meta["website"] = endpoint.website
    return {
        "newNonce": f"{base}/new-nonce", "newAccount": f"{base}/new-account",
        "newOrder": f"{base}/new-order", "revokeCert": f"{base}/revoke-cert",
        "keyChange": f"{base}/key-change", "renewalInfo": f"{base}/renewal-info",
        "meta": meta,
    }


def account(acct: Account, base: str) -> dict[str, Any]:
    body: dict[str, Any] = {"status": acct.status, "contact": acct.contact,
                            "orders": f"{base}/acct/{acct.id}/orders", "key": acct.jwk}
    if acct.eab_kid:
        body["externalAccountBinding"] = {"kid": acct.eab_kid}
    return body


def order(o: Order, authz_ids: list[str], base: str) -> dict[str, Any]:
    body: dict[str, Any] = {
        "status": o.status, "expires": rfc3339(o.expires), "identifiers": o.identifiers,
        "authorizations": [f"{base}/authz/{a}" for a in authz_ids],
        "finalize": f"{base}/order/{o.id}/finalize", "profile": o.profile,
    }
    if o.replaces:
        body["replaces"] = o.replaces
    if o.not_before is not None:
        body["notBefore"] = rfc3339(o.not_before)
    if o.not_after is not None:
        body["notAfter"] = rfc3339(o.not_after)
    if o.status == "valid" and o.certificate_serial:
        body["certificate"] = f"{base}/cert/{o.id}"
    if o.error:
        body["error"] = o.error
    return body


def challenge(c: Challenge, base: str) -> dict[str, Any]:
    body: dict[str, Any] = {"type": c.type, "url": f"{base}/chall/{c.id}",
                            "status": c.status, "token": c.token}
    if c.validated_at is not None:
        body["validated"] = rfc3339(c.validated_at)
    if c.error:
        body["error"] = c.error
    return body


def authorization(a: Authz, challenges: list[Challenge], base: str) -> dict[str, Any]:
    value = a.value[2:] if a.wildcard else a.value
    body: dict[str, Any] = {
        "identifier": {"type": a.type, "value": value}, "status": a.status,
        "expires": rfc3339(a.expires),
        # RFC 8555 §7.1.4: once valid, only the challenge that passed is listed.
        "challenges": [challenge(c, base) for c in challenges
                       if a.status != "valid" or c.status == "valid"],
    }
    if a.wildcard:
        body["wildcard"] = True
    return body
