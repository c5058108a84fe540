"""`enroll certs list`: every certificate (not one per identity) by the inventory's
filters, each with its renewal state, sorted and paginated like the inventory.

The state is `enroll.renewal_states.state_of` on the certificate itself, against its
profile's window as configured now; the state filter is the inventory's SQL
(`enroll.store.inventory.state_condition`). Search, bounds and cursors are the
inventory's (`enroll.inventory`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass

from enroll.errors import MalformedInput
from enroll.inventory import (
    MAX_LIMIT,
    MAX_OFFSET,
    decode_cursor,
    encode_cursor,
    fleet_of,
    search_terms,
    window_groups,
)
from enroll.model import CertificateRecord
from enroll.profiles import Profile
from enroll.renewal_states import STATES, WindowTerms, state_of
from enroll.store import certificate_listing as store
from enroll.store.db import Database
from enroll.store.inventory import WindowGroup
from enroll.store.queries import _certificate

SORTS = tuple(store.SORT_COLUMNS)


@dataclass(frozen=True, slots=True)
class Filters:
    status: str | None = None
    """``valid`` or ``revoked`` (as stored)."""
    ca: str | None = None
    protocol: str | None = None
    profile: str | None = None
    endpoint: str | None = None
    identity: str | None = None
    """Exactly this identity."""
    state: str | None = None
    """One of `enroll.renewal_states.STATES`, of the certificate itself."""
    expiring_within: int | None = None
    """Seconds: unrevoked, unexpired and expiring within this."""
    search: str | None = None
    """As the inventory's: a prefix of the identity's value (case-insensitive), an
    exact identity or device id, or with ``*`` a wildcard pattern; and a serial: that
    certificate."""
    include_ca: bool = False


@dataclass(frozen=True, slots=True)
class Listed:
    record: CertificateRecord
    state: str
    issued: dt.datetime
    """When the engine stored it (the ``issued`` sort)."""
    migrated_from: str | None
    """The protocol of the certificate it replaces, when that differs."""


@dataclass(frozen=True, slots=True)
class Page:
    items: list[Listed]
    next: str | None
    """The cursor of the next page (pass it as ``after``), None on the last one."""


def default_sort(filters: Filters) -> tuple[str, bool]:
    """Newest first; soonest expiry first when filtering by expiry or state (the rows
    those filters keep are read in expiry order from ``ix_certificates_status_not_after``)."""
    if filters.expiring_within is not None or filters.state is not None:
        return "not_after", False
    return "issued", True


def list_certificates(db: Database, profiles: Mapping[str, Profile], filters: Filters, *,
                      now: dt.datetime, sort: str | None = None,
                      descending: bool | None = None, limit: int = 100, offset: int = 0,
                      after: str | None = None) -> Page:
    """One page of certificates. `sort` None: `default_sort`; `descending` None: that
    sort's default direction (ascending for a named sort). Raises `MalformedInput` for a
    bad state, status, sort, limit, offset, search or cursor."""
    if sort is None:
        sort, default_desc = default_sort(filters)
        descending = default_desc if descending is None else descending
    if sort not in SORTS:
        raise MalformedInput(f"sort must be one of {', '.join(SORTS)}")
    descending = bool(descending)
    if filters.state is not None and filters.state not in STATES:
        raise MalformedInput(f"state must be one of {', '.join(STATES)}")
    if filters.status is not None and filters.status not in ("valid", "revoked"):
        raise MalformedInput("status must be valid or revoked")
    if not 1 <= limit <= MAX_LIMIT:
        raise MalformedInput(f"limit must be between 1 and {MAX_LIMIT}")
    if not 0 <= offset <= MAX_OFFSET:
        raise MalformedInput(f"offset must be between 0 and {MAX_OFFSET} (use the cursor)")
    if filters.expiring_within is not None and filters.expiring_within < 0:
        raise MalformedInput("expiring within must not be negative")
    keyset = (decode_cursor(after, sort, descending, keyless=("serial",))
              if after is not None else None)
    terms = search_terms(filters.search)
    query = store.Query(
        status=filters.status, ca=filters.ca, protocol=filters.protocol,
        profile=filters.profile, endpoint=filters.endpoint, identity=filters.identity,
        state=filters.state, include_ca=filters.include_ca,
        expiring_before=(now + dt.timedelta(seconds=filters.expiring_within)
                         if filters.expiring_within is not None else None),
        sort=sort, descending=descending, after=keyset, limit=limit + 1,
        offset=0 if keyset is not None else offset, **terms)
    groups = window_groups(profiles)
    if filters.profile is not None:  # only that profile's window matters
        groups = [WindowGroup(None, WindowTerms.of(fleet_of(profiles, filters.profile)))]
    with db.read() as tx:
        rows = store.page(tx, query, groups, now)
    more = len(rows) > limit
    items = []
    for row in rows[:limit]:
        record = _certificate(row)
        moved = row["replaced_protocol"]
        migrated_from = moved if moved and moved != record.protocol else None
        state = state_of(fleet_of(profiles, record.profile), status=record.status.value,
                         not_before=record.not_before, not_after=record.not_after,
                         migrated_from=migrated_from, now=now)
        items.append(Listed(record, state, row["created_at"], migrated_from))
    cursor = None
    if more and items:
        last = items[-1]
        value = {"issued": last.issued, "not_after": last.record.not_after}.get(sort)
        cursor = encode_cursor(sort, descending, value, last.record.serial_hex)
    return Page(items, cursor)
