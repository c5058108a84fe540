"""How far each profile's migration has come, read from the inventory (``identities``:
one row per identity, its current certificate's protocol, endpoint and expiry).

For every profile with a ``[profiles.X.migration]``, over its *live* identities (current
certificate valid and not expired):

- per door (protocol, endpoint), how many identities hold their current certificate
  from it, and whether it is the migration's target;
- the share on the target door, in percent;
- *stragglers*: identities whose current certificate comes from another door, soonest
  expiry first (what the MDM team must push);
- the projected completion: the latest expiry among the stragglers' certificates. After
  the policy's date a straggler's next renewal can only go to the target (``refuse``) or
  lasts ``short_validity`` (``short``), so by then every straggler has moved or expired;
  under ``warn`` stragglers may renew over the old door, and the date is a lower bound;
- *migrated*: identities now on the target that came from another door (the inventory's
  ``migrated_from``, or a certificate on the target that replaces one from elsewhere);
- *renewed early*: of those, the ones whose move replaced a certificate before that
  certificate's renewal window opened (`enroll.profile_fleet.Fleet.renewal_window`).

A source endpoint's policy (``[<protocol>.endpoints.<label>.migration]``) is reported
on its own (`endpoint_status`): its stragglers are the live identities, of any profile,
whose current certificate came through that endpoint; its migrated ones, the live
identities on its target whose move replaced a certificate from that endpoint.

Queries only; `enroll.cli.migration` prints them.
"""

# ruff: noqa: S608 - the SQL below interpolates only constants (conditions, ASC/DESC,
# an int limit); every value is a bound parameter.

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from enroll.errors import NotFound
from enroll.profile_fleet import Migration
from enroll.profiles import Profile
from enroll.store.schema import certificates, identities
from enroll.store.transaction import Tx

LIVE = ("profile = ? AND status = 'valid' AND not_after > ? "
        "AND protocol IN ('acme', 'est', 'scep')")
"""Live identities enrolled through a door (`enroll.migration_rules.DOORS`): not enroll's
own certificates (the SCEP RA's, the HTTPS listener's)."""


@dataclass(frozen=True, slots=True)
class Door:
    protocol: str
    endpoint: str
    identities: int
    target: bool


@dataclass(frozen=True, slots=True)
class Straggler:
    identity: str
    device_id: str | None
    protocol: str
    endpoint: str
    serial: str
    not_after: dt.datetime


@dataclass(frozen=True, slots=True)
class ProfileStatus:
    profile: str
    migration: Migration
    doors: tuple[Door, ...]
    migrated: int
    renewed_early: int
    first_straggler_expiry: dt.datetime | None
    projected_completion: dt.datetime | None
    """Latest expiry among the stragglers' certificates (None: no straggler left)."""

    @property
    def identities(self) -> int:
        return sum(d.identities for d in self.doors)

    @property
    def on_target(self) -> int:
        return sum(d.identities for d in self.doors if d.target)

    @property
    def stragglers(self) -> int:
        return self.identities - self.on_target

    @property
    def share_migrated(self) -> float | None:
        """Percent of live identities on the target door (None: no live identity)."""
        return round(100 * self.on_target / self.identities, 1) if self.identities else None


def on_target(migration: Migration, protocol: str, endpoint: str | None) -> bool:
    return protocol == migration.to and (migration.endpoint is None
                                         or endpoint == migration.endpoint)


def migrating(profiles: dict[str, Profile], only: str | None = None) -> list[Profile]:
    """The profiles with a migration policy (`only`: that one, or `NotFound`)."""
    if only is not None:
        profile = profiles.get(only)
        if profile is None:
            raise NotFound(f"no profile named {only!r}")
        if profile.fleet.migration is None:
            raise NotFound(f"profile {only!r} has no migration policy")
        return [profile]
    return [p for p in profiles.values() if p.fleet.migration is not None]


def status(tx: Tx, profiles: dict[str, Profile], now: dt.datetime,
           only: str | None = None) -> list[ProfileStatus]:
    """Where each migrating profile (or `only`) stands at `now`."""
    return [_status(tx, p, profiles, now) for p in migrating(profiles, only)]


def _off_target(migration: Migration) -> tuple[str, tuple[Any, ...]]:
    if migration.endpoint is None:
        return "protocol <> ?", (migration.to,)
    return "NOT (protocol = ? AND endpoint = ?)", (migration.to, migration.endpoint)


def _status(tx: Tx, profile: Profile, profiles: dict[str, Profile],
            now: dt.datetime) -> ProfileStatus:
    migration = profile.fleet.migration
    assert migration is not None
    live = (profile.name, tx.when(now))
    rows = tx.all(f"SELECT protocol, endpoint, count(*) AS n FROM identities WHERE {LIVE} "
                  "GROUP BY protocol, endpoint ORDER BY protocol, endpoint", live)
    doors = tuple(Door(r["protocol"], r["endpoint"], int(r["n"]),
                       on_target(migration, r["protocol"], r["endpoint"])) for r in rows)
    off, off_params = _off_target(migration)
    expiries = []
    for order in ("ASC", "DESC"):
        row = tx.one(f"SELECT not_after FROM identities WHERE {LIVE} AND {off} "
                     f"ORDER BY not_after {order} LIMIT 1", (*live, *off_params), identities)
        expiries.append(row["not_after"] if row is not None else None)
    migrated, early = _moves(tx, profile, profiles, migration, now)
    return ProfileStatus(profile=profile.name, migration=migration, doors=doors,
                         migrated=migrated, renewed_early=early,
                         first_straggler_expiry=expiries[0], projected_completion=expiries[1])


def _moves(tx: Tx, profile: Profile, profiles: dict[str, Profile], migration: Migration,
           now: dt.datetime) -> tuple[int, int]:
    """(migrated, renewed early) among the live identities on the target."""
    live = (profile.name, tx.when(now), migration.to)
    moved: set[str] = set()
    if migration.endpoint is None:  # ``migrated_from`` records protocols, not endpoints
        moved = {r["identity"] for r in tx.all(
            f"SELECT identity FROM identities WHERE {LIVE} AND protocol = ? "
            "AND migrated_from IS NOT NULL", live)}
    # Each certificate on the target that replaced one from another door: the move.
    links = tx.all(
        "SELECT c.identity, c.endpoint, c.created_at, p.protocol AS old_protocol, "
        "p.endpoint AS old_endpoint, p.profile, p.not_before, p.not_after "
        "FROM identities i JOIN certificates c ON c.identity = i.identity "
        "JOIN certificates p ON p.serial = c.replaces "
        "WHERE i.profile = ? AND i.status = 'valid' AND i.not_after > ? AND i.protocol = ? "
        "AND c.protocol = i.protocol ORDER BY c.created_at", live, certificates)
    first: dict[str, dict[str, Any]] = {}
    for link in links:
        if on_target(migration, migration.to, link["endpoint"]) and not on_target(
                migration, link["old_protocol"], link["old_endpoint"]):
            first.setdefault(link["identity"], link)
    early = 0
    for link in first.values():
        fleet = profiles[link["profile"]].fleet if link["profile"] in profiles \
            else profile.fleet
        opens, _ = fleet.renewal_window(link["not_before"], link["not_after"])
        early += link["created_at"] < opens
    return len(moved | set(first)), early


def stragglers(tx: Tx, profiles: dict[str, Profile], name: str, now: dt.datetime,
               limit: int | None = None) -> list[Straggler]:
    """The live identities of profile `name` whose current certificate comes from
    another door than the migration's target, soonest expiry first."""
    [profile] = migrating(profiles, name)
    migration = profile.fleet.migration
    assert migration is not None
    off, off_params = _off_target(migration)
    tail = f" LIMIT {int(limit)}" if limit is not None else ""
    rows = tx.all("SELECT identity, device_id, protocol, endpoint, serial, not_after "
                  f"FROM identities WHERE {LIVE} AND {off} ORDER BY not_after, identity{tail}",
                  (profile.name, tx.when(now), *off_params), identities)
    return [Straggler(r["identity"], r["device_id"], r["protocol"], r["endpoint"],
                      r["serial"], r["not_after"]) for r in rows]


# -- source endpoints' policies --------------------------------------------------------

LIVE_ANY = "status = 'valid' AND not_after > ?"


@dataclass(frozen=True, slots=True)
class EndpointStatus:
    protocol: str
    endpoint: str
    migration: Migration
    stragglers: int
    """Live identities (any profile) whose current certificate came through it."""
    migrated: int
    """Live identities on the target whose move replaced a certificate from it."""
    first_straggler_expiry: dt.datetime | None
    projected_completion: dt.datetime | None


def endpoint_policies(policies: Mapping[tuple[str, str], Migration],
                      only: str | None = None) -> list[tuple[str, str, Migration]]:
    """(protocol, label, policy), sorted; `only` (``scep/mdm``): that one, or
    `NotFound`."""
    found = sorted((p, label, m) for (p, label), m in policies.items())
    if only is None:
        return found
    protocol, _, label = only.partition("/")
    chosen = [f for f in found if (f[0], f[1]) == (protocol, label)]
    if not chosen:
        raise NotFound(f"no endpoint {only!r} has a migration policy (give protocol/label)")
    return chosen


def endpoint_status(tx: Tx, policies: Mapping[tuple[str, str], Migration],
                    now: dt.datetime, only: str | None = None) -> list[EndpointStatus]:
    """Where each source endpoint's migration stands at `now`."""
    out = []
    for protocol, label, migration in endpoint_policies(policies, only):
        here = (tx.when(now), protocol, label)
        on_it = f"{LIVE_ANY} AND protocol = ? AND endpoint = ?"
        count = 0 if on_target(migration, protocol, label) else int(tx.scalar(
            f"SELECT count(*) FROM identities WHERE {on_it}", here))
        expiries = []
        for order in ("ASC", "DESC"):
            row = tx.one(f"SELECT not_after FROM identities WHERE {on_it} "
                         f"ORDER BY not_after {order} LIMIT 1", here, identities) \
                if count else None
            expiries.append(row["not_after"] if row is not None else None)
        target, target_params = ("i.protocol = ?", (migration.to,)) \
            if migration.endpoint is None else \
            ("i.protocol = ? AND i.endpoint = ?", (migration.to, migration.endpoint))
        migrated = int(tx.scalar(
            "SELECT count(DISTINCT i.identity) FROM identities i "
            "JOIN certificates c ON c.identity = i.identity AND c.protocol = i.protocol "
            "JOIN certificates p ON p.serial = c.replaces "
            f"WHERE i.status = 'valid' AND i.not_after > ? AND {target} "
            "AND p.protocol = ? AND p.endpoint = ?",
            (tx.when(now), *target_params, protocol, label)))
        out.append(EndpointStatus(protocol, label, migration, count, migrated, *expiries))
    return out


def endpoint_stragglers(tx: Tx, policies: Mapping[tuple[str, str], Migration],
                        only: str, now: dt.datetime, limit: int | None = None
                        ) -> list[Straggler]:
    """The live identities whose current certificate came through endpoint `only`
    (``scep/mdm``), soonest expiry first."""
    [(protocol, label, migration)] = endpoint_policies(policies, only)
    if on_target(migration, protocol, label):
        return []
    tail = f" LIMIT {int(limit)}" if limit is not None else ""
    rows = tx.all("SELECT identity, device_id, protocol, endpoint, serial, not_after "
                  f"FROM identities WHERE {LIVE_ANY} AND protocol = ? AND endpoint = ? "
                  f"ORDER BY not_after, identity{tail}",
                  (tx.when(now), protocol, label), identities)
    return [Straggler(r["identity"], r["device_id"], r["protocol"], r["endpoint"],
                      r["serial"], r["not_after"]) for r in rows]


def endpoint_status_json(s: EndpointStatus) -> dict[str, Any]:
    """One source endpoint's status as ``enroll migration status --json`` prints it."""
    m = s.migration
    return {
        "protocol": s.protocol, "endpoint": s.endpoint,
        "migration": {"to": m.to, "endpoint": m.endpoint, "after": _time(m.after),
                      "mode": m.mode},
        "stragglers": s.stragglers, "migrated": s.migrated,
        "first_straggler_expiry": _time(s.first_straggler_expiry),
        "projected_completion": _time(s.projected_completion),
    }


def _time(value: dt.datetime | None) -> str | None:
    return value.isoformat(timespec="seconds") if value is not None else None


def status_json(s: ProfileStatus) -> dict[str, Any]:
    """One profile's status as ``enroll migration status --json`` prints it."""
    m = s.migration
    return {
        "profile": s.profile,
        "migration": {"to": m.to, "endpoint": m.endpoint, "after": _time(m.after),
                      "mode": m.mode},
        "identities": s.identities, "on_target": s.on_target, "stragglers": s.stragglers,
        "share_migrated": s.share_migrated,
        "doors": [{"protocol": d.protocol, "endpoint": d.endpoint,
                   "identities": d.identities, "target": d.target} for d in s.doors],
        "migrated": s.migrated, "renewed_early": s.renewed_early,
        "first_straggler_expiry": _time(s.first_straggler_expiry),
        "projected_completion": _time(s.projected_completion),
    }


STRAGGLER_COLUMNS = ("identity", "device_id", "protocol", "endpoint", "serial", "not_after")


def straggler_json(s: Straggler) -> dict[str, Any]:
    return {"identity": s.identity, "device_id": s.device_id, "protocol": s.protocol,
            "endpoint": s.endpoint, "serial": s.serial, "not_after": _time(s.not_after)}
