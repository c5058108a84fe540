"""A migration policy is one rule in the core (`enroll.migration_rules`): after its date,
each old door refuses a straggler with its protocol's answer and the operator's message,
or issues a short-lived certificate, or only audits; every straggler is audited with its
identity. Each door is tested as an old door (migrations to ACME and to SCEP)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from door_drivers import DoorDriver

from enroll import refusals
from enroll.store import queries

MESSAGE = "Renew over ACME: https://pki.corp.example/acme/laptop/directory"
SERVER: dict[str, Any] = {
    "san": {"dns": ["*.corp.example"]},
    "subject": {"CN": "csr"},
    "key_types": ["ec-p256", "rsa-2048"],
    "extended_key_usage": ["server_auth", "client_auth"],
    "validity": "90d",
}
OLD_DOORS = [("scep", "acme"), ("est", "acme"), ("acme", "scep"), ("est", "scep")]
"""(door under test, the migration's target): every door is an old door once."""
REFUSAL = {"scep": "BAD_REQUEST", "est": "403", "acme": "unauthorized"}
REASON = {"scep": "migration_required", "est": "migration_required", "acme": "acme_unauthorized"}


def profile(to: str, mode: str, after: str = "2020-01-01", **extra: Any) -> dict[str, Any]:
    return {**SERVER, "migration": {"to": to, "after": after, "mode": mode,
                                    "short_validity": "1d", "message": MESSAGE, **extra}}


def stragglers(d: DoorDriver) -> list[Any]:
    with d.h.ctx.db.read() as tx:
        return [e for e in queries.list_audit(tx) if e.type == "migration.straggler"]


@pytest.mark.parametrize(("door", "to"), OLD_DOORS)
async def test_refuse_answers_each_protocols_refusal_with_the_message(
        door: str, to: str, make_driver: Any) -> None:
    d = make_driver(door, profile(to, "refuse"))
    answer = await d.enroll(cn="a.corp.example", dns=["a.corp.example"])
    assert answer.error == REFUSAL[door], answer
    assert MESSAGE in answer.detail
    assert d.h.counts() == (0, 0)  # no request, no certificate: only the audit
    [event] = stragglers(d)
    assert event.request_id is None
    assert dict(event.details) == {
        "profile": "p", "protocol": door, "endpoint": "default",
        "identity": "san.dns:a.corp.example", "mode": "refuse", "to": to,
        "to_endpoint": None, "replaces": None, "policy": "profile"}
    # The door's own refusal count (enroll.refusals) says why, too.
    d.h.ctx.authority.flush_refusals()
    with d.h.ctx.db.read() as tx:
        rows = [r for r in refusals.open_counts(tx) if r["door"] == f"{door}:default"]
    assert [(r["reason"], r["count"]) for r in rows] == [(REASON[door], 1)]


@pytest.mark.parametrize(("door", "to"), OLD_DOORS[:3])
async def test_short_caps_the_validity_and_audits(door: str, to: str,
                                                  make_driver: Any) -> None:
    d = make_driver(door, profile(to, "short"))
    before = dt.datetime.now(dt.UTC)
    answer = await d.enroll(cn="s.corp.example", dns=["s.corp.example"])
    assert answer.cert is not None, answer
    assert answer.cert.not_valid_after_utc <= before + dt.timedelta(days=1, seconds=5)
    assert answer.cert.not_valid_after_utc >= before + dt.timedelta(hours=23)
    [event] = stragglers(d)
    assert event.details["mode"] == "short"
    assert event.details["identity"] == "san.dns:s.corp.example"
    assert event.request_id is not None
    assert d.h.counts() == (1, 1)


@pytest.mark.parametrize(("door", "to"), OLD_DOORS[:3])
async def test_warn_issues_normally_and_audits(door: str, to: str, make_driver: Any) -> None:
    d = make_driver(door, profile(to, "warn"))
    before = dt.datetime.now(dt.UTC)
    answer = await d.enroll(cn="w.corp.example", dns=["w.corp.example"])
    assert answer.cert is not None, answer
    assert answer.cert.not_valid_after_utc >= before + dt.timedelta(days=89)
    [event] = stragglers(d)
    assert (event.details["mode"], event.details["protocol"]) == ("warn", door)


@pytest.mark.parametrize(("door", "to"), OLD_DOORS[:3])
async def test_before_the_date_nothing_changes(door: str, to: str, make_driver: Any) -> None:
    d = make_driver(door, profile(to, "refuse", after="2099-01-01"))
    answer = await d.enroll(cn="b.corp.example", dns=["b.corp.example"])
    assert answer.cert is not None, answer
    assert stragglers(d) == []


@pytest.mark.parametrize(("door", "to"), [("acme", "acme"), ("scep", "scep"),
                                          ("est", "est")])
async def test_the_target_door_is_never_a_straggler(door: str, to: str,
                                                    make_driver: Any) -> None:
    d = make_driver(door, profile(to, "refuse"))
    answer = await d.enroll(cn="t.corp.example", dns=["t.corp.example"])
    assert answer.cert is not None, answer
    assert answer.cert.not_valid_after_utc >= dt.datetime.now(dt.UTC) + dt.timedelta(days=89)
    assert stragglers(d) == []


async def test_a_migration_to_another_endpoint_makes_this_one_an_old_door(
        make_driver: Any) -> None:
    d = make_driver("acme", profile("acme", "refuse", endpoint="laptops"))
    answer = await d.enroll(cn="e.corp.example", dns=["e.corp.example"])
    assert answer.error == "unauthorized", answer
    assert MESSAGE in answer.detail
    assert d.h.counts() == (0, 0)
    [event] = stragglers(d)
    assert (event.details["to"], event.details["to_endpoint"]) == ("acme", "laptops")


@pytest.mark.parametrize("protocol", ["scep-ra", "core"])
async def test_enrolls_own_certificates_are_never_stragglers(protocol: str,
                                                             make_driver: Any) -> None:
    """The SCEP RA's certificate (``scep-ra``) and the listener's (``core``) are issued
    under a profile too: a policy on that profile must not stop SCEP itself."""
    from enroll.model import Issued
    from enroll.testing import make_csr, request

    d = make_driver("scep", profile("acme", "refuse"))
    outcome = d.h.ctx.authority.submit(request(
        make_csr(cn="ra.corp.example", dns=["ra.corp.example"]), "p", protocol=protocol,
        endpoint="default"))
    assert isinstance(outcome, Issued), outcome
    assert stragglers(d) == []
