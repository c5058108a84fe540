"""`enroll.migration_rules` in the pipeline: what the doors' tests cannot reach (an
officer's approval after the date, a plugin lengthening the certificate)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import pytest

from enroll.clock import FrozenClock
from enroll.context import AppContext
from enroll.errors import MigrationRequired
from enroll.hookspecs import hookimpl
from enroll.model import Issued, Pending
from enroll.store import queries
from enroll.testing import count_stored, make_csr, request

AFTER = dt.datetime(2027, 3, 1, tzinfo=dt.UTC)


def laptop(mode: str, **extra: Any) -> dict[str, Any]:
    return {"ca": "issuing", "validity": "90d", "identity": "subject.CN",
            "subject": {"CN": "csr"}, "key_types": ["ec-p256", "rsa-2048"],
            "extended_key_usage": ["client_auth"], **extra,
            "migration": {"to": "acme", "after": "2027-03-01", "mode": mode,
                          "short_validity": "7d", "message": "Renew over ACME"}}


class Lengthen:
    """A plugin that gives every certificate ten years."""

    @hookimpl
    def enroll_amend_certificate(self, draft: Any, request: Any, profile: Any) -> None:
        draft.not_after = draft.not_before + dt.timedelta(days=3650)


def straggler_events(ctx: AppContext) -> list[Any]:
    with ctx.db.read() as tx:
        return [e for e in queries.list_audit(tx) if e.type == "migration.straggler"]


def test_a_request_approved_after_the_date_is_shortened(
        build: Callable[..., AppContext]) -> None:
    clock = FrozenClock(AFTER - dt.timedelta(days=1))
    ctx = build(clock=clock, extra_profiles={"laptop": laptop("short", approval="manual")})
    pending = ctx.authority.submit(request(make_csr(cn="mac-9"), "laptop", protocol="scep",
                                           endpoint="default"))
    assert isinstance(pending, Pending)
    assert straggler_events(ctx) == []  # submitted before the date
    clock.advance(dt.timedelta(days=2))
    issued = ctx.authority.approve(pending.request_id, "officer")
    assert isinstance(issued, Issued)
    assert issued.certificate.not_valid_after_utc == clock.now() + dt.timedelta(days=7)


def test_no_plugin_lengthens_a_stragglers_certificate(
        build: Callable[..., AppContext]) -> None:
    clock = FrozenClock(AFTER + dt.timedelta(days=1))
    ctx = build(clock=clock, extra_plugins=[Lengthen()],
                extra_profiles={"laptop": laptop("short")})
    issued = ctx.authority.submit(request(make_csr(cn="mac-8"), "laptop", protocol="est",
                                          endpoint="default"))
    assert isinstance(issued, Issued)
    assert issued.certificate.not_valid_after_utc == clock.now() + dt.timedelta(days=7)
    [event] = straggler_events(ctx)
    assert event.request_id == issued.request_id
    # Over the target the plugin has its way (up to the CA's own expiry).
    target = ctx.authority.submit(request(make_csr(cn="mac-7"), "laptop", protocol="acme",
                                          endpoint="default"))
    assert isinstance(target, Issued)
    assert target.certificate.not_valid_after_utc > clock.now() + dt.timedelta(days=365)


def test_refuse_stores_only_the_audit_event(build: Callable[..., AppContext]) -> None:
    clock = FrozenClock(AFTER)  # the date itself is after
    ctx = build(clock=clock, extra_profiles={"laptop": laptop("refuse")})
    before = count_stored(ctx)
    with pytest.raises(MigrationRequired) as refused:
        ctx.authority.submit(request(make_csr(cn="mac-6"), "laptop", protocol="scep",
                                     endpoint="default"))
    assert (refused.value.detail, refused.value.to) == ("Renew over ACME", "acme")
    assert count_stored(ctx) == before
    [event] = straggler_events(ctx)
    assert (event.actor, event.details["identity"]) == ("test", "subject.CN:mac-6")
