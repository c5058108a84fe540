"""The validity a request may ask for, within its profile's (issue 12).

A door may pass a requested ``not_before`` / ``not_after`` on `EnrollmentRequest`
(today only ACME can: RFC 8555 §7.4 newOrder). The profile still decides:

- ``not_after`` must be in the future, after ``not_before``, and no later than the
  profile's ``validity`` from now (`SKEW` of slack for the client's clock, clamped);
- ``not_before`` may be at most the profile's ``backdate`` (or `SKEW`, if larger) in
  the past: a client cannot date a certificate back;
- either may be left out: the profile's default takes its place.

`check` is the rule at the moment the client asks (ACME newOrder: out of bounds is
refused, nothing stored); `check_live` refuses at submission what can no longer be
honoured; `apply` sets the draft's validity when signing (possibly days later, after
an approval), clamped again to what the profile allows *then*. A migration's ``short``
cap (`enroll.migration_rules.cap_validity`) and the issuing CA's own ``notAfter`` still
win over both. The requested bounds are kept in the request's stored attributes
(`ATTRIBUTE`), so an approval or the recovery pass signs what was asked.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from enroll.errors import MalformedInput
from enroll.model import CertificateDraft, EnrollmentRequest
from enroll.profiles import Profile

SKEW = dt.timedelta(minutes=5)
"""Slack for a client's clock: a notBefore this far in the past, a notAfter this far
beyond the profile's validity (clamped to it) are still accepted."""
ATTRIBUTE = "requested_validity"
"""The key of the requested bounds in a stored request's attributes."""


def _backdate(profile: Profile) -> dt.timedelta:
    return max(dt.timedelta(seconds=profile.backdate), SKEW)


def _span(seconds: int) -> str:
    if seconds % 86400 == 0:
        return f"{seconds // 86400}d"
    if seconds % 3600 == 0:
        return f"{seconds // 3600}h"
    if seconds % 60 == 0:
        return f"{seconds // 60}m"
    return f"{seconds}s"


def check(profile: Profile, not_before: dt.datetime | None, not_after: dt.datetime | None,
          now: dt.datetime) -> None:
    """Refuse (`MalformedInput`, with what is wrong) a requested validity the profile
    does not allow at `now`, the moment the client asks."""
    validity = dt.timedelta(seconds=profile.validity)
    if not_before is not None and not_before < now - _backdate(profile):
        raise MalformedInput(
            f"notBefore may be at most {_span(int(_backdate(profile).total_seconds()))} "
            "in the past")
    if not_after is not None:
        if not_after <= now:
            raise MalformedInput("notAfter must be in the future")
        if not_after > now + validity + SKEW:
            raise MalformedInput(f"notAfter is beyond the profile's validity of "
                                 f"{_span(profile.validity)} ({profile.name})")
    if not_before is not None:
        if not_before >= (not_after or now + validity):
            raise MalformedInput("notBefore must be before notAfter"
                                 if not_after is not None else
                                 f"notBefore is beyond the profile's validity of "
                                 f"{_span(profile.validity)} ({profile.name})")


def check_live(request: EnrollmentRequest, now: dt.datetime) -> None:
    """At submission: a requested notAfter that has passed can no longer be honoured."""
    if request.not_after is not None and request.not_after <= now:
        raise MalformedInput("the requested notAfter has passed")


def apply(draft: CertificateDraft, profile: Profile, request: EnrollmentRequest,
          now: dt.datetime) -> None:
    """Narrow the draft's profile validity to the requested one (never wider)."""
    if request.not_after is not None:
        draft.not_after = min(draft.not_after, request.not_after)
    if request.not_before is not None:
        draft.not_before = min(max(request.not_before, now - _backdate(profile)),
                               now + dt.timedelta(seconds=profile.validity))
    if draft.not_before >= draft.not_after:
        raise MalformedInput("the requested validity can no longer be honoured")


def to_attributes(request: EnrollmentRequest) -> dict[str, Any]:
    """The request's attributes to store, with its requested bounds (if any)."""
    attributes = dict(request.attributes)
    if request.not_before is not None or request.not_after is not None:
        attributes[ATTRIBUTE] = {
            "not_before": None if request.not_before is None
            else request.not_before.isoformat(),
            "not_after": None if request.not_after is None
            else request.not_after.isoformat()}
    return attributes


def from_attributes(attributes: Mapping[str, Any]
                    ) -> tuple[dt.datetime | None, dt.datetime | None]:
    """The requested bounds kept by `to_attributes` (None, None: none asked)."""
    kept = attributes.get(ATTRIBUTE)
    if not isinstance(kept, dict):
        return None, None

    def when(value: Any) -> dt.datetime | None:
        return dt.datetime.fromisoformat(value) if isinstance(value, str) else None

    return when(kept.get("not_before")), when(kept.get("not_after"))
