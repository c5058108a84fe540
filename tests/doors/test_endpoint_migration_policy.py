"""A migration policy on a *source endpoint* (``[<protocol>.endpoints.<label>.migration]``)
through SCEP, EST and ACME alike: after its date every request through that endpoint,
whatever its profile, is a straggler's (refused with the door's answer and the message,
shortened, or only audited); before the date, and through any other endpoint, nothing
changes; the endpoint's policy takes precedence over the profile's. The rule is the
core's (`enroll.migration_rules`), the same as a profile's."""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import io
import json
from typing import Any

import pytest
from door_drivers import DoorDriver
from harness import ALICE, PKCS10_HEADERS, WELL_KNOWN, csr_body

from enroll import migration_report
from enroll.errors import ConfigError, NotFound
from enroll.store import queries
from enroll.testing import make_csr

MESSAGE = "This MDM profile is retired: renew over https://pki.corp.example/acme/laptop"
SERVER: dict[str, Any] = {
    "san": {"dns": ["*.corp.example"]},
    "subject": {"CN": "csr"},
    "key_types": ["ec-p256", "rsa-2048"],
    "extended_key_usage": ["server_auth", "client_auth"],
    "validity": "90d",
}
DOORS = [("scep", "acme"), ("est", "acme"), ("acme", "scep")]
"""(door whose default endpoint carries the policy, the policy's target)."""
REFUSAL = {"scep": "BAD_REQUEST", "est": "403", "acme": "unauthorized"}


def policy(to: str, mode: str, after: str = "2020-01-01") -> dict[str, Any]:
    return {"migration": {"to": to, "after": after, "mode": mode, "short_validity": "1d",
                          "message": MESSAGE}}


def on(door: str, table: dict[str, Any]) -> dict[str, Any]:
    """`make_driver` keyword: `table` added to `door`'s default endpoint."""
    return {door: table}


def stragglers(d: DoorDriver) -> list[Any]:
    with d.h.ctx.db.read() as tx:
        return [e for e in queries.list_audit(tx) if e.type == "migration.straggler"]


@pytest.mark.parametrize(("door", "to"), DOORS)
async def test_refuse_through_the_endpoint_whatever_the_profile(
        door: str, to: str, make_driver: Any) -> None:
    d = make_driver(door, SERVER, **on(door, policy(to, "refuse")))  # no profile policy
    answer = await d.enroll(cn="a.corp.example", dns=["a.corp.example"])
    assert answer.error == REFUSAL[door], answer
    assert MESSAGE in answer.detail
    assert d.h.counts() == (0, 0)  # nothing stored: only the audit event
    [event] = stragglers(d)
    assert event.request_id is None
    assert dict(event.details) == {
        "profile": "p", "protocol": door, "endpoint": "default",
        "identity": "san.dns:a.corp.example", "mode": "refuse", "to": to,
        "to_endpoint": None, "replaces": None, "policy": "endpoint"}


@pytest.mark.parametrize(("door", "to"), DOORS)
async def test_short_through_the_endpoint_caps_the_validity(
        door: str, to: str, make_driver: Any) -> None:
    d = make_driver(door, SERVER, **on(door, policy(to, "short")))
    before = dt.datetime.now(dt.UTC)
    answer = await d.enroll(cn="s.corp.example", dns=["s.corp.example"])
    assert answer.cert is not None, answer
    assert answer.cert.not_valid_after_utc <= before + dt.timedelta(days=1, seconds=5)
    assert answer.cert.not_valid_after_utc >= before + dt.timedelta(hours=23)
    [event] = stragglers(d)
    assert (event.details["mode"], event.details["policy"]) == ("short", "endpoint")
    assert event.request_id is not None and d.h.counts() == (1, 1)


@pytest.mark.parametrize(("door", "to"), DOORS)
async def test_warn_through_the_endpoint_issues_and_audits_and_status_reports_it(
        door: str, to: str, make_driver: Any) -> None:
    d = make_driver(door, SERVER, **on(door, policy(to, "warn")))
    before = dt.datetime.now(dt.UTC)
    answer = await d.enroll(cn="w.corp.example", dns=["w.corp.example"])
    assert answer.cert is not None, answer
    assert answer.cert.not_valid_after_utc >= before + dt.timedelta(days=89)
    [event] = stragglers(d)
    assert (event.details["mode"], event.details["protocol"]) == ("warn", door)
    ctx = d.h.ctx
    with ctx.db.read() as tx:
        [report] = migration_report.endpoint_status(tx, ctx.authority.endpoint_migrations,
                                                    ctx.clock.now())
        listed = migration_report.endpoint_stragglers(
            tx, ctx.authority.endpoint_migrations, f"{door}/default", ctx.clock.now())
    assert (report.protocol, report.endpoint, report.migration.to, report.stragglers) == (
        door, "default", to, 1)
    assert report.projected_completion == answer.cert.not_valid_after_utc
    assert [s.identity for s in listed] == ["san.dns:w.corp.example"]
    # `enroll migration status` prints it beside the profiles' policies.
    text = _status(ctx)
    assert text.splitlines()[0] == (f"endpoint {door}/default: to {to} after "
                                    "2020-01-01T00:00:00+00:00 (mode warn, any profile)")
    assert "stragglers 1; first expires " in text and "migrated 0" in text
    doc = json.loads(_status(ctx, json=True))
    assert doc["profiles"] == [] and [
        (e["protocol"], e["endpoint"], e["stragglers"]) for e in doc["endpoints"]] == [
        (door, "default", 1)]
    only = json.loads(_status(ctx, json=True, endpoint=f"{door}/default"))
    assert only["endpoints"] == doc["endpoints"]
    with pytest.raises(NotFound):
        _status(ctx, endpoint=f"{door}/elsewhere")


def _status(ctx: Any, **kw: Any) -> str:
    from enroll.cli import migration as cli

    class Opener:
        def context(self) -> Any:
            return ctx

    args = argparse.Namespace(**{"profile": None, "endpoint": None, "json": False, **kw})
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert cli.cmd_migration_status(args, Opener()) == 0  # type: ignore[arg-type]
    return out.getvalue()


@pytest.mark.parametrize(("door", "to"), DOORS)
async def test_before_the_date_nothing_changes(door: str, to: str, make_driver: Any) -> None:
    d = make_driver(door, SERVER, **on(door, policy(to, "refuse", after="2099-01-01")))
    answer = await d.enroll(cn="b.corp.example", dns=["b.corp.example"])
    assert answer.cert is not None, answer
    assert stragglers(d) == []


@pytest.mark.parametrize(("door", "to"), DOORS)
async def test_other_endpoints_are_unaffected(door: str, to: str, make_driver: Any) -> None:
    """The policy on `door`'s default endpoint; the other doors' endpoints issue as
    before and audit nothing."""
    for other in ("scep", "est", "acme"):
        if other == door:
            continue
        d = make_driver(other, SERVER, **on(door, policy(to, "refuse")))
        answer = await d.enroll(cn=f"{other}.corp.example", dns=[f"{other}.corp.example"])
        assert answer.cert is not None, (door, other, answer)
        assert stragglers(d) == []
    # ... and the endpoint with the policy refuses (same configuration, same store).
    refused = await make_driver(door, SERVER, **on(door, policy(to, "refuse"))).enroll(
        cn="x.corp.example", dns=["x.corp.example"])
    assert refused.error == REFUSAL[door], refused


async def test_another_endpoint_of_the_same_protocol_is_unaffected(
        make_driver: Any) -> None:
    """Two EST endpoints: the policy on ``legacy`` refuses there; ``default`` issues."""
    legacy = {"profile": "p", "auth": ["basic"], **policy("acme", "refuse")}
    d = make_driver("est", SERVER, est={"labels": {"legacy": legacy}})
    ok = await d.enroll(cn="d.corp.example", dns=["d.corp.example"])
    assert ok.cert is not None, ok
    r = await d.h.http.post(f"{WELL_KNOWN}/legacy/simpleenroll", auth=ALICE,
                            content=csr_body(make_csr(cn="l.corp.example",
                                                      dns=["l.corp.example"])),
                            headers=PKCS10_HEADERS)
    assert r.status_code == 403 and MESSAGE in r.text
    [event] = stragglers(d)
    assert (event.details["endpoint"], event.details["policy"]) == ("legacy", "endpoint")
    assert d.h.counts() == (1, 1)


@pytest.mark.parametrize(("door", "to"), DOORS)
async def test_the_endpoints_policy_takes_precedence_over_the_profiles(
        door: str, to: str, make_driver: Any) -> None:
    profile_refuses = {**SERVER, "migration": {"to": to, "after": "2020-01-01",
                                               "mode": "refuse", "message": "profile"}}
    # The endpoint says warn: issued (audited as the endpoint's straggler).
    d = make_driver(door, profile_refuses, **on(door, policy(to, "warn")))
    answer = await d.enroll(cn="p.corp.example", dns=["p.corp.example"])
    assert answer.cert is not None, answer
    [event] = stragglers(d)
    assert (event.details["mode"], event.details["policy"]) == ("warn", "endpoint")
    # The endpoint's date has not come: issued, though the profile's has (same store).
    d = make_driver(door, profile_refuses, **on(door, policy(to, "refuse", "2099-01-01")))
    answer = await d.enroll(cn="q.corp.example", dns=["q.corp.example"])
    assert answer.cert is not None, answer
    assert [e.details["identity"] for e in stragglers(d)] == ["san.dns:p.corp.example"]


def test_a_bad_endpoint_policy_is_a_configuration_error_naming_its_key(
        make_driver: Any) -> None:
    with pytest.raises(ConfigError) as exc:
        make_driver("scep", SERVER, scep=policy("acme", "ignore"))
    assert "scep.endpoints.default.migration.mode" in str(exc.value)
    with pytest.raises(ConfigError) as exc:
        make_driver("est", SERVER, est={"migration": {"to": "acme", "after": "soon"}})
    assert "est.endpoints.default.migration.after" in str(exc.value)
