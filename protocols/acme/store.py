"""ACME's own tables: accounts, orders, authorizations, challenges, used nonces, EAB keys
and the endpoint secret. Certificates and requests never live here (they go through the
core's pipeline); an order only records the request id and serial the core gave back.

Exactly-once rules are conditional UPDATEs and primary keys: a nonce is accepted once
(INSERT into ``acme_used_nonces``), an order leaves ``ready`` once, an EAB key binds one
account (UPDATE ... WHERE account_id IS NULL)."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    Boolean,
    Column,
    Connection,
    DateTime,
    Index,
    LargeBinary,
    String,
    Table,
    Text,
    UniqueConstraint,
    delete,
    insert,
    select,
    update,
)

from enroll.store.db import aware
from enroll.store.schema import metadata

UTC_DT = DateTime(timezone=True)

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
)
acme_authzs = Table(
    "acme_authzs", metadata,
    Column("id", String(32), primary_key=True),
    Column("order_id", String(32), nullable=False, index=True),
    Column("account_id", String(32), nullable=False),
    Column("type", String(8), nullable=False),
    Column("value", String(255), nullable=False),
    Column("wildcard", Boolean, nullable=False),
    Column("status", String(16), nullable=False),
    Column("expires", UTC_DT, nullable=False),
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


def _account(row: Any) -> Account:
    return Account(row.id, row.endpoint, row.thumbprint, json.loads(row.jwk), row.status,
                   json.loads(row.contact), row.eab_kid, _loads(row.allow))


def _order(row: Any) -> Order:
    return Order(row.id, row.endpoint, row.account_id, row.status,
                 json.loads(row.identifiers), row.profile, row.replaces, row.request_id,
                 row.certificate_serial, _loads(row.error), aware(row.expires))  # type: ignore[arg-type]


def _authz(row: Any) -> Authz:
    return Authz(row.id, row.order_id, row.account_id, row.type, row.value,
                 bool(row.wildcard), row.status, aware(row.expires))  # type: ignore[arg-type]


def _challenge(row: Any) -> Challenge:
    return Challenge(row.id, row.authz_id, row.type, row.token, row.status,
                     aware(row.validated_at), _loads(row.error))


# -- secrets and nonces -------------------------------------------------------------------

def get_or_create_secret(conn: Connection, name: str, value: bytes) -> bytes:
    """The stored secret called `name`, creating it with `value` if absent (first worker
    to start wins; every worker reads the same one)."""
    row = conn.execute(select(acme_secrets.c.value).where(acme_secrets.c.name == name)).first()
    if row is not None:
        return bytes(row.value)
    conn.execute(insert(acme_secrets).values(name=name, value=value))
    return value


def mark_nonce_used(conn: Connection, nonce: str, expires: dt.datetime) -> None:
    """Raises IntegrityError when the nonce was already used (primary key)."""
    conn.execute(insert(acme_used_nonces).values(nonce=nonce, expires=expires))


def prune_nonces(conn: Connection, now: dt.datetime) -> None:
    conn.execute(delete(acme_used_nonces).where(acme_used_nonces.c.expires < now))


# -- accounts -----------------------------------------------------------------------------

def add_account(conn: Connection, account: Account, now: dt.datetime) -> None:
    conn.execute(insert(acme_accounts).values(
        id=account.id, endpoint=account.endpoint, thumbprint=account.thumbprint,
        jwk=json.dumps(account.jwk), status=account.status,
        contact=json.dumps(account.contact), eab_kid=account.eab_kid,
        allow=None if account.allow is None else json.dumps(account.allow), created_at=now))


def get_account(conn: Connection, account_id: str) -> Account | None:
    row = conn.execute(select(acme_accounts).where(acme_accounts.c.id == account_id)).first()
    return None if row is None else _account(row)


def find_account(conn: Connection, endpoint: str, thumbprint: str) -> Account | None:
    row = conn.execute(select(acme_accounts).where(
        acme_accounts.c.endpoint == endpoint,
        acme_accounts.c.thumbprint == thumbprint)).first()
    return None if row is None else _account(row)


def update_account(conn: Connection, account_id: str, **values: Any) -> bool:
    if "contact" in values:
        values["contact"] = json.dumps(values["contact"])
    if "jwk" in values:
        values["jwk"] = json.dumps(values["jwk"])
    result = conn.execute(update(acme_accounts).where(
        acme_accounts.c.id == account_id, acme_accounts.c.status == "valid").values(**values))
    return bool(result.rowcount)


# -- orders, authorizations, challenges ---------------------------------------------------

def add_order(conn: Connection, order: Order, now: dt.datetime) -> None:
    conn.execute(insert(acme_orders).values(
        id=order.id, endpoint=order.endpoint, account_id=order.account_id,
        status=order.status, identifiers=json.dumps(order.identifiers),
        profile=order.profile, replaces=order.replaces, request_id=None,
        certificate_serial=None, error=None, expires=order.expires, created_at=now))


def add_authz(conn: Connection, authz: Authz, challenges: list[Challenge]) -> None:
    conn.execute(insert(acme_authzs).values(
        id=authz.id, order_id=authz.order_id, account_id=authz.account_id, type=authz.type,
        value=authz.value, wildcard=authz.wildcard, status=authz.status,
        expires=authz.expires))
    conn.execute(insert(acme_challenges), [
        {"id": c.id, "authz_id": c.authz_id, "type": c.type, "token": c.token,
         "status": c.status, "validated_at": None, "error": None} for c in challenges])


def get_order(conn: Connection, order_id: str) -> Order | None:
    row = conn.execute(select(acme_orders).where(acme_orders.c.id == order_id)).first()
    return None if row is None else _order(row)


def order_authzs(conn: Connection, order_id: str) -> list[Authz]:
    rows = conn.execute(select(acme_authzs).where(acme_authzs.c.order_id == order_id)
                        .order_by(acme_authzs.c.id))
    return [_authz(r) for r in rows]


def account_orders(conn: Connection, account_id: str, limit: int = 100) -> list[str]:
    rows = conn.execute(select(acme_orders.c.id).where(acme_orders.c.account_id == account_id)
                        .order_by(acme_orders.c.created_at.desc()).limit(limit))
    return [r.id for r in rows]


def get_authz(conn: Connection, authz_id: str) -> Authz | None:
    row = conn.execute(select(acme_authzs).where(acme_authzs.c.id == authz_id)).first()
    return None if row is None else _authz(row)


def authz_challenges(conn: Connection, authz_id: str) -> list[Challenge]:
    rows = conn.execute(select(acme_challenges).where(acme_challenges.c.authz_id == authz_id)
                        .order_by(acme_challenges.c.type))
    return [_challenge(r) for r in rows]


def get_challenge(conn: Connection, challenge_id: str) -> Challenge | None:
    row = conn.execute(select(acme_challenges).where(acme_challenges.c.id == challenge_id)).first()
    return None if row is None else _challenge(row)


def set_order(conn: Connection, order_id: str, expect: str | tuple[str, ...],
              **values: Any) -> bool:
    """Conditional transition: only when the order is in `expect` (RFC 8555 §7.1.6)."""
    expected = (expect,) if isinstance(expect, str) else expect
    if "error" in values and values["error"] is not None:
        values["error"] = json.dumps(values["error"])
    result = conn.execute(update(acme_orders).where(
        acme_orders.c.id == order_id, acme_orders.c.status.in_(expected)).values(**values))
    return bool(result.rowcount)


def set_authz(conn: Connection, authz_id: str, expect: str, status: str) -> bool:
    result = conn.execute(update(acme_authzs).where(
        acme_authzs.c.id == authz_id, acme_authzs.c.status == expect).values(status=status))
    return bool(result.rowcount)


def set_challenge(conn: Connection, challenge_id: str, expect: str, status: str,
                  validated_at: dt.datetime | None = None,
                  error: dict[str, Any] | None = None) -> bool:
    result = conn.execute(update(acme_challenges).where(
        acme_challenges.c.id == challenge_id, acme_challenges.c.status == expect).values(
        status=status, validated_at=validated_at,
        error=None if error is None else json.dumps(error)))
    return bool(result.rowcount)


# -- EAB keys -----------------------------------------------------------------------------

def add_eab_key(conn: Connection, kid: str, endpoint: str, allow: list[str] | None,
                now: dt.datetime) -> None:
    conn.execute(insert(acme_eab_keys).values(
        kid=kid, endpoint=endpoint, allow=None if allow is None else json.dumps(allow),
        account_id=None, created_at=now, used_at=None))


def get_eab_key(conn: Connection, kid: str) -> dict[str, Any] | None:
    row = conn.execute(select(acme_eab_keys).where(acme_eab_keys.c.kid == kid)).first()
    if row is None:
        return None
    return {"kid": row.kid, "endpoint": row.endpoint, "allow": _loads(row.allow),
            "account_id": row.account_id}


def bind_eab_key(conn: Connection, kid: str, account_id: str, now: dt.datetime) -> bool:
    """Usable once: only an unbound key binds (RFC 8555 §7.3.4)."""
    result = conn.execute(update(acme_eab_keys).where(
        acme_eab_keys.c.kid == kid, acme_eab_keys.c.account_id.is_(None)).values(
        account_id=account_id, used_at=now))
    return bool(result.rowcount)


def list_eab_keys(conn: Connection) -> list[dict[str, Any]]:
    rows = conn.execute(select(acme_eab_keys).order_by(acme_eab_keys.c.created_at))
    return [{"kid": r.kid, "endpoint": r.endpoint, "allow": _loads(r.allow),
             "account_id": r.account_id} for r in rows]
