"""``enroll_identities{profile,protocol,state}``: the inventory by renewal state, read
from the database at scrape time (`enroll.metrics_store`), so every worker reports the
same numbers.

States, of each identity's current certificate: ``ok`` (live, renewal window not open),
``due`` (inside the profile's renewal window), ``overdue`` (past the window's end, still
live), ``expired`` (past notAfter, not renewed) and ``revoked``. Two queries: one
grouped count over ``identities``, and per profile the few live identities close enough
to their notAfter to be due (index ``(profile, not_after)``), whose windows are computed
with the profile's `Fleet.renewal_window` — in a fleet that renews on time those are few.
The band is sized for the profile's current validity: a certificate issued under a
longer validity than the profile has now may be counted ``ok`` a little early.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping

from prometheus_client.core import GaugeMetricFamily

from enroll.profiles import Profile
from enroll.store.schema import identities
from enroll.store.transaction import Tx

STATES = ("ok", "due", "overdue", "expired", "revoked")

_COUNTS = ("SELECT profile, protocol, CASE WHEN status = 'revoked' THEN 'revoked' "
           "WHEN not_after <= ? THEN 'expired' ELSE 'live' END AS state, COUNT(*) AS n "
           "FROM identities GROUP BY profile, protocol, state")
_BAND = ("SELECT protocol, not_before, not_after FROM identities WHERE profile = ? "
         "AND status = 'valid' AND not_after > ? AND not_after <= ?")


def _widest_window(profile: Profile) -> dt.timedelta:
    """How long before notAfter the renewal window of the profile's longest-lived
    certificate opens (no certificate of the profile is due earlier)."""
    lifetime = dt.timedelta(seconds=profile.validity + profile.backdate)
    end = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)
    opens, _ = profile.fleet.renewal_window(end - lifetime, end)
    return end - opens


def identity_states(tx: Tx, profiles: Mapping[str, Profile],
                    now: dt.datetime) -> GaugeMetricFamily:
    counts: dict[tuple[str, str], dict[str, int]] = {}
    for row in tx.all(_COUNTS, (tx.when(now),)):
        states = counts.setdefault((str(row["profile"]), str(row["protocol"])),
                                   dict.fromkeys((*STATES, "live"), 0))
        states[str(row["state"])] += int(row["n"])
    for name, profile in profiles.items():
        if not any(p == name for p, _ in counts):
            continue
        band = tx.all(_BAND, (name, tx.when(now), tx.when(now + _widest_window(profile))),
                      identities)
        for row in band:
            opens, closes = profile.fleet.renewal_window(row["not_before"], row["not_after"])
            if now >= opens:
                counts[(name, str(row["protocol"]))]["overdue" if now >= closes
                                                     else "due"] += 1
    gauge = GaugeMetricFamily(
        "enroll_identities", "Identities by their current certificate's state: ok, due "
        "(renewal window open), overdue (window closed), expired, revoked",
        labels=["profile", "protocol", "state"])
    for (profile_name, protocol), states in sorted(counts.items()):
        states["ok"] = states.pop("live") - states["due"] - states["overdue"]
        for state in STATES:
            gauge.add_metric([profile_name, protocol, state], states[state])
    return gauge
