"""`enroll.validity_rules` in the pipeline, with a frozen clock: what the ACME tests
cannot reach (an approval days after the request, a requested notAfter that passed, a
plugin amending after the request). Only ACME asks over the wire today; the rule is the
core's, for any `EnrollmentRequest`."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import pytest

from enroll import validity_rules
from enroll.clock import FrozenClock
from enroll.context import AppContext
from enroll.errors import MalformedInput
from enroll.model import Issued, Pending, RequestStatus
from enroll.testing import count_stored, make_csr, request

NOW = dt.datetime(2027, 3, 1, 12, 0, tzinfo=dt.UTC)
DAY = dt.timedelta(days=1)


def laptop(**extra: Any) -> dict[str, Any]:
    return {"ca": "issuing", "validity": "90d", "backdate": "60s", "identity": "subject.CN",
            "subject": {"CN": "csr"}, "key_types": ["ec-p256", "rsa-2048"],
            "extended_key_usage": ["client_auth"], **extra}


def test_check_bounds_what_a_client_may_ask(build: Callable[..., AppContext]) -> None:
    ctx = build(clock=FrozenClock(NOW), extra_profiles={"laptop": laptop()})
    profile = ctx.authority.profile("laptop")
    ok = [(None, NOW + 90 * DAY), (NOW - dt.timedelta(minutes=5), None),
          (NOW + DAY, NOW + 2 * DAY), (None, NOW + 90 * DAY + validity_rules.SKEW)]
    for not_before, not_after in ok:
        validity_rules.check(profile, not_before, not_after, NOW)
    refused = [(None, NOW + 90 * DAY + validity_rules.SKEW + dt.timedelta(seconds=1)),
               (None, NOW), (NOW - dt.timedelta(minutes=6), None),
               (NOW + 2 * DAY, NOW + DAY), (NOW + 90 * DAY, None)]
    for not_before, not_after in refused:
        with pytest.raises(MalformedInput):
            validity_rules.check(profile, not_before, not_after, NOW)


def test_the_certificate_has_the_requested_validity(build: Callable[..., AppContext]) -> None:
    ctx = build(clock=FrozenClock(NOW), extra_profiles={"laptop": laptop()})
    issued = ctx.authority.submit(request(make_csr(cn="a"), "laptop", protocol="acme",
                                          not_before=NOW + DAY, not_after=NOW + 5 * DAY))
    assert isinstance(issued, Issued)
    cert = issued.certificate
    assert (cert.not_valid_before_utc, cert.not_valid_after_utc) == (NOW + DAY, NOW + 5 * DAY)
    # Never wider than the profile, whatever reaches the core.
    issued = ctx.authority.submit(request(make_csr(cn="b"), "laptop", protocol="acme",
                                          not_before=NOW - 30 * DAY,
                                          not_after=NOW + 400 * DAY))
    assert isinstance(issued, Issued)
    cert = issued.certificate
    assert cert.not_valid_before_utc == NOW - validity_rules.SKEW
    assert cert.not_valid_after_utc == NOW + 90 * DAY


def test_an_approval_later_signs_what_was_asked_within_the_profile_then(
        build: Callable[..., AppContext]) -> None:
    clock = FrozenClock(NOW)
    ctx = build(clock=clock, extra_profiles={"laptop": laptop(approval="manual")})
    pending = ctx.authority.submit(request(make_csr(cn="c"), "laptop", protocol="acme",
                                           not_before=NOW, not_after=NOW + 10 * DAY))
    assert isinstance(pending, Pending)
    clock.advance(2 * DAY)
    issued = ctx.authority.approve(pending.request_id, "officer")
    assert isinstance(issued, Issued)
    # notBefore is not dated back two days: at most the allowed backdate before signing.
    assert issued.certificate.not_valid_before_utc == clock.now() - validity_rules.SKEW
    assert issued.certificate.not_valid_after_utc == NOW + 10 * DAY


def test_a_requested_not_after_that_passed_is_refused(
        build: Callable[..., AppContext]) -> None:
    clock = FrozenClock(NOW)
    ctx = build(clock=clock, extra_profiles={"laptop": laptop(approval="manual")})
    before = count_stored(ctx)
    with pytest.raises(MalformedInput, match="notAfter has passed"):
        ctx.authority.submit(request(make_csr(cn="d"), "laptop", protocol="acme",
                                     not_after=NOW - dt.timedelta(seconds=1)))
    assert count_stored(ctx) == before
    pending = ctx.authority.submit(request(make_csr(cn="e"), "laptop", protocol="acme",
                                           not_after=NOW + DAY))
    assert isinstance(pending, Pending)
    clock.advance(2 * DAY)  # approved after the asked-for end: nothing is signed
    with pytest.raises(MalformedInput, match="can no longer be honoured"):
        ctx.authority.approve(pending.request_id, "officer")
    stored = ctx.authority.request(pending.request_id)
    assert stored is not None and stored.status is RequestStatus.FAILED
    assert count_stored(ctx)[0] == before[0]
