"""ACME's own tables: accounts, orders, authorizations, challenges, used nonces, EAB keys
and the endpoint secret. Certificates and requests never live here (they go through the
core's pipeline); an order only records the request id and serial the core gave back.

Exactly-once rules are conditional UPDATEs and primary keys: a nonce is accepted once
(INSERT into ``acme_used_nonces``), an order leaves ``ready`` once, an EAB key binds one
account (UPDATE ... WHERE account_id IS NULL), a certificate is replaced by one live
order (the partial unique index ``uq_acme_orders_replaces``)."""

# ruff: noqa: S608 - the SQL below interpolates only constant column lists and int()
# limits; column names in SET clauses go through `Tx.update`, which refuses any name
# outside a fixed list. Every value is a bound parameter.
from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    Boolean,
    Column,
    Index,
    LargeBinary,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)

from enroll.store.columns import UTC_DT
from enroll.store.schema import metadata
from enroll.store.transaction import Row, Tx

LIVE_REPLACEMENT = "replaces IS NOT NULL AND status != 'invalid'"
PROCESSING = "status = 'processing'"

acme_secrets = Table(
    "acme_secrets", metadata,
    Column("name", String(32), primary_key=True),
    Column("value", LargeBinary, nullable=False),
)
acme_used_nonces = Table(
    "acme_used_nonces", metadata,
    Column("nonce", String(64), primary_key=True),
    Column("expires", UTC_DT, nullable=False),
)
acme_accounts = Table(
    "acme_accounts", metadata,
    Column("id", String(32), primary_key=True),
    Column("endpoint", String(64), nullable=False),
    Column("thumbprint", String(64), nullable=False),
    Column("jwk", Text, nullable=False),
    Column("status", String(16), nullable=False),
    Column("contact", Text, nullable=False),
    Column("eab_kid", String(64), nullable=True),
    Column("allow", Text, nullable=True),
    Column("created_at", UTC_DT, nullable=False),
    UniqueConstraint("endpoint", "thumbprint", name="uq_acme_accounts_key"),
)
acme_orders = Table(
    "acme_orders", metadata,
    Column("id", String(32), primary_key=True),
    Column("endpoint", String(64), nullable=False),
    Column("account_id", String(32), nullable=False, index=True),
    Column("status", String(16), nullable=False),
    Column("identifiers", Text, nullable=False),
    Column("profile", String(64), nullable=False),
    Column("replaces", String(64), nullable=True),
    Column("request_id", String(36), nullable=True),
    Column("certificate_serial", String(64), nullable=True),
    Column("error", Text, nullable=True),
    Column("expires", UTC_DT, nullable=False),
    Column("created_at", UTC_DT, nullable=False),
    # What finalize submitted (PEM CSR, requester) and when the order entered
    # processing: the recovery pass re-submits an order stuck there (migration 0005).
    Column("csr", Text, nullable=True),
    Column("finalized_by", String(512), nullable=True),
    Column("processing_since", UTC_DT, nullable=True),
    # Why `replaces` was accepted (`enroll.model.LINK_REASONS`: eab, names; NULL: the
    # account's own certificate), recorded on the request at finalize (migration 0008).
    Column("replaces_link", String(16), nullable=True),
    # The validity the client asked for (RFC 8555 §7.4 notBefore/notAfter; NULL: the
    # profile's), checked by the core at newOrder (migration 0009).
    Column("not_before", UTC_DT, nullable=True),
    Column("not_after", UTC_DT, nullable=True),
    Index("ix_acme_orders_processing", "processing_since",
          sqlite_where=text(PROCESSING), postgresql_where=text(PROCESSING)),
    # RFC 9773 §5: at most one order that is not invalid replaces a certificate. An
    # order that becomes invalid (failed validation, deactivated, expired, refused)
    # leaves the index, so the certificate can be replaced by a new order.
    Index("uq_acme_orders_replaces", "replaces", unique=True,
          sqlite_where=text(LIVE_REPLACEMENT), postgresql_where=text(LIVE_REPLACEMENT)),
)
acme_authzs = Table(
    "acme_authzs", metadata,
    Column("id", String(32), primary_key=True),
    Column("order_id", String(32), nullable=False, index=True),
    Column("account_id", String(32), nullable=False),
    Column("type", String(32), nullable=False),
    Column("value", String(255), nullable=False),
    Column("wildcard", Boolean, nullable=False),
    Column("status", String(16), nullable=False),
    Column("expires", UTC_DT, nullable=False),
    # device-attest-01: JSON {fmt, key_sha256, device_id, identifiers} of what the
    # device proved; finalize requires the CSR's key to be that key (migration 0010).
    Column("attested", Text, nullable=True),
    # The per-account quotas (pending authorizations, validations in progress).
    Index("ix_acme_authzs_account_status", "account_id", "status"),
)
acme_challenges = Table(
    "acme_challenges", metadata,
    Column("id", String(32), primary_key=True),
    Column("authz_id", String(32), nullable=False),
    Column("type", String(16), nullable=False),
    Column("token", String(64), nullable=False),
    Column("status", String(16), nullable=False),
    Column("validated_at", UTC_DT, nullable=True),
    Column("error", Text, nullable=True),
    Index("ix_acme_challenges_authz_id", "authz_id"),
)
acme_eab_keys = Table(
    "acme_eab_keys", metadata,
    Column("kid", String(64), primary_key=True),
    Column("endpoint", String(64), nullable=False),
    Column("allow", Text, nullable=True),
    Column("account_id", String(32), nullable=True),
    Column("created_at", UTC_DT, nullable=False),
    Column("used_at", UTC_DT, nullable=True),
    # The HMAC key sealed under the CA passphrase (NULL: a key made before 0005, derived
    # from the "eab" secret; see protocols/acme/eab.py).
    Column("hmac_key", LargeBinary, nullable=True),
    # JSON list of fnmatch patterns on identities (``san.dns:*.corp.example``): the bound
    # account may replace other doors' certificates of those identities (migration 0008).
    Column("identity", Text, nullable=True),
)


@dataclass(frozen=True, slots=True)
class Account:
    id: str
    endpoint: str
    thumbprint: str
    jwk: dict[str, Any]
    status: str
    contact: list[str]
    eab_kid: str | None
    allow: list[str] | None


@dataclass(frozen=True, slots=True)
class Order:
    id: str
    endpoint: str
    account_id: str
    status: str
    identifiers: list[dict[str, str]]
    profile: str
    replaces: str | None
    request_id: str | None
    certificate_serial: str | None
    error: dict[str, Any] | None
    expires: dt.datetime
    replaces_link: str | None = None
    """Why `replaces` was accepted, when it is not the account's own certificate."""
    not_before: dt.datetime | None = None
    not_after: dt.datetime | None = None
    """The validity the client asked for in newOrder (None: the profile's)."""


@dataclass(frozen=True, slots=True)
class Authz:
    id: str
    order_id: str
    account_id: str
    type: str
    value: str
    wildcard: bool
    status: str
    expires: dt.datetime
    attested: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class Challenge:
    id: str
    authz_id: str
    type: str
    token: str
    status: str
    validated_at: dt.datetime | None
    error: dict[str, Any] | None


def _loads(text: str | None) -> Any:
    return None if text is None else json.loads(text)


_ACCOUNT = "id, endpoint, thumbprint, jwk, status, contact, eab_kid, allow"
_ORDER = ("id, endpoint, account_id, status, identifiers, profile, replaces, request_id, "
          "certificate_serial, error, expires, replaces_link, not_before, not_after")
_AUTHZ = "id, order_id, account_id, type, value, wildcard, status, expires, attested"
_CHALLENGE = "id, authz_id, type, token, status, validated_at, error"


def _account(row: Row) -> Account:
    return Account(id=row["id"], endpoint=row["endpoint"], thumbprint=row["thumbprint"],
                   jwk=json.loads(row["jwk"]), status=row["status"],
                   contact=json.loads(row["contact"]), eab_kid=row["eab_kid"],
                   allow=_loads(row["allow"]))


def _order(row: Row) -> Order:
    return Order(id=row["id"], endpoint=row["endpoint"], account_id=row["account_id"],
                 status=row["status"], identifiers=json.loads(row["identifiers"]),
                 profile=row["profile"], replaces=row["replaces"],
                 request_id=row["request_id"], certificate_serial=row["certificate_serial"],
                 error=_loads(row["error"]), expires=row["expires"],
                 replaces_link=row["replaces_link"], not_before=row["not_before"],
                 not_after=row["not_after"])


def _authz(row: Row) -> Authz:
    return Authz(id=row["id"], order_id=row["order_id"], account_id=row["account_id"],
                 type=row["type"], value=row["value"], wildcard=row["wildcard"],
                 status=row["status"], expires=row["expires"],
                 attested=_loads(row["attested"]))


def _challenge(row: Row) -> Challenge:
    return Challenge(id=row["id"], authz_id=row["authz_id"], type=row["type"],
                     token=row["token"], status=row["status"],
                     validated_at=row["validated_at"], error=_loads(row["error"]))


# -- secrets and nonces -------------------------------------------------------------------

def get_or_create_secret(tx: Tx, name: str, value: bytes) -> bytes:
    """The stored secret called `name`, creating it with `value` if absent (first worker
    to start wins; every worker reads the same one)."""
    row = tx.one("SELECT value FROM acme_secrets WHERE name = ?", (name,), acme_secrets)
    if row is not None:
        return bytes(row["value"])
    tx.run("INSERT INTO acme_secrets (name, value) VALUES (?, ?)", (name, value))
    return value


def mark_nonce_used(tx: Tx, nonce: str, expires: dt.datetime) -> None:
    """Raises IntegrityError when the nonce was already used (primary key)."""
    tx.run("INSERT INTO acme_used_nonces (nonce, expires) VALUES (?, ?)",
           (nonce, tx.when(expires)))


def prune_nonces(tx: Tx, now: dt.datetime) -> None:
    tx.run("DELETE FROM acme_used_nonces WHERE expires < ?", (tx.when(now),))


# -- accounts -----------------------------------------------------------------------------

def add_account(tx: Tx, account: Account, now: dt.datetime) -> None:
    tx.run("INSERT INTO acme_accounts (id, endpoint, thumbprint, jwk, status, contact, "
           "eab_kid, allow, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
           (account.id, account.endpoint, account.thumbprint, json.dumps(account.jwk),
            account.status, json.dumps(account.contact), account.eab_kid,
            None if account.allow is None else json.dumps(account.allow), tx.when(now)))


def get_account(tx: Tx, account_id: str) -> Account | None:
    row = tx.one(f"SELECT {_ACCOUNT} FROM acme_accounts WHERE id = ?", (account_id,),
                 acme_accounts)
    return None if row is None else _account(row)


def find_account(tx: Tx, endpoint: str, thumbprint: str) -> Account | None:
    row = tx.one(f"SELECT {_ACCOUNT} FROM acme_accounts WHERE endpoint = ? AND "
                 "thumbprint = ?", (endpoint, thumbprint), acme_accounts)
    return None if row is None else _account(row)


_ACCOUNT_UPDATABLE = frozenset({"contact", "jwk", "status", "thumbprint"})


def update_account(tx: Tx, account_id: str, **values: Any) -> bool:
    """Change a valid account (a deactivated one is final, RFC 8555 §7.3.6)."""
    if "contact" in values:
        values["contact"] = json.dumps(values["contact"])
    if "jwk" in values:
        values["jwk"] = json.dumps(values["jwk"])
    return tx.update(acme_accounts, values, "id = ? AND status = 'valid'", (account_id,),
                     allowed=_ACCOUNT_UPDATABLE) > 0


# -- orders, authorizations, challenges ---------------------------------------------------

def add_order(tx: Tx, order: Order, now: dt.datetime) -> None:
    tx.run("INSERT INTO acme_orders (id, endpoint, account_id, status, identifiers, profile, "
           "replaces, replaces_link, expires, created_at, not_before, not_after) "
           "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
           (order.id, order.endpoint, order.account_id, order.status,
            json.dumps(order.identifiers), order.profile, order.replaces,
            order.replaces_link, tx.when(order.expires), tx.when(now),
            tx.when(order.not_before), tx.when(order.not_after)))


def add_authz(tx: Tx, authz: Authz, challenges: list[Challenge]) -> None:
    tx.run("INSERT INTO acme_authzs (id, order_id, account_id, type, value, wildcard, status, "
           "expires) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
           (authz.id, authz.order_id, authz.account_id, authz.type, authz.value,
            authz.wildcard, authz.status, tx.when(authz.expires)))
    for c in challenges:
        tx.run("INSERT INTO acme_challenges (id, authz_id, type, token, status) "
               "VALUES (?, ?, ?, ?, ?)", (c.id, c.authz_id, c.type, c.token, c.status))


def get_order(tx: Tx, order_id: str) -> Order | None:
    row = tx.one(f"SELECT {_ORDER} FROM acme_orders WHERE id = ?", (order_id,), acme_orders)
    return None if row is None else _order(row)


def order_authzs(tx: Tx, order_id: str) -> list[Authz]:
    rows = tx.all(f"SELECT {_AUTHZ} FROM acme_authzs WHERE order_id = ? ORDER BY id",
                  (order_id,), acme_authzs)
    return [_authz(r) for r in rows]


def account_orders(tx: Tx, account_id: str, limit: int = 100) -> list[str]:
    rows = tx.all("SELECT id FROM acme_orders WHERE account_id = ? ORDER BY created_at DESC "
                  f"LIMIT {int(limit)}", (account_id,))
    return [r["id"] for r in rows]


def order_replacing(tx: Tx, serial: str) -> str | None:
    """The live order that already replaces this certificate (RFC 9773 §5)."""
    row = tx.one("SELECT id FROM acme_orders WHERE replaces = ? AND status != 'invalid'",
                 (serial,))
    return None if row is None else str(row["id"])


def expire_replacing(tx: Tx, serial: str, now: dt.datetime, error: dict[str, Any]) -> int:
    """Mark invalid the orders replacing this certificate that expired unfinalized
    (RFC 8555 §7.1.6), so they no longer hold its replacement."""
    return tx.run("UPDATE acme_orders SET status = 'invalid', error = ? WHERE replaces = ? "
                  "AND status IN ('pending', 'ready') AND expires <= ?",
                  (json.dumps(error), serial, tx.when(now)))


def get_authz(tx: Tx, authz_id: str) -> Authz | None:
    row = tx.one(f"SELECT {_AUTHZ} FROM acme_authzs WHERE id = ?", (authz_id,), acme_authzs)
    return None if row is None else _authz(row)


def authz_challenges(tx: Tx, authz_id: str) -> list[Challenge]:
    rows = tx.all(f"SELECT {_CHALLENGE} FROM acme_challenges WHERE authz_id = ? "
                  "ORDER BY type", (authz_id,), acme_challenges)
    return [_challenge(r) for r in rows]


def get_challenge(tx: Tx, challenge_id: str) -> Challenge | None:
    row = tx.one(f"SELECT {_CHALLENGE} FROM acme_challenges WHERE id = ?", (challenge_id,),
                 acme_challenges)
    return None if row is None else _challenge(row)


_ORDER_UPDATABLE = frozenset({"status", "request_id", "certificate_serial", "error", "csr",
                              "finalized_by", "processing_since"})


def set_order(tx: Tx, order_id: str, expect: str | tuple[str, ...], **values: Any) -> bool:
    """Conditional transition: only when the order is in `expect` (RFC 8555 §7.1.6)."""
    expected = (expect,) if isinstance(expect, str) else expect
    if values.get("error") is not None:
        values["error"] = json.dumps(values["error"])
    marks = ", ".join("?" for _ in expected)
    return tx.update(acme_orders, values, f"id = ? AND status IN ({marks})",
                     (order_id, *expected), allowed=_ORDER_UPDATABLE) > 0


def set_authz(tx: Tx, authz_id: str, expect: str, status: str) -> bool:
    return tx.run("UPDATE acme_authzs SET status = ? WHERE id = ? AND status = ?",
                  (status, authz_id, expect)) > 0


def set_attested(tx: Tx, authz_id: str, attested: dict[str, Any]) -> None:
    tx.run("UPDATE acme_authzs SET attested = ? WHERE id = ?",
           (json.dumps(attested), authz_id))


def set_challenge(tx: Tx, challenge_id: str, expect: str, status: str,
                  validated_at: dt.datetime | None = None,
                  error: dict[str, Any] | None = None) -> bool:
    return tx.run("UPDATE acme_challenges SET status = ?, validated_at = ?, error = ? "
                  "WHERE id = ? AND status = ?",
                  (status, tx.when(validated_at), None if error is None else json.dumps(error),
                   challenge_id, expect)) > 0


def stuck_processing(tx: Tx, before: dt.datetime, limit: int = 100) -> list[str]:
    """Ids of orders in ``processing`` with no core request since before `before` (or
    since an unknown time: finalized before migration 0005). An order waiting for an
    approval has its request id, and is not stuck."""
    rows = tx.all(f"SELECT id FROM acme_orders WHERE {PROCESSING} AND request_id IS NULL "
                  "AND (processing_since IS NULL OR processing_since < ?) "
                  f"ORDER BY processing_since LIMIT {int(limit)}", (tx.when(before),))
    return [r["id"] for r in rows]


def claim_processing(tx: Tx, order_id: str, before: dt.datetime, now: dt.datetime) -> bool:
    """Take an order stuck in processing for recovery: one conditional UPDATE moves its
    ``processing_since`` to `now`, so of several workers exactly one claims it (and a
    claimer that dies too leaves it claimable again after the grace period)."""
    return tx.run("UPDATE acme_orders SET processing_since = ? WHERE id = ? AND "
                  f"{PROCESSING} AND request_id IS NULL AND "
                  "(processing_since IS NULL OR processing_since < ?)",
                  (tx.when(now), order_id, tx.when(before))) == 1


def finalize_input(tx: Tx, order_id: str) -> tuple[str, str] | None:
    """(CSR PEM, requester) that finalize submitted for this order, if recorded."""
    row = tx.one("SELECT csr, finalized_by FROM acme_orders WHERE id = ?", (order_id,))
    if row is None or row["csr"] is None or row["finalized_by"] is None:
        return None
    return str(row["csr"]), str(row["finalized_by"])


# -- EAB keys -----------------------------------------------------------------------------

def add_eab_key(tx: Tx, kid: str, endpoint: str, allow: list[str] | None,
                now: dt.datetime, hmac_key: bytes | None = None,
                identity: list[str] | None = None) -> None:
    """`hmac_key` is the sealed HMAC key (None only for keys made before it was kept);
    `identity` the identity patterns whose certificates the account may replace."""
    tx.run("INSERT INTO acme_eab_keys (kid, endpoint, allow, created_at, hmac_key, identity) "
           "VALUES (?, ?, ?, ?, ?, ?)",
           (kid, endpoint, None if allow is None else json.dumps(allow), tx.when(now),
            hmac_key, None if identity is None else json.dumps(identity)))


def _eab_key(row: Row) -> dict[str, Any]:
    return {"kid": row["kid"], "endpoint": row["endpoint"], "allow": _loads(row["allow"]),
            "account_id": row["account_id"], "identity": _loads(row["identity"])}


def get_eab_key(tx: Tx, kid: str) -> dict[str, Any] | None:
    """The key row (kid, endpoint, allow, account_id, and ``hmac_key``: the sealed blob
    or None)."""
    row = tx.one("SELECT kid, endpoint, allow, account_id, hmac_key, identity "
                 "FROM acme_eab_keys "
                 "WHERE kid = ?", (kid,))
    if row is not None:
        found = _eab_key(row)
        found["hmac_key"] = None if row["hmac_key"] is None else bytes(row["hmac_key"])
        return found
    return None


def bind_eab_key(tx: Tx, kid: str, account_id: str, now: dt.datetime) -> bool:
    """Usable once: only an unbound key binds (RFC 8555 §7.3.4)."""
    return tx.run("UPDATE acme_eab_keys SET account_id = ?, used_at = ? WHERE kid = ? AND "
                  "account_id IS NULL", (account_id, tx.when(now), kid)) > 0


def delete_eab_key(tx: Tx, kid: str) -> bool:
    return tx.run("DELETE FROM acme_eab_keys WHERE kid = ?", (kid,)) > 0


def list_eab_keys(tx: Tx) -> list[dict[str, Any]]:
    rows = tx.all("SELECT kid, endpoint, allow, account_id, identity FROM acme_eab_keys "
                  "ORDER BY created_at")
    return [_eab_key(r) for r in rows]


def pending_authz_count(tx: Tx, account_id: str, now: dt.datetime) -> int:
    """The account's authorizations still pending (the quota of `limits`)."""
    return int(tx.scalar(
        "SELECT count(*) FROM acme_authzs WHERE account_id = ? AND status = 'pending' "
        "AND expires > ?", (account_id, tx.when(now))))


def processing_challenge_count(tx: Tx, account_id: str, now: dt.datetime) -> int:
    """The account's validations in progress: challenges `processing` under its pending
    authorizations (bounded by the pending-authorization quota)."""
    return int(tx.scalar(
        "SELECT count(*) FROM acme_authzs a JOIN acme_challenges c ON c.authz_id = a.id "
        "WHERE a.account_id = ? AND a.status = 'pending' AND a.expires > ? "
        "AND c.status = 'processing'", (account_id, tx.when(now))))


def eab_key_blobs(tx: Tx) -> list[tuple[str, bytes | None]]:
    """(kid, sealed HMAC key or None) of every EAB key, for re-sealing."""
    rows = tx.all("SELECT kid, hmac_key FROM acme_eab_keys ORDER BY kid")
    return [(str(r["kid"]), None if r["hmac_key"] is None else bytes(r["hmac_key"]))
            for r in rows]


def replace_eab_key_blob(tx: Tx, kid: str, old: bytes | None, new: bytes) -> bool:
    """Store `new` as the sealed key of `kid` only if it still holds `old`."""
    if old is None:
        return tx.run("UPDATE acme_eab_keys SET hmac_key = ? WHERE kid = ? AND "
                      "hmac_key IS NULL", (new, kid)) == 1
    return tx.run("UPDATE acme_eab_keys SET hmac_key = ? WHERE kid = ? AND hmac_key = ?",
                  (new, kid, old)) == 1


def delete_secret(tx: Tx, name: str) -> None:
    tx.run("DELETE FROM acme_secrets WHERE name = ?", (name,))


def get_secret(tx: Tx, name: str) -> bytes | None:
    """The stored secret called `name`, or None (never creates it)."""
    value = tx.scalar("SELECT value FROM acme_secrets WHERE name = ?", (name,))
    return None if value is None else bytes(value)
