"""The doors' credentials an admin manages: ACME EAB keys, SCEP one-time challenges and
EST users, for the admin API and the console, in the style of `admin.operations`: each
function takes the caller's `Principal`, requires `Action.MANAGE` and audits what was
asked (``admin.eab.created``...), never the secret it hands out once.

They reuse what the protocols' own CLI commands call (`enroll acme eab new`, `enroll
scep challenge new`, `enroll est user add`): `eab.create`, `OneTimeChallenges.new`,
`passwords`, the protocols' store functions. A protocol that is disabled or has no such
endpoint is a `NotFound`. (mypy sees the protocols as ``protocols``, not
``enroll.protocols``, so what those imports return is annotated here.)
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from enroll.context import AppContext
from enroll.errors import ConfigError, Conflict, MalformedInput, NotFound

from . import audit
from .principal import Principal
from .roles import Action

MAX_PATTERNS = 32
MAX_USERNAME = 128


def _labels(kind: str, labels: list[str], wanted: str) -> str:
    if wanted not in labels:
        raise NotFound(f"no {kind} endpoint labelled {wanted[:64]!r} "
                       f"(have: {', '.join(labels) or 'none'})")
    return wanted


# -- ACME EAB keys -----------------------------------------------------------------------

def eab_keys(ctx: AppContext, who: Principal) -> list[dict[str, Any]]:
    """Every EAB key (kid, endpoint, allow, identity, the account it bound); never a key."""
    from enroll.protocols.acme import store

    who.require(Action.MANAGE)
    with ctx.db.read() as tx:
        rows: list[dict[str, Any]] = store.list_eab_keys(tx)
    return rows


def create_eab_key(ctx: AppContext, who: Principal, endpoint: str,
                   allow: list[str] | None, identity: list[str] | None) -> tuple[str, str]:
    """(kid, HMAC key base64url): the key is shown this once, stored sealed."""
    from enroll.protocols.acme import eab, names, settings

    who.require(Action.MANAGE)
    parsed = settings.parse(ctx.config)
    _labels("ACME", [e.label for e in (parsed.endpoints if parsed else ())], endpoint)
    for patterns, key, check in ((allow, "allow", names.check_patterns),
                                 (identity, "identity", eab.check_identity_patterns)):
        if patterns:
            if len(patterns) > MAX_PATTERNS:
                raise MalformedInput(f"{key}: at most {MAX_PATTERNS} patterns")
            check(patterns, key)
    if ctx.config.ca_passphrase is None:
        raise ConfigError("ca_passphrase", "EAB keys are sealed with the CA passphrase")
    with ctx.db.write() as tx:
        kid, key = eab.create(tx, endpoint, allow or None, ctx.config.ca_passphrase,
                              ctx.clock.now(), identity=identity or None)
    audit.record(ctx, who, "eab.created", details={"kid": kid, "endpoint": endpoint,
                                                  "allow": allow, "identity": identity})
    return kid, key


def revoke_eab_key(ctx: AppContext, who: Principal, kid: str) -> dict[str, Any]:
    """Delete the key; the account it bound (if any) is deactivated."""
    from enroll.protocols.acme import eab

    who.require(Action.MANAGE)
    with ctx.db.write() as tx:
        row: dict[str, Any] | None = eab.revoke(tx, kid[:64])
    if row is None:
        raise NotFound("no EAB key with this kid")
    audit.record(ctx, who, "eab.revoked", details={"kid": row["kid"],
                                                  "account": row["account_id"]})
    return row


# -- SCEP one-time challenges ------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Challenge:
    challenge: str
    endpoint: str
    expires: dt.datetime


def scep_challenge(ctx: AppContext, who: Principal, endpoint: str,
                   ttl_seconds: int | None) -> Challenge:
    """A one-time challenge password for `endpoint` (shown once, stored hashed)."""
    from enroll.protocols.scep import challenges, settings

    who.require(Action.MANAGE)
    endpoints = {e.label: e for e in settings.parse(ctx.config)}
    found = endpoints[_labels("SCEP", list(endpoints), endpoint)]
    if not found.one_time:
        raise Conflict(f"one-time challenges are disabled on SCEP endpoint {endpoint!r}")
    ttl = ttl_seconds if ttl_seconds is not None else found.one_time_ttl
    challenge, expires = challenges.OneTimeChallenges(ctx.db, ctx.clock).new(
        found.label, ttl, who.name, audit={"via": "admin.api"})
    return Challenge(challenge, found.label, expires)


# -- EST users ---------------------------------------------------------------------------

def est_users(ctx: AppContext, who: Principal) -> list[tuple[str, str]]:
    """(endpoint, username) of every EST user kept in the database; never a hash."""
    from enroll.protocols.est import store

    who.require(Action.MANAGE)
    with ctx.db.read() as tx:
        users: list[tuple[str, str]] = store.list_users(tx)
    return users


def put_est_user(ctx: AppContext, who: Principal, endpoint: str, username: str,
                 password: str | None) -> tuple[bool, str | None]:
    """Add a user or set its password. Without `password` one is generated (returned
    once, stored with the fast keyed hash, as ``enroll est user add`` does); a given one
    is hashed with scrypt. Returns (new user?, the generated password or None)."""
    from enroll.protocols.est import passwords, settings, store

    who.require(Action.MANAGE)
    parsed = settings.parse(ctx.config)
    _labels("EST", [e.label for e in (parsed.endpoints if parsed else ())], endpoint)
    if not username or len(username) > MAX_USERNAME or ":" in username:
        raise MalformedInput("user names are 1-128 characters without ':'")
    generated = None if password else passwords.generate()
    stored = passwords.hash_slow(password) if password else passwords.hash_fast(
        generated or "")
    with ctx.db.write() as tx:
        new = store.put_user(tx, endpoint, username, stored, ctx.clock.now())
    audit.record(ctx, who, "est_user.added" if new else "est_user.reset",
                 details={"endpoint": endpoint, "username": username})
    return new, generated


def remove_est_user(ctx: AppContext, who: Principal, endpoint: str, username: str) -> None:
    from enroll.protocols.est import store

    who.require(Action.MANAGE)
    with ctx.db.write() as tx:
        if not store.delete_user(tx, endpoint[:64], username[:MAX_USERNAME]):
            raise NotFound(f"no EST user {username[:64]!r} on endpoint {endpoint[:64]!r}")
    audit.record(ctx, who, "est_user.removed", details={"endpoint": endpoint,
                                                       "username": username})
