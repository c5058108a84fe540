"""Where a certificate stands in its lifecycle: ``ok``, ``due``, ``overdue``,
``expired``, ``revoked`` or ``migrated``, from its profile's renewal window.

The window is `enroll.profile_fleet.Fleet.renewal_window`, computed from the current
configuration every time (never stored), so changing a profile's ``renew_before``
changes the states at once. `WindowTerms` says the same window as conditions on
``not_before`` / ``not_after`` that the store turns into SQL, so a state filter runs in
the database and agrees with `state_of`.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from enroll.profile_fleet import DEFAULT_RENEW_BEFORE, Fleet

STATES = ("ok", "due", "overdue", "expired", "revoked", "migrated")
"""Precedence: ``revoked``, then ``expired``, then the window (``overdue``, ``due``);
a live certificate whose window has not opened is ``migrated`` when its identity moved
from another protocol, else ``ok``. Urgency wins: a migrated device that must renew
shows as ``due`` / ``overdue`` (its row still carries ``migrated_from``)."""

DEFAULT_FLEET = Fleet()
"""The window of a certificate whose profile is no longer configured."""


def state_of(fleet: Fleet, *, status: str, not_before: dt.datetime, not_after: dt.datetime,
             migrated_from: str | None, now: dt.datetime) -> str:
    """The state of a certificate (an identity's current one) at `now`."""
    if status == "revoked":
        return "revoked"
    if not_after <= now:
        return "expired"
    opens, closes = fleet.renewal_window(not_before, not_after)
    if now >= closes:
        return "overdue"
    if now >= opens:
        return "due"
    return "migrated" if migrated_from else "ok"


@dataclass(frozen=True, slots=True)
class WindowTerms:
    """The window's ``before`` (how long before expiry it opens) as the minimum of some
    candidates: fixed seconds, and fractions of the lifetime. ``renewal_window`` takes
    ``before = min(candidates)``, so "the window has opened at `now`" is, for every
    candidate c, ``not_after - c <= now``; "it has closed" is the same with c / 2.
    A fixed candidate is a bound on ``not_after`` alone (an index range)."""

    seconds: tuple[float, ...]
    fractions: tuple[float, ...]

    @classmethod
    def of(cls, fleet: Fleet) -> WindowTerms:
        if fleet.renew_before is not None:
            return cls((float(fleet.renew_before),), (1.0,))  # at most the lifetime
        if fleet.renew_fraction is not None:
            return cls((), (min(fleet.renew_fraction, 1.0),))
        return cls((float(DEFAULT_RENEW_BEFORE),), (1 / 3,))

    def halved(self) -> WindowTerms:
        """The terms of the window's end (``not_after - before / 2``)."""
        return WindowTerms(tuple(s / 2 for s in self.seconds),
                           tuple(f / 2 for f in self.fractions))
