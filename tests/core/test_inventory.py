"""The inventory (`enroll.inventory`, `enroll inventory`, `enroll certs list` filters)
on a store filled by real issuances through the core over SCEP, EST and ACME requests,
on SQLite and PostgreSQL: every filter, each renewal state as the profile's window says
(and as SQL filters it), sorting, offset and cursor pages, and the JSON / CSV shapes."""

from __future__ import annotations

import argparse
import contextlib
import csv
import datetime as dt
import io
import json
from collections.abc import Callable
from typing import Any

import pytest
from cryptography import x509

from enroll.cli import commands
from enroll.cli.main import build_parser
from enroll.clock import FrozenClock
from enroll.context import AppContext
from enroll.errors import MalformedInput
from enroll.inventory import Filters, InventoryRow, list_identities
from enroll.model import Issued
from enroll.renewal_states import STATES
from enroll.testing import make_csr, request

START = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
NOW = START + dt.timedelta(days=400)
PROFILES = {
    # 40-day certificates renewed in their second half: due from day 20, overdue from 30.
    "frac": {"ca": "issuing", "validity": "40d", "renew_before": "50%",
             "subject": {"CN": "csr"}, "identity": "subject.CN",
             "key_types": ["ec-p256"]},
    # 90 days, window 10 days before expiry: due from day 80, overdue from day 85.
    "fixed": {"ca": "issuing", "validity": "90d", "renew_before": "10d",
              "subject": {"CN": "csr"}, "identity": "subject.CN",
              "key_types": ["ec-p256"]},
}
# (days before NOW, name, profile, protocol, endpoint, expected state at NOW)
# device: 365 days, default window (30 days): due from day 335, overdue from day 350.
# server: 90 days, default window (30 days): due from day 60, overdue from day 75.
ISSUES = [
    (370, "dev-expired", "device", "scep", "mdm", "expired"),
    (355, "dev-overdue", "device", "scep", "mdm", "overdue"),
    (340, "dev-due", "device", "est", "default", "due"),
    (200, "web-moved", "server", "scep", "default", None),  # renewed over ACME below
    (100, "dev-ok", "device", "est", "default", "ok"),
    (82, "fixed-due", "fixed", "est", "iot", "due"),
    (50, "fixed-ok", "fixed", "est", "iot", "ok"),
    (35, "frac-overdue", "frac", "acme", "", "overdue"),
    (25, "frac-due", "frac", "acme", "", "due"),
    (20, "web-moved", "server", "acme", "", "migrated"),
    (10, "dev-revoked", "device", "scep", "mdm", "revoked"),
    (5, "frac-ok", "frac", "acme", "", "ok"),
]
EXPECTED = {name: state for *_x, name, _p, _pr, _e, state in ISSUES if state}


def _identity(name: str, profile: str) -> str:
    return f"san:dns:{name}.example.com" if profile == "server" else \
        f"subject.CN:{name}.example.com"


@pytest.fixture
def fleet(build: Callable[..., AppContext]) -> tuple[AppContext, dict[str, str]]:
    """A store with the identities of ISSUES; the clock at NOW. Returns the context and
    name -> serial of each identity's current certificate."""
    clock = FrozenClock(START)
    ctx = build(clock=clock, extra_profiles=PROFILES)
    serials: dict[str, str] = {}
    for days, name, profile, protocol, endpoint, _state in ISSUES:
        clock.advance(NOW - dt.timedelta(days=days) - clock.now())
        host = f"{name}.example.com"
        csr = make_csr(cn=host, dns=[host] if profile in ("server", "device") else [])
        extra: dict[str, Any] = {"device_id": "UDID-0042"} if name == "dev-due" else {}
        outcome = ctx.authority.submit(request(csr, profile, protocol=protocol,
                                               endpoint=endpoint, **extra))
        assert isinstance(outcome, Issued), outcome
        serials[name] = outcome.serial_hex
        if name == "dev-revoked":
            ctx.authority.revoke(outcome.serial_hex, x509.ReasonFlags.key_compromise, "ops")
    clock.advance(NOW - clock.now())
    return ctx, serials


def _list(ctx: AppContext, **kw: Any) -> list[InventoryRow]:
    page = list_identities(ctx.db, ctx.authority.profiles, Filters(**kw), now=NOW,
                           limit=1000)
    return page.items


def _names(rows: list[InventoryRow]) -> set[str]:
    return {r.identity.split(":")[-1].removesuffix(".example.com") for r in rows}


def test_one_row_per_identity_with_its_current_certificate_and_state(
        fleet: tuple[AppContext, dict[str, str]]) -> None:
    ctx, serials = fleet
    rows = {r.identity: r for r in _list(ctx)}
    assert len(rows) == len(EXPECTED)
    for name, state in EXPECTED.items():
        profile = next(p for *_x, n, p, _pr, _e, _s in ISSUES if n == name)
        row = rows[_identity(name, profile)]
        assert row.state == state, name
        assert row.serial == serials[name]
    moved = rows[_identity("web-moved", "server")]
    assert (moved.protocol, moved.migrated_from, moved.certificates) == ("acme", "scep", 2)
    assert moved.first_issued == NOW - dt.timedelta(days=200)
    assert moved.last_issued == NOW - dt.timedelta(days=20)
    due = rows[_identity("dev-due", "device")]
    assert (due.device_id, due.endpoint, due.protocol, due.ca) == (
        "UDID-0042", "default", "est", "issuing")


@pytest.mark.parametrize("state", STATES)
def test_the_state_filter_runs_in_sql_and_agrees_with_each_profiles_window(
        fleet: tuple[AppContext, dict[str, str]], state: str) -> None:
    ctx, _ = fleet
    want = {n for n, s in EXPECTED.items() if s == state}
    assert want, state
    assert _names(_list(ctx, state=state)) == want
    for profile in ("device", "frac", "fixed", "server"):
        rows = _list(ctx, state=state, profile=profile)
        assert {r.profile for r in rows} <= {profile}
        assert _names(rows) == {n for n in want if _profile_of(n) == profile}


def _profile_of(name: str) -> str:
    return next(p for *_x, n, p, _pr, _e, _s in ISSUES if n == name)


def test_a_profile_change_or_removal_takes_effect_at_once(
        fleet: tuple[AppContext, dict[str, str]], build: Callable[..., AppContext]) -> None:
    ctx, _ = fleet
    # "frac" removed: its certificates take the default window (a third of 40 days at
    # most: due from day 26.7), so frac-due (day 25) is ok and frac-overdue (day 35,
    # past day 33.3) stays overdue.
    without = build(clock=FrozenClock(NOW), extra_profiles={"fixed": PROFILES["fixed"]})
    assert _names(_list(without, state="ok", profile="frac")) == {"frac-due", "frac-ok"}
    assert _names(_list(without, state="overdue")) == {"dev-overdue", "frac-overdue"}
    # "fixed" now opens 50 days before expiry: fixed-ok (day 50 of 90) is due.
    wider = build(clock=FrozenClock(NOW), extra_profiles={
        "frac": PROFILES["frac"], "fixed": {**PROFILES["fixed"], "renew_before": "50d"}})
    assert _names(_list(wider, state="due", profile="fixed")) == {"fixed-ok"}
    assert _names(_list(wider, state="overdue", profile="fixed")) == {"fixed-due"}
    assert {r.state for r in _list(wider, profile="fixed")} == {"due", "overdue"}


def test_filters_by_protocol_profile_ca_endpoint_and_expiry(
        fleet: tuple[AppContext, dict[str, str]]) -> None:
    ctx, _ = fleet
    assert _names(_list(ctx, protocol="acme")) == {"frac-overdue", "frac-due", "web-moved",
                                                   "frac-ok"}
    assert _names(_list(ctx, protocol="scep")) == {"dev-expired", "dev-overdue",
                                                   "dev-revoked"}
    assert _names(_list(ctx, profile="fixed")) == {"fixed-due", "fixed-ok"}
    assert _names(_list(ctx, endpoint="iot")) == {"fixed-due", "fixed-ok"}
    assert _names(_list(ctx, endpoint="mdm", protocol="scep")) == {
        "dev-expired", "dev-overdue", "dev-revoked"}
    assert len(_list(ctx, ca="issuing")) == len(EXPECTED) and not _list(ctx, ca="other")
    # Live (not revoked, not expired) and expiring within 12 days: frac-due has 15 left.
    assert _names(_list(ctx, expiring_within=12 * 86400)) == {"dev-overdue", "fixed-due",
                                                             "frac-overdue"}
    assert _names(_list(ctx, expiring_within=12 * 86400, protocol="acme")) == {
        "frac-overdue"}


def test_search_by_prefix_exact_identity_device_id_serial_and_wildcard(
        fleet: tuple[AppContext, dict[str, str]]) -> None:
    ctx, serials = fleet
    assert _names(_list(ctx, search="FRAC-")) == {"frac-overdue", "frac-due", "frac-ok"}
    assert _names(_list(ctx, search="dev-o")) == {"dev-overdue", "dev-ok"}
    assert _names(_list(ctx, search="san:dns:web-moved.example.com")) == {"web-moved"}
    assert _names(_list(ctx, search="UDID-0042")) == {"dev-due"}
    # Any certificate of the identity, not only its current one.
    with ctx.db.read() as tx:
        first = tx.scalar("SELECT serial FROM certificates WHERE identity = ? AND "
                          "protocol = 'scep'", (_identity("web-moved", "server"),))
    assert _names(_list(ctx, search=first)) == {"web-moved"}
    assert _names(_list(ctx, search=serials["dev-ok"].upper())) == {"dev-ok"}
    assert _names(_list(ctx, search="*-due.*")) == {"dev-due", "fixed-due", "frac-due"}
    assert _list(ctx, search="nothing-like-it") == []
    assert _list(ctx, search="100%_") == []  # LIKE metacharacters are literal
    assert _list(ctx, search="dev-\U0010ffff") == []
    assert _list(ctx, search="dev-\ud7ff") == []
    with pytest.raises(MalformedInput):
        _list(ctx, search="dev-\udcff")


def test_sorts_and_pages_by_offset_and_cursor(
        fleet: tuple[AppContext, dict[str, str]]) -> None:
    ctx, _ = fleet
    everyone = _list(ctx)
    for sort in ("not_after", "last_issued", "identity"):
        for desc in (False, True):
            want = [r.identity for r in sorted(
                everyone, key=lambda r, s=sort: (getattr(r, s), r.identity),  # type: ignore[misc]
                reverse=desc)]
            got: list[str] = []
            after = None
            while True:
                page = list_identities(ctx.db, ctx.authority.profiles, Filters(), now=NOW,
                                       sort=sort, descending=desc, limit=4, after=after)
                got += [r.identity for r in page.items]
                if page.next is None:
                    break
                after = page.next
            assert got == want, (sort, desc)
            by_offset = list_identities(ctx.db, ctx.authority.profiles, Filters(), now=NOW,
                                        sort=sort, descending=desc, limit=4, offset=4)
            assert [r.identity for r in by_offset.items] == want[4:8]
    # A cursor belongs to its sort and direction; bad values are refused.
    page = list_identities(ctx.db, ctx.authority.profiles, Filters(), now=NOW, limit=2)
    assert page.next is not None
    for bad in ({"after": page.next, "sort": "identity"},
                {"after": page.next, "descending": True}, {"after": "!!not-a-cursor"},
                {"limit": 0}, {"limit": 1001}, {"offset": -1}, {"sort": "serial"}):
        with pytest.raises(MalformedInput):
            list_identities(ctx.db, ctx.authority.profiles, Filters(), now=NOW, **bad)
    with pytest.raises(MalformedInput):
        list_identities(ctx.db, ctx.authority.profiles, Filters(state="late"), now=NOW)
    with pytest.raises(MalformedInput):
        list_identities(ctx.db, ctx.authority.profiles, Filters(search="x" * 300), now=NOW)


# -- the CLI's command functions on this store ----------------------------------------------

def _cli(ctx: AppContext, *argv: str) -> str:
    args = build_parser().parse_args(list(argv))
    opener = commands.Opener(args, {})
    opener._context = ctx
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert args.func(args, opener) == 0
    return out.getvalue()


def test_inventory_json_csv_and_table(fleet: tuple[AppContext, dict[str, str]]) -> None:
    ctx, serials = fleet
    doc = json.loads(_cli(ctx, "inventory", "--state", "due", "--sort", "identity",
                          "--json"))
    assert set(doc) == {"items", "next"} and doc["next"] is None
    assert [i["identity"] for i in doc["items"]] == [
        "subject.CN:dev-due.example.com", "subject.CN:fixed-due.example.com",
        "subject.CN:frac-due.example.com"]
    first = doc["items"][0]
    assert list(first) == ["identity", "serial", "protocol", "endpoint", "profile", "ca",
                           "not_before", "not_after", "state", "first_issued",
                           "last_issued", "certificates", "requester", "device_id",
                           "migrated_from"]
    assert first["serial"] == serials["dev-due"] and first["state"] == "due"
    assert first["device_id"] == "UDID-0042" and first["certificates"] == 1
    assert dt.datetime.fromisoformat(first["not_after"]) == (
        NOW - dt.timedelta(days=340) + dt.timedelta(days=365))

    paged = json.loads(_cli(ctx, "inventory", "--limit", "2", "--json"))
    assert len(paged["items"]) == 2 and paged["next"]
    rest = json.loads(_cli(ctx, "inventory", "--limit", "1000", "--after", paged["next"],
                           "--json"))
    assert len(rest["items"]) == len(EXPECTED) - 2 and rest["next"] is None

    text = _cli(ctx, "inventory", "--protocol", "acme", "--csv")
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[0] == ["identity", "serial", "state", "protocol", "endpoint", "profile",
                       "ca", "not_before", "not_after", "first_issued", "last_issued",
                       "certificates", "requester", "device_id", "migrated_from"]
    assert sorted((r[0], r[2], r[14]) for r in rows[1:]) == [
        ("san:dns:web-moved.example.com", "migrated", "scep"),
        ("subject.CN:frac-due.example.com", "due", ""),
        ("subject.CN:frac-ok.example.com", "ok", ""),
        ("subject.CN:frac-overdue.example.com", "overdue", "")]

    table = _cli(ctx, "inventory", "--expiring-within", "12d", "--limit", "2").splitlines()
    assert table[0].split() == ["IDENTITY", "STATE", "PROTOCOL", "PROFILE", "CA",
                                "NOT_AFTER", "SERIAL", "CERTIFICATES", "DEVICE_ID",
                                "MIGRATED_FROM"]
    assert table[2].startswith("subject.CN:frac-overdue.example.com  overdue  acme")
    assert table[3].startswith("subject.CN:fixed-due.example.com     due      est")
    assert table[-1].startswith("more: --after ")


def test_certs_list_filters_json_and_csv(fleet: tuple[AppContext, dict[str, str]]) -> None:
    ctx, serials = fleet

    def listed(*argv: str) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = json.loads(_cli(ctx, "certs", "list", "--json", *argv))
        return rows

    everything = listed()
    assert len(everything) == len(ISSUES)
    assert [r["serial"] for r in listed("--protocol", "acme")][:1] == [serials["frac-ok"]]
    assert {r["protocol"] for r in listed("--protocol", "scep")} == {"scep"}
    assert len(listed("--protocol", "scep")) == 4
    assert {r["serial"] for r in listed("--profile", "fixed")} == {
        serials["fixed-due"], serials["fixed-ok"]}
    assert {r["endpoint"] for r in listed("--endpoint", "mdm")} == {"mdm"}
    assert len(listed("--endpoint", "mdm")) == 3
    moved = listed("--identity", "san:dns:web-moved.example.com")
    assert [r["protocol"] for r in moved] == ["acme", "scep"]  # newest first
    assert [r["serial"] for r in listed("--status", "revoked")] == [serials["dev-revoked"]]
    assert {r["serial"] for r in listed("--expiring-within", "12d")} == {
        serials["dev-overdue"], serials["fixed-due"], serials["frac-overdue"]}
    assert [r["serial"] for r in listed("--profile", "frac", "--limit", "1")] == [
        serials["frac-ok"]]
    text = _cli(ctx, "certs", "list", "--csv", "--profile", "fixed")
    rows = list(csv.DictReader(io.StringIO(text)))
    assert list(rows[0]) == list(commands.CERT_CSV_COLUMNS)
    assert [(r["serial"], r["endpoint"], r["identity"]) for r in rows] == [
        (serials["fixed-ok"], "iot", "subject.CN:fixed-ok.example.com"),
        (serials["fixed-due"], "iot", "subject.CN:fixed-due.example.com")]


def test_csv_cells_a_spreadsheet_would_run_are_quoted() -> None:
    from enroll.cli.inventory import as_csv

    out = as_csv([{"a": "=HYPERLINK(1)", "b": None, "c": 3}], ["a", "b", "c"])
    assert out.splitlines() == ["a,b,c", "'=HYPERLINK(1),,3"]


def test_cli_refuses_bad_arguments(capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (["inventory", "--limit", "5000"], ["inventory", "--state", "late"],
                 ["inventory", "--expiring-within", "soon"],
                 ["inventory", "--offset", "2", "--after", "x"],
                 ["inventory", "--json", "--csv"], ["certs", "list", "--limit", "0"]):
        with pytest.raises(SystemExit) as exc:
            build_parser().parse_args(argv)
        assert exc.value.code == 2
    assert "invalid" in capsys.readouterr().err


def test_unused_argparse_namespace_defaults_keep_old_callers_working(
        fleet: tuple[AppContext, dict[str, str]]) -> None:
    """bench/growth.py calls `cmd_certs_list` with the arguments it had before."""
    ctx, _ = fleet
    args = argparse.Namespace(status=None, ca=None, limit=3, json=True)
    opener = commands.Opener(args, {})
    opener._context = ctx
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        commands.cmd_certs_list(args, opener)
    assert len(json.loads(out.getvalue())) == 3


def test_enroll_inventory_as_an_operator_runs_it(
        tmp_path: Any, run_cli: Callable[..., Any],
        open_data_dir: Callable[..., AppContext]) -> None:
    """The installed command on an initialised data dir (SQLite, a subprocess)."""
    from enroll import config as config_mod
    from enroll.context import build_context
    from enroll.embedded import init_data_dir
    from enroll.plugin_loader import build_plugin_manager

    data = tmp_path / "data"
    assert init_data_dir(data, build_plugin_manager()) is not None
    build_context(config_mod.load(None, {}, data_dir=data)).db.dispose()
    ctx = open_data_dir(data)
    for cn, protocol in (("printer-1", "scep"), ("printer-2", "est")):
        assert isinstance(ctx.authority.submit(request(make_csr(cn=cn), protocol=protocol,
                                                       device_id=f"id-{cn}")), Issued)
    doc = json.loads(run_cli(data, "inventory", "--search", "PRINTER", "--json").stdout)
    assert [(i["identity"], i["protocol"], i["state"], i["device_id"])
            for i in sorted(doc["items"], key=lambda i: i["identity"])] == [
        ("subject.CN:printer-1", "scep", "ok", "id-printer-1"),
        ("subject.CN:printer-2", "est", "ok", "id-printer-2")]
    assert doc["next"] is None
    lines = run_cli(data, "inventory", "--protocol", "est", "--csv").stdout.splitlines()
    assert lines[0].startswith("identity,serial,state,") and len(lines) == 2
    bad = run_cli(data, "inventory", "--after", "not-a-cursor", check=False)
    assert bad.returncode == 1
    assert bad.stderr.strip() == ("error: not a cursor of this listing (same sort and "
                                  "direction)")
    listed = json.loads(run_cli(data, "certs", "list", "--protocol", "scep", "--json").stdout)
    assert [r["identity"] for r in listed] == ["subject.CN:printer-1"]
