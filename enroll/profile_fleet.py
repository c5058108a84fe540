"""A profile's fleet settings: its renewal window, how renewals link into a device's
lineage, its migration policy, where a device id comes from, and its expiry notices.

Parsed from the profile's own table (``[profiles.X]`` keys ``renew_before``,
``link_renewals``, ``replaces_by_names``, ``device_id``, ``expiry_notices`` and the
``[profiles.X.migration]`` table) by `parse_fleet`; `enroll.profiles.Profile.fleet`
holds the result. The same migration table on a source endpoint
(``[<protocol>.endpoints.<label>.migration]``) is parsed by `parse_endpoint_migrations`
into `enroll.config.Config.endpoint_migrations`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from enroll.config_values import as_bool, as_duration, as_str, as_str_list, as_table, check_keys
from enroll.errors import ConfigError

DEFAULT_RENEW_BEFORE = 30 * 86400
"""Auto-enrolment practice: renew in the last 30 days (at most a third of the lifetime
when the profile does not say)."""
LINK_MODES = ("replaces", "identity")
"""``replaces``: a certificate links to the one the client says it renews (ACME
``replaces``, SCEP RenewalReq, EST re-enrolment); ``identity``: also any issuance to an
identity that holds a live certificate links to that certificate, whatever protocol
issued it."""
MIGRATION_MODES = ("refuse", "short", "warn")
DEVICE_ID_SOURCES = ("subject.serialNumber", "subject.CN", "san.uri", "requester")
FLEET_KEYS = {"renew_before", "link_renewals", "device_id", "expiry_notices", "migration",
              "replaces_by_names"}
_MIGRATION_KEYS = {"to", "endpoint", "after", "mode", "short_validity", "message"}
ENDPOINT_DOORS = ("acme", "est", "scep")
"""The protocols whose ``[<protocol>.endpoints.<label>.migration]`` the core reads."""
MAX_SHORT_VALIDITY = 3650 * 86400
"""An endpoint policy's ``short_validity`` bound (it serves any profile: each
certificate is still capped by its own profile's validity)."""


@dataclass(frozen=True, slots=True)
class Migration:
    """``[profiles.X.migration]``: from `after`, issuance over any other protocol (or
    endpoint) than `to` is refused, shortened to `short_validity`, or only audited."""

    to: str
    """The protocol devices must move to (``acme``, ``est``, ``scep``)."""
    endpoint: str | None
    """Optionally the endpoint label on that protocol."""
    after: dt.datetime
    mode: str
    """``refuse`` | ``short`` | ``warn``."""
    short_validity: int
    """Seconds: the validity a straggler gets in ``short`` mode."""
    message: str

    def applies(self, protocol: str, endpoint: str, now: dt.datetime) -> bool:
        """Whether a request over (`protocol`, `endpoint`) at `now` is a straggler's."""
        if now < self.after:
            return False
        return protocol != self.to or (self.endpoint is not None and endpoint != self.endpoint)


@dataclass(frozen=True, slots=True)
class Fleet:
    renew_before: int | None = None
    """Seconds before expiry the renewal window opens; None: `renew_fraction` or the
    default."""
    renew_fraction: float | None = None
    """The renewal window as a fraction of the lifetime (``renew_before = "33%"``)."""
    link_renewals: str = "replaces"
    migration: Migration | None = None
    device_id: str | None = None
    """Where a certificate's device id comes from (`DEVICE_ID_SOURCES`), when the door
    or a plugin does not set it."""
    expiry_notices: tuple[int, ...] = field(default=(30 * 86400, 7 * 86400, 86400))
    """Seconds before expiry at which ``certificate.expiring`` is emitted."""
    replaces_by_names: bool = False
    """ACME ``replaces`` may name a certificate another door or account got when its
    names are exactly the order's validated identifiers (link ``names``); on by default
    under a migration policy."""

    def renewal_window(self, not_before: dt.datetime,
                       not_after: dt.datetime) -> tuple[dt.datetime, dt.datetime]:
        """(opens, closes): clients should renew between these; after `closes` the
        certificate is overdue (ACME ARI's suggestedWindow is this window)."""
        lifetime = not_after - not_before
        if self.renew_before is not None:
            before = dt.timedelta(seconds=self.renew_before)
        elif self.renew_fraction is not None:
            before = lifetime * self.renew_fraction
        else:
            before = min(dt.timedelta(seconds=DEFAULT_RENEW_BEFORE), lifetime / 3)
        before = min(before, lifetime)
        return not_after - before, not_after - before / 2


def parse_fleet(entry: Mapping[str, Any], key: str, validity: int) -> Fleet:
    renew_before: int | None = None
    renew_fraction: float | None = None
    raw = entry.get("renew_before")
    if isinstance(raw, str) and raw.strip().endswith("%"):
        try:
            percent = float(raw.strip()[:-1])
        except ValueError as exc:
            raise ConfigError(f"{key}.renew_before", f"not a percentage: {raw!r}") from exc
        if not 0 < percent < 100:
            raise ConfigError(f"{key}.renew_before", "a percentage between 0 and 100")
        renew_fraction = percent / 100
    elif isinstance(raw, float):
        if not 0 < raw < 1:
            raise ConfigError(f"{key}.renew_before", "a fraction between 0 and 1")
        renew_fraction = raw
    elif raw is not None:
        renew_before = as_duration(raw, f"{key}.renew_before", minimum=1,
                                   maximum=validity)
    link = as_str(entry.get("link_renewals", "replaces"), f"{key}.link_renewals")
    if link not in LINK_MODES:
        raise ConfigError(f"{key}.link_renewals", f"expected one of {', '.join(LINK_MODES)}")
    device_id = entry.get("device_id")
    if device_id is not None:
        device_id = as_str(device_id, f"{key}.device_id")
        if device_id not in DEVICE_ID_SOURCES:
            raise ConfigError(f"{key}.device_id",
                              f"expected one of {', '.join(DEVICE_ID_SOURCES)}")
    notices = tuple(sorted((as_duration(v, f"{key}.expiry_notices", minimum=60)
                            for v in as_str_list(entry.get("expiry_notices",
                                                           ["30d", "7d", "1d"]),
                                                 f"{key}.expiry_notices")), reverse=True))
    migration = None
    by_names = entry.get("replaces_by_names")
    if entry.get("migration") is not None:
        migration = parse_migration(as_table(entry["migration"], f"{key}.migration"),
                                    f"{key}.migration", validity)
        if link == "replaces":
            link = "identity"  # a migration follows devices across protocols
        if by_names is None:
            by_names = True  # and lets them name their old certificate from the new door
    return Fleet(renew_before=renew_before, renew_fraction=renew_fraction,
                 link_renewals=link, migration=migration, device_id=device_id,
                 expiry_notices=notices,
                 replaces_by_names=as_bool(by_names if by_names is not None else False,
                                           f"{key}.replaces_by_names"))


def parse_endpoint_migrations(sections: Mapping[str, Mapping[str, Any]]
                              ) -> dict[tuple[str, str], Migration]:
    """(protocol, label) -> the migration policy of a source endpoint,
    ``[<protocol>.endpoints.<label>.migration]``: requests through it are a
    straggler's after its date, whatever their profile (it takes precedence over the
    profile's). The protocol checks the rest of its endpoint table."""
    found: dict[tuple[str, str], Migration] = {}
    for protocol in ENDPOINT_DOORS:
        endpoints = sections.get(protocol, {}).get("endpoints")
        if not isinstance(endpoints, Mapping):
            continue
        for label, table in endpoints.items():
            if not isinstance(table, Mapping) or table.get("migration") is None:
                continue
            key = f"{protocol}.endpoints.{label}.migration"
            found[(protocol, str(label))] = parse_migration(
                as_table(table["migration"], key), key, MAX_SHORT_VALIDITY)
    return found


def parse_migration(table: Mapping[str, Any], key: str, validity: int) -> Migration:
    check_keys(table, _MIGRATION_KEYS, key)
    to = as_str(table.get("to", ""), f"{key}.to")
    if to not in ("acme", "est", "scep"):
        raise ConfigError(f"{key}.to", "expected 'acme', 'est' or 'scep'")
    raw_after = table.get("after")
    if isinstance(raw_after, dt.datetime):
        after = raw_after if raw_after.tzinfo else raw_after.replace(tzinfo=dt.UTC)
    elif isinstance(raw_after, dt.date):
        after = dt.datetime(raw_after.year, raw_after.month, raw_after.day, tzinfo=dt.UTC)
    elif isinstance(raw_after, str):
        try:
            after = dt.datetime.fromisoformat(raw_after)
        except ValueError as exc:
            raise ConfigError(f"{key}.after", "expected a date (2027-03-01) or an ISO "
                              "8601 time") from exc
        if after.tzinfo is None:
            after = after.replace(tzinfo=dt.UTC)
    else:
        raise ConfigError(f"{key}.after", "expected a date (2027-03-01)")
    mode = as_str(table.get("mode", "refuse"), f"{key}.mode")
    if mode not in MIGRATION_MODES:
        raise ConfigError(f"{key}.mode", f"expected one of {', '.join(MIGRATION_MODES)}")
    short = as_duration(table.get("short_validity", "7d"), f"{key}.short_validity",
                        minimum=60, maximum=validity)
    endpoint = table.get("endpoint")
    return Migration(
        to=to, endpoint=as_str(endpoint, f"{key}.endpoint") if endpoint is not None else None,
        after=after.astimezone(dt.UTC), mode=mode, short_validity=short,
        message=as_str(table.get("message", f"renew over {to.upper()}"),
                       f"{key}.message")[:512])

