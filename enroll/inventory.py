"""The inventory: one row per identity (device, user or service), whatever protocol
issued its certificates, with the state of its current certificate.

`list_identities` answers one page of filters (protocol, profile, CA, endpoint, state,
expiring within, a search) in one of three orders, paginated by offset or by a keyset
cursor (`Page.next`), which stays fast on any page. States come from each profile's
renewal window as configured now (`enroll.renewal_states`); the filter runs in SQL.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from enroll.errors import MalformedInput
from enroll.profile_fleet import Fleet
from enroll.profiles import Profile
from enroll.renewal_states import DEFAULT_FLEET, STATES, WindowTerms, state_of
from enroll.store import inventory as store
from enroll.store.columns import utc
from enroll.store.db import Database
from enroll.store.inventory import SORT_COLUMNS, WindowGroup

SORTS = SORT_COLUMNS
MAX_LIMIT = 1000
MAX_OFFSET = 100_000
"""Past this, use the cursor: an offset is read and thrown away row by row."""
MAX_SEARCH = 256
_HEX = re.compile(r"(?:0x)?[0-9a-f:]{1,64}")


@dataclass(frozen=True, slots=True)
class Filters:
    protocol: str | None = None
    profile: str | None = None
    ca: str | None = None
    endpoint: str | None = None
    state: str | None = None
    """One of `enroll.renewal_states.STATES`."""
    expiring_within: int | None = None
    """Seconds: live (not revoked, not expired) and expiring within this."""
    search: str | None = None
    """A prefix of the identity's value (case-insensitive), an exact identity, device id
    or serial of any of its certificates; with ``*`` a wildcard pattern on the value
    (``*.iot.example.com``), which may read the whole table."""


@dataclass(frozen=True, slots=True)
class InventoryRow:
    identity: str
    serial: str
    """The current certificate: the newest live one, else the newest."""
    protocol: str
    endpoint: str
    profile: str
    ca: str
    not_before: dt.datetime
    not_after: dt.datetime
    state: str
    first_issued: dt.datetime
    last_issued: dt.datetime
    certificates: int
    """How many certificates the identity has had."""
    requester: str
    device_id: str | None
    migrated_from: str | None

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON values (times ISO 8601, seconds)."""
        out: dict[str, Any] = {}
        for name in self.__slots__:
            value = getattr(self, name)
            out[name] = (value.isoformat(timespec="seconds")
                         if isinstance(value, dt.datetime) else value)
        return out


@dataclass(frozen=True, slots=True)
class Page:
    items: list[InventoryRow]
    next: str | None
    """The cursor of the next page (pass it as ``after``), None on the last one."""


def fleet_of(profiles: Mapping[str, Profile], name: str) -> Fleet:
    """The profile's fleet settings, or the default window for a profile no longer
    configured."""
    profile = profiles.get(name)
    return profile.fleet if profile is not None else DEFAULT_FLEET


def window_groups(profiles: Mapping[str, Profile]) -> list[WindowGroup]:
    """Configured profiles grouped by window; the default group also covers every
    profile no longer configured."""
    by_terms: dict[WindowTerms, list[str]] = {}
    for name, profile in sorted(profiles.items()):
        by_terms.setdefault(WindowTerms.of(profile.fleet), []).append(name)
    default = WindowTerms.of(DEFAULT_FLEET)
    groups = [WindowGroup(tuple(names), terms) for terms, names in by_terms.items()
              if terms != default]
    return [*groups, WindowGroup(None, default)]


def list_identities(db: Database, profiles: Mapping[str, Profile], filters: Filters, *,
                    now: dt.datetime, sort: str = "not_after", descending: bool = False,
                    limit: int = 100, offset: int = 0, after: str | None = None) -> Page:
    """One page of the inventory. Raises `MalformedInput` for a bad state, sort,
    limit, offset, search or cursor."""
    if sort not in SORTS:
        raise MalformedInput(f"sort must be one of {', '.join(SORTS)}")
    if filters.state is not None and filters.state not in STATES:
        raise MalformedInput(f"state must be one of {', '.join(STATES)}")
    if not 1 <= limit <= MAX_LIMIT:
        raise MalformedInput(f"limit must be between 1 and {MAX_LIMIT}")
    if not 0 <= offset <= MAX_OFFSET:
        raise MalformedInput(f"offset must be between 0 and {MAX_OFFSET} (use the cursor)")
    if filters.expiring_within is not None and filters.expiring_within < 0:
        raise MalformedInput("expiring within must not be negative")
    keyset = decode_cursor(after, sort, descending) if after is not None else None
    query = store.Query(
        protocol=filters.protocol, profile=filters.profile, ca=filters.ca,
        endpoint=filters.endpoint, state=filters.state,
        expiring_before=(now + dt.timedelta(seconds=filters.expiring_within)
                         if filters.expiring_within is not None else None),
        sort=sort, descending=descending, after=keyset, limit=limit + 1,
        offset=0 if keyset is not None else offset, **search_terms(filters.search))
    groups = window_groups(profiles)
    if filters.profile is not None:  # only that profile's window matters
        fleet = fleet_of(profiles, filters.profile)
        groups = [WindowGroup(None, WindowTerms.of(fleet))]
    with db.read() as tx:
        rows = store.page(tx, query, groups, now)
    more = len(rows) > limit
    items = [_row(r, profiles, now) for r in rows[:limit]]
    cursor = None
    if more and items:
        last = items[-1]
        cursor = encode_cursor(sort, descending, getattr(last, sort), last.identity)
    return Page(items, cursor)


def search_terms(text: str | None) -> dict[str, Any]:
    """The search text as the stores' query terms: ``prefix`` and ``exact`` (and
    ``serial`` when it reads as hex), or a wildcard ``pattern``. Raises `MalformedInput`
    for text too long or not valid text."""
    if text is None or not text.strip():
        return {}
    text = text.strip()
    if len(text) > MAX_SEARCH:
        raise MalformedInput(f"search text longer than {MAX_SEARCH} characters")
    try:
        text.encode()
    except UnicodeEncodeError as exc:  # a lone surrogate (undecodable argv bytes)
        raise MalformedInput("search text is not valid text") from exc
    folded = text.lower()
    if "*" in folded:
        pattern = store._escape(folded).replace("*", "%")
        return {"pattern": pattern}
    found: dict[str, Any] = {"prefix": folded, "exact": text}
    if _HEX.fullmatch(folded):
        serial = folded.removeprefix("0x").replace(":", "").lstrip("0")
        if serial:
            found["serial"] = serial
    return found


def _row(r: Mapping[str, Any], profiles: Mapping[str, Profile], now: dt.datetime
         ) -> InventoryRow:
    state = state_of(fleet_of(profiles, r["profile"]), status=r["status"],
                     not_before=r["not_before"], not_after=r["not_after"],
                     migrated_from=r["migrated_from"], now=now)
    return InventoryRow(
        identity=r["identity"], serial=r["serial"], protocol=r["protocol"],
        endpoint=r["endpoint"], profile=r["profile"], ca=r["ca"],
        not_before=r["not_before"], not_after=r["not_after"], state=state,
        first_issued=r["first_issued"], last_issued=r["last_issued"],
        certificates=int(r["certificates"]), requester=r["requester"],
        device_id=r["device_id"], migrated_from=r["migrated_from"])


# -- cursors ------------------------------------------------------------------------------

def encode_cursor(sort: str, descending: bool, value: Any, identity: str) -> str:
    """An opaque token: the sort it belongs to and the last row's key."""
    key = value.isoformat() if isinstance(value, dt.datetime) else None
    raw = json.dumps([sort, descending, key, identity], separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(token: str, sort: str, descending: bool,
                  keyless: tuple[str, ...] = ("identity",)) -> tuple[Any, str]:
    """(sort value, identity) from a cursor made for the same sort and direction; a sort
    in `keyless` is by the second key alone (its value is None)."""
    bad = MalformedInput("not a cursor of this listing (same sort and direction)")
    if len(token) > 2048:
        raise bad
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        made_for, desc, key, identity = json.loads(raw)
    except (ValueError, TypeError, binascii.Error) as exc:
        raise bad from exc
    if made_for != sort or desc is not descending or not isinstance(identity, str):
        raise bad
    if sort in keyless:
        return None, identity
    try:
        value = utc(key)
    except (TypeError, ValueError) as exc:
        raise bad from exc
    if value is None:
        raise bad
    return value, identity
