"""The inventory's reads (table ``identities``): one page of identities by filters,
state and a sort, as one statement that reads an index in order and stops at the page.

A state filter is SQL built from each profile's window (`enroll.renewal_states.
WindowTerms`) at query time, so it follows the configuration as it is now. The same
text runs on SQLite and PostgreSQL: timestamps are compared as bound values, and where a
window depends on the lifetime the two dates are compared as epoch seconds.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from enroll.renewal_states import WindowTerms
from enroll.store.schema import identities
from enroll.store.transaction import Row, Tx

SORT_COLUMNS = ("not_after", "last_issued", "identity")
COLUMNS = ("identity, name, serial, status, protocol, endpoint, profile, ca, not_before, "
           "not_after, requester, device_id, first_issued, last_issued, certificates, "
           "migrated_from")


@dataclass(frozen=True, slots=True)
class WindowGroup:
    """Profiles sharing one window: `profiles` by name, or None for every profile not
    named by another group (those no longer configured take the default window)."""

    profiles: tuple[str, ...] | None
    terms: WindowTerms


@dataclass(frozen=True, slots=True)
class Query:
    protocol: str | None = None
    profile: str | None = None
    ca: str | None = None
    endpoint: str | None = None
    state: str | None = None
    expiring_before: dt.datetime | None = None
    prefix: str | None = None
    """Folded name prefix."""
    pattern: str | None = None
    """A LIKE pattern on the folded name (already escaped with backslash)."""
    exact: str | None = None
    """An exact identity or device id."""
    serial: str | None = None
    """Any certificate's serial (hex): its identity."""
    sort: str = "not_after"
    descending: bool = False
    after: tuple[Any, str] | None = None
    """Keyset: the (sort value, identity) of the last row of the previous page."""
    limit: int = 100
    offset: int = 0


def _epoch(tx: Tx, column: str) -> str:
    if tx.sqlite:
        return f"((julianday({column}) - 2440587.5) * 86400.0)"
    return f"CAST(EXTRACT(EPOCH FROM {column}) AS DOUBLE PRECISION)"


def _reached(tx: Tx, terms: WindowTerms, now: dt.datetime) -> tuple[str, list[Any]]:
    """SQL true when `now` is at or past ``not_after - min(candidates)``."""
    parts: list[str] = []
    params: list[Any] = []
    for seconds in terms.seconds:
        parts.append("not_after <= ?")
        params.append(tx.when(now + dt.timedelta(seconds=seconds)))
    for fraction in terms.fractions:
        if fraction >= 1.0:
            parts.append("not_before <= ?")
            params.append(tx.when(now))
        else:
            # not_after - f * (not_after - not_before) <= now
            parts.append(f"(? * {_epoch(tx, 'not_after')} + ? * {_epoch(tx, 'not_before')}"
                         ") <= ?")
            params += [1.0 - fraction, fraction, now.timestamp()]
    return "(" + " AND ".join(parts or ["1 = 1"]) + ")", params


MIGRATED = "migrated_from IS NOT NULL"
"""An identity that moved from another protocol (`enroll.renewal_states.state_of`)."""


def _window_state(tx: Tx, state: str, terms: WindowTerms, now: dt.datetime, migrated: str
                  ) -> tuple[str, list[Any]]:
    opened, p_open = _reached(tx, terms, now)
    closed, p_close = _reached(tx, terms.halved(), now)
    if state == "overdue":
        return closed, p_close
    if state == "due":
        return f"{opened} AND NOT {closed}", [*p_open, *p_close]
    flag = f"({migrated})" if state == "migrated" else f"NOT ({migrated})"
    return f"NOT {opened} AND {flag}", p_open


def state_condition(tx: Tx, state: str, groups: Sequence[WindowGroup], now: dt.datetime,
                    migrated: str = MIGRATED) -> tuple[str, list[Any]]:
    """SQL (and its parameters) true for the rows in `state` at `now`, over columns
    ``status`` ('valid' or 'revoked'), ``not_before``, ``not_after`` and ``profile``;
    `migrated` is the SQL true when the row moved from another protocol. The same
    condition for the inventory (`identities`) and `enroll certs list`
    (`enroll.store.certificate_listing`). The profile terms
    carry a unary ``+`` so that SQLite reads one index in the listing's order and stops
    at the page, rather than gathering every match of each profile and sorting them."""
    if state == "revoked":
        return "status = 'revoked'", []
    if state == "expired":
        return "status = 'valid' AND not_after <= ?", [tx.when(now)]
    named = [p for g in groups if g.profiles is not None for p in g.profiles]
    column = "+profile" if tx.sqlite else "profile"
    alternatives: list[str] = []
    params: list[Any] = []
    for group in groups:
        cond, p = _window_state(tx, state, group.terms, now, migrated)
        if group.profiles is None:
            if named:
                marks = ", ".join("?" for _ in named)
                alternatives.append(f"({column} NOT IN ({marks}) AND {cond})")
                params += [*named, *p]
            else:
                alternatives.append(f"({cond})")
                params += p
        elif group.profiles:
            marks = ", ".join("?" for _ in group.profiles)
            alternatives.append(f"({column} IN ({marks}) AND {cond})")
            params += [*group.profiles, *p]
    live = "status = 'valid' AND not_after > ?"
    return f"{live} AND ({' OR '.join(alternatives or ['1 = 0'])})", [tx.when(now), *params]


def page(tx: Tx, q: Query, groups: Sequence[WindowGroup], now: dt.datetime) -> list[Row]:
    """Up to ``q.limit`` rows (decoded) of the identities matching `q`, in its order."""
    if q.sort not in SORT_COLUMNS:
        raise ValueError(f"unknown sort {q.sort!r}")
    where: list[str] = []
    params: list[Any] = []
    for column in ("protocol", "profile", "ca", "endpoint"):
        value = getattr(q, column)
        if value is not None:
            where.append(f"{column} = ?")
            params.append(value)
    if q.expiring_before is not None:
        where.append("status = 'valid' AND not_after > ? AND not_after <= ?")
        params += [tx.when(now), tx.when(q.expiring_before)]
    if q.state is not None:
        cond, p = state_condition(tx, q.state, groups, now)
        where.append(cond)
        params += p
    search: list[str] = []
    if q.prefix:
        cond, p = prefix_condition(tx, q.prefix)
        search.append(cond)
        params += p
    if q.pattern:
        if tx.sqlite:
            # A pattern reads every name: from the (name) index alone, not row by row
            # in the listing's order (0.1 s against 2 s for 564,000 identities); a
            # pattern that matches most of them sorts them all.
            search.append("rowid IN (SELECT rowid FROM identities WHERE name LIKE ? "
                          "ESCAPE '\\')")
        else:
            search.append("name LIKE ? ESCAPE '\\'")
        params.append(q.pattern)
    if q.exact:
        search.append("identity = ? OR device_id = ?")
        params += [q.exact, q.exact]
    if q.serial:
        search.append("identity = (SELECT identity FROM certificates WHERE serial = ?)")
        params.append(q.serial)
    if search:
        where.append("(" + " OR ".join(search) + ")")
    direction = "DESC" if q.descending else "ASC"
    if q.after is not None:
        value, identity = q.after
        op = "<" if q.descending else ">"
        if q.sort == "identity":
            where.append(f"identity {op} ?")
            params.append(identity)
        else:
            bound = tx.when(value)
            # The first term alone is an index range; the second breaks ties.
            where.append(f"{q.sort} {op}= ? AND ({q.sort} {op} ? OR identity {op} ?)")
            params += [bound, bound, identity]
    order = (f"identity {direction}" if q.sort == "identity"
             else f"{q.sort} {direction}, identity {direction}")
    # The page's keys first, then its rows: a state filter then reads only the
    # covering ix_identities_status_not_after (an index-only scan, no row fetched for
    # the rows it skips), whichever index the planner would pick for whole rows.
    keys = ("SELECT identity FROM identities "  # noqa: S608 - fixed column names
            + (f"WHERE {' AND '.join(where)} " if where else "")
            + f"ORDER BY {order} LIMIT {int(q.limit)} OFFSET {int(q.offset)}")
    sql = (f"SELECT {COLUMNS} FROM identities "  # noqa: S608 - fixed column names
           f"WHERE identity IN ({keys}) ORDER BY {order}")
    return tx.all(sql, params, identities)


def prefix_condition(tx: Tx, prefix: str) -> tuple[str, list[Any]]:
    """SQL on ``identities.name`` true for names starting with `prefix` (folded), read
    as a range of ``ix_identities_name``."""
    if tx.sqlite and ord(prefix[-1]) < 0x10FFFF:
        # BINARY collation: a range of the index is exactly the prefix.
        after = ord(prefix[-1]) + 1
        after = 0xE000 if 0xD800 <= after <= 0xDFFF else after  # no surrogates
        return "(name >= ? AND name < ?)", [prefix, prefix[:-1] + chr(after)]
    # text_pattern_ops on PostgreSQL
    return "name LIKE ? ESCAPE '\\'", [_escape(prefix) + "%"]


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
