"""``enroll migration status`` / ``stragglers`` over a store filled by real issuances
over SCEP, EST and ACME requests through the core (`enroll.migration_report`)."""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import io
import json
from collections.abc import Callable
from typing import Any

import pytest
from cryptography import x509

from enroll.cli import migration as cli
from enroll.clock import FrozenClock
from enroll.context import AppContext
from enroll.model import Issued
from enroll.testing import make_csr, request

LAPTOP: dict[str, Any] = {
    "ca": "issuing", "validity": "90d", "identity": "subject.CN",
    "subject": {"CN": "csr"}, "key_types": ["ec-p256", "rsa-2048"],
    "extended_key_usage": ["client_auth"],
    "migration": {"to": "acme", "after": "2020-01-01", "mode": "warn",
                  "message": "Renew over ACME"},
}
NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)
T0 = NOW - dt.timedelta(days=70)


class _Opener:
    def __init__(self, ctx: AppContext) -> None:
        self.ctx = ctx

    def context(self) -> AppContext:
        return self.ctx


def run(ctx: AppContext, capsys: pytest.CaptureFixture[str], command: str,
        **args: Any) -> str:
    func = cli.cmd_migration_status if command == "status" else cli.cmd_migration_stragglers
    defaults = {"profile": None, "json": False, "csv": False, "limit": None}
    assert func(argparse.Namespace(**{**defaults, **args}), _Opener(ctx)) == 0  # type: ignore[arg-type]
    return capsys.readouterr().out


def when(cert: x509.Certificate) -> str:
    return cert.not_valid_after_utc.isoformat(timespec="seconds")


@pytest.fixture
def fleet(build: Callable[..., AppContext]) -> tuple[AppContext, dict[str, x509.Certificate]]:
    """dev1 (SCEP) and dev5 (EST) are stragglers; dev2 moved to ACME in its renewal
    window, dev3 before it opened; dev4 started on ACME; dev6's SCEP certificate is
    revoked (not live)."""
    clock = FrozenClock(T0)
    ctx = build(clock=clock, extra_profiles={"laptop": LAPTOP})
    certs: dict[str, x509.Certificate] = {}

    def issue(name: str, protocol: str, at: dt.timedelta, replaces: str | None = None,
              key: str = "") -> x509.Certificate:
        clock._at = T0 + at  # noqa: SLF001 - the frozen clock moves forward only
        outcome = ctx.authority.submit(request(
            make_csr(cn=name), "laptop", protocol=protocol, endpoint="default",
            replaces=replaces, device_id=f"MDM-{name}"))
        assert isinstance(outcome, Issued), outcome
        certs[key or name] = outcome.certificate
        return outcome.certificate

    day = dt.timedelta(days=1)
    issue("dev1", "scep", 0 * day)
    old2 = issue("dev2", "scep", 0 * day, key="dev2-scep")
    old3 = issue("dev3", "scep", 10 * day, key="dev3-scep")
    issue("dev5", "est", 5 * day)
    dev6 = issue("dev6", "scep", 0 * day)
    issue("dev3", "acme", 20 * day, replaces=format(old3.serial_number, "x"))
    issue("dev2", "acme", 70 * day, replaces=format(old2.serial_number, "x"))
    issue("dev4", "acme", 70 * day)
    ctx.authority.revoke(dev6.serial_number, x509.ReasonFlags.cessation_of_operation, "t")
    return ctx, certs


def test_status_json_counts_doors_share_moves_and_completion(
        fleet: tuple[AppContext, dict[str, x509.Certificate]],
        capsys: pytest.CaptureFixture[str]) -> None:
    ctx, certs = fleet
    out = json.loads(run(ctx, capsys, "status", json=True))
    assert out["at"] == NOW.isoformat(timespec="seconds")
    assert out["profiles"] == [{
        "profile": "laptop",
        "migration": {"to": "acme", "endpoint": None, "after": "2020-01-01T00:00:00+00:00",
                      "mode": "warn"},
        "identities": 5, "on_target": 3, "stragglers": 2, "share_migrated": 60.0,
        "doors": [{"protocol": "acme", "endpoint": "default", "identities": 3,
                   "target": True},
                  {"protocol": "est", "endpoint": "default", "identities": 1,
                   "target": False},
                  {"protocol": "scep", "endpoint": "default", "identities": 1,
                   "target": False}],
        "migrated": 2, "renewed_early": 1,
        "first_straggler_expiry": when(certs["dev1"]),
        "projected_completion": when(certs["dev5"]),
    }]
    # --profile: the same profile alone; a profile without a policy is not found.
    assert json.loads(run(ctx, capsys, "status", json=True, profile="laptop"))["profiles"] \
        == out["profiles"]
    table = run(ctx, capsys, "status")
    assert table.splitlines()[0] == ("profile laptop: to acme after "
                                     "2020-01-01T00:00:00+00:00 (mode warn)")
    assert "on target 3 of 5 (60.0%); migrated 2, renewed early 1" in table
    assert f"projected completion {when(certs['dev5'])}" in table


def test_stragglers_csv_and_json_soonest_expiry_first(
        fleet: tuple[AppContext, dict[str, x509.Certificate]],
        capsys: pytest.CaptureFixture[str]) -> None:
    ctx, certs = fleet
    text = run(ctx, capsys, "stragglers", profile="laptop", csv=True)
    assert text.splitlines()[0] == "identity,device_id,protocol,endpoint,serial,not_after"
    assert list(csv.DictReader(io.StringIO(text))) == [
        {"identity": f"subject.CN:{name}", "device_id": f"MDM-{name}", "protocol": protocol,
         "endpoint": "default", "serial": format(certs[name].serial_number, "x"),
         "not_after": when(certs[name])}
        for name, protocol in (("dev1", "scep"), ("dev5", "est"))]
    rows = json.loads(run(ctx, capsys, "stragglers", profile="laptop", json=True))
    assert [(r["identity"], r["device_id"]) for r in rows] == [
        ("subject.CN:dev1", "MDM-dev1"), ("subject.CN:dev5", "MDM-dev5")]
    assert set(rows[0]) == {"identity", "device_id", "protocol", "endpoint", "serial",
                            "not_after"}


def test_a_profile_without_a_policy_is_not_found(
        fleet: tuple[AppContext, dict[str, x509.Certificate]]) -> None:
    from enroll.errors import NotFound

    ctx, _ = fleet
    with pytest.raises(NotFound, match="has no migration policy"):
        cli.cmd_migration_stragglers(argparse.Namespace(
            profile="device", csv=True, json=False, limit=None), _Opener(ctx))  # type: ignore[arg-type]


def test_a_device_id_cannot_become_a_spreadsheet_formula() -> None:
    assert cli._cell("=HYPERLINK(1)") == "'=HYPERLINK(1)"  # noqa: SLF001
    assert cli._cell(None) == ""  # noqa: SLF001
