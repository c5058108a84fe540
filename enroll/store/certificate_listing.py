"""`enroll certs list`'s read (table ``certificates``): one page of certificates by the
inventory's filters (renewal state, search) and a sort, as one statement that reads an
index in order and stops at the page.

The state condition is the inventory's (`enroll.store.inventory.state_condition`) over
the certificate's own columns; a certificate is ``migrated`` when the one it replaces
was issued over another protocol. A search by name goes through the inventory's folded
``identities.name`` index.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from enroll.store.inventory import WindowGroup, prefix_condition, state_condition
from enroll.store.schema import certificates
from enroll.store.transaction import Row, Tx

SORT_COLUMNS = {"issued": "created_at", "not_after": "not_after", "serial": "serial"}
"""Sort name -> column; ties are broken by serial (the keyset's second key)."""
CA_PROTOCOL = "ca"

COLUMNS = ("serial", "ca", "request_id", "status", "profile", "protocol", "requester",
           "subject", "sans", "not_before", "not_after", "revoked_at", "revocation_reason",
           "replaces", "der", "identity", "superseded_by", "endpoint", "device_id", "link",
           "created_at")

MIGRATED = ("replaces IS NOT NULL AND EXISTS (SELECT 1 FROM certificates prior "
            "WHERE prior.serial = certificates.replaces "
            "AND prior.protocol <> certificates.protocol)")
"""The certificate renews one issued over another protocol (a primary-key lookup)."""


@dataclass(frozen=True, slots=True)
class Query:
    status: str | None = None
    ca: str | None = None
    protocol: str | None = None
    profile: str | None = None
    endpoint: str | None = None
    identity: str | None = None
    state: str | None = None
    expiring_before: dt.datetime | None = None
    prefix: str | None = None
    """Folded prefix of the identity's value (through ``identities.name``)."""
    pattern: str | None = None
    """A LIKE pattern on the folded identity value (escaped with backslash)."""
    exact: str | None = None
    """An exact identity or device id."""
    serial: str | None = None
    """Exactly this certificate (hex)."""
    include_ca: bool = False
    sort: str = "issued"
    descending: bool = True
    after: tuple[Any, str] | None = None
    """Keyset: the (sort value, serial) of the last row of the previous page."""
    limit: int = 100
    offset: int = 0


def page(tx: Tx, q: Query, groups: Sequence[WindowGroup], now: dt.datetime) -> list[Row]:
    """Up to ``q.limit`` certificate rows (decoded, plus ``replaced_protocol``: that of
    the certificate each replaces) matching `q`, in its order."""
    column = SORT_COLUMNS.get(q.sort)
    if column is None:
        raise ValueError(f"unknown sort {q.sort!r}")
    where: list[str] = [] if q.include_ca else [f"protocol != '{CA_PROTOCOL}'"]
    params: list[Any] = []
    for name in ("status", "ca", "protocol", "profile", "endpoint", "identity"):
        value = getattr(q, name)
        if value is not None:
            where.append(f"{name} = ?")
            params.append(value)
    if q.expiring_before is not None:
        where.append("status = 'valid' AND not_after > ? AND not_after <= ?")
        params += [tx.when(now), tx.when(q.expiring_before)]
    if q.state is not None:
        cond, p = state_condition(tx, q.state, groups, now, MIGRATED)
        where.append(cond)
        params += p
    # The search as the serials it can match, one indexed select each: as an OR of
    # terms, PostgreSQL guessed half the table matched and read it in the listing's
    # order (5 s on 1,000,000 certificates); as a set of serials it reads just those.
    search: list[str] = []
    by_name = "SELECT serial FROM certificates WHERE identity IN (SELECT identity " \
              "FROM identities WHERE "
    if q.prefix:
        cond, p = prefix_condition(tx, q.prefix)
        search.append(f"{by_name}{cond})")
        params += p
    if q.pattern:
        search.append(f"{by_name}name LIKE ? ESCAPE '\\')")
        params.append(q.pattern)
    if q.exact:
        search += ["SELECT serial FROM certificates WHERE identity = ?",
                   "SELECT serial FROM certificates WHERE device_id = ?"]
        params += [q.exact, q.exact]
    if q.serial:
        search.append("SELECT serial FROM certificates WHERE serial = ?")
        params.append(q.serial)
    if search:
        where.append(f"serial IN ({' UNION ALL '.join(search)})")
    direction = "DESC" if q.descending else "ASC"
    op = "<" if q.descending else ">"
    if q.after is not None:
        value, serial = q.after
        if column == "serial":
            where.append(f"serial {op} ?")
            params.append(serial)
        else:
            bound = tx.when(value)
            # The first term alone is an index range; the second breaks ties.
            where.append(f"{column} {op}= ? AND ({column} {op} ? OR serial {op} ?)")
            params += [bound, bound, serial]
    order = (f"serial {direction}" if column == "serial"
             else f"{column} {direction}, serial {direction}")
    keys = ("SELECT serial FROM certificates "  # noqa: S608 - fixed column names
            + (f"WHERE {' AND '.join(where)} " if where else "")
            + f"ORDER BY {order} LIMIT {int(q.limit)} OFFSET {int(q.offset)}")
    selected = ", ".join(f"c.{name}" for name in COLUMNS)
    qualified = ", ".join(f"c.{part}" for part in order.split(", "))
    sql = (f"SELECT {selected}, prior.protocol AS replaced_protocol "  # noqa: S608
           "FROM certificates c LEFT JOIN certificates prior ON prior.serial = c.replaces "
           f"WHERE c.serial IN ({keys}) ORDER BY {qualified}")
    return tx.all(sql, params, certificates)
