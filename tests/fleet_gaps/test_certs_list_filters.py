"""`enroll certs list` with the inventory's filters (`enroll.certificate_listing`): the
renewal state of each certificate in its profile's window (SQL filter agreeing with
`state_of`), the search, sorts, offset and cursor pages, bounded arguments refused with
exit status 2, and the JSON / CSV shapes; on a store filled by real issuances through
the core, on SQLite and PostgreSQL."""

from __future__ import annotations

import contextlib
import csv
import datetime as dt
import io
import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from cryptography import x509

from enroll import config as config_mod
from enroll.certificate_listing import Filters, list_certificates
from enroll.cli import commands
from enroll.cli.main import build_parser, main
from enroll.clock import FrozenClock
from enroll.context import AppContext, build_context
from enroll.errors import MalformedInput
from enroll.model import Issued
from enroll.renewal_states import STATES, state_of
from enroll.testing import make_csr, request

START = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
NOW = START + dt.timedelta(days=400)
PROFILES = {
    # 90 days, window 10 days before expiry: due from day 80, overdue from day 85.
    "fixed": {"ca": "issuing", "validity": "90d", "renew_before": "10d",
              "subject": {"CN": "csr"}, "identity": "subject.CN", "key_types": ["ec-p256"]},
    # 40 days renewed in their second half: due from day 20, overdue from day 30.
    "frac": {"ca": "issuing", "validity": "40d", "renew_before": "50%",
             "subject": {"CN": "csr"}, "identity": "subject.CN", "key_types": ["ec-p256"]},
}
# (days before NOW, key, CN, profile, protocol, endpoint, state of that certificate at NOW)
# device: 365 days, default window (30 days): due from day 335, overdue from day 350.
ISSUES = [
    (370, "dev-expired", "dev-expired", "device", "scep", "mdm", "expired"),
    (355, "dev-overdue", "dev-overdue", "device", "scep", "mdm", "overdue"),
    (340, "dev-due", "dev-due", "device", "est", "default", "due"),
    # the frac certificate, renewed over ACME on day 20 of 40: that one is `migrated`,
    # the old one stays valid and is now past its window (`overdue`).
    (38, "moved-old", "moved", "frac", "scep", "mdm", "overdue"),
    (100, "dev-ok", "dev-ok", "device", "est", "default", "ok"),
    (82, "fixed-due", "fixed-due", "fixed", "est", "iot", "due"),
    (50, "fixed-ok", "fixed-ok", "fixed", "est", "iot", "ok"),
    (35, "frac-overdue", "frac-overdue", "frac", "acme", "", "overdue"),
    (25, "frac-due", "frac-due", "frac", "acme", "", "due"),
    (18, "moved-new", "moved", "frac", "acme", "", "migrated"),
    (10, "dev-revoked", "dev-revoked", "device", "scep", "mdm", "revoked"),
    (5, "frac-ok", "frac-ok", "frac", "acme", "", "ok"),
]
STATE = {key: state for *_x, key, _cn, _p, _pr, _e, state in ISSUES}


@pytest.fixture
def build(make_config: Callable[..., config_mod.Config]) -> Iterator[Callable[..., AppContext]]:
    opened: list[AppContext] = []

    def factory(**kw: Any) -> AppContext:
        clock = kw.pop("clock", None)
        ctx = build_context(make_config(**kw), clock=clock)
        opened.append(ctx)
        return ctx

    yield factory
    for ctx in opened:
        ctx.db.dispose()


@pytest.fixture
def fleet(build: Callable[..., AppContext]) -> tuple[AppContext, dict[str, str]]:
    """The certificates of ISSUES in issue order; the clock at NOW. Returns the context
    and key -> serial."""
    clock = FrozenClock(START)
    ctx = build(clock=clock, extra_profiles=PROFILES)
    serials: dict[str, str] = {}
    for days, key, cn, profile, protocol, endpoint, _state in sorted(
            ISSUES, key=lambda i: -i[0]):
        clock.advance(NOW - dt.timedelta(days=days) - clock.now())
        host = f"{cn}.example.com"
        extra: dict[str, Any] = {"device_id": "UDID-0042"} if key == "dev-due" else {}
        if key == "moved-new":
            extra["replaces"] = serials["moved-old"]
        outcome = ctx.authority.submit(request(
            make_csr(cn=host, dns=[host] if profile == "device" else []), profile,
            protocol=protocol, endpoint=endpoint, **extra))
        assert isinstance(outcome, Issued), outcome
        serials[key] = outcome.serial_hex
        if key == "dev-revoked":
            ctx.authority.revoke(outcome.serial_hex, x509.ReasonFlags.key_compromise, "ops")
    clock.advance(NOW - clock.now())
    return ctx, serials


def _keys(serials: dict[str, str], got: list[str]) -> list[str]:
    by_serial = {v: k for k, v in serials.items()}
    return [by_serial[s] for s in got]


def _cli(ctx: AppContext, *argv: str) -> tuple[int, str, str]:
    args = build_parser().parse_args(["certs", "list", *argv])
    opener = commands.Opener(args, {})
    opener._context = ctx
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = args.func(args, opener)
    return code, out.getvalue(), err.getvalue()


def _listed(ctx: AppContext, serials: dict[str, str], *argv: str) -> list[str]:
    code, out, _err = _cli(ctx, "--json", "--limit", "1000", *argv)
    assert code == 0
    return _keys(serials, [r["serial"] for r in json.loads(out)])


@pytest.mark.parametrize("state", STATES)
def test_state_filter_per_certificate_runs_in_sql_and_agrees_with_state_of(
        fleet: tuple[AppContext, dict[str, str]], state: str) -> None:
    ctx, serials = fleet
    want = {k for k, s in STATE.items() if s == state}
    assert want, state
    assert set(_listed(ctx, serials, "--state", state)) == want
    # The listing computes each row's state with renewal_states.state_of, and the SQL
    # filter keeps exactly the rows whose computed state is the one asked.
    page = list_certificates(ctx.db, ctx.authority.profiles, Filters(state=state), now=NOW,
                             limit=1000)
    for item in page.items:
        fleet_ = ctx.authority.profiles[item.record.profile].fleet
        assert item.state == state == state_of(
            fleet_, status=item.record.status.value, not_before=item.record.not_before,
            not_after=item.record.not_after, migrated_from=item.migrated_from, now=NOW)
    for profile in ("device", "fixed", "frac"):
        got = set(_listed(ctx, serials, "--state", state, "--profile", profile))
        assert got == {k for k in want if _profile(k) == profile}, (state, profile)


def _profile(key: str) -> str:
    return next(p for *_x, k, _cn, p, _pr, _e, _s in ISSUES if k == key)


def test_every_row_carries_its_state_and_migrated_from(
        fleet: tuple[AppContext, dict[str, str]]) -> None:
    ctx, serials = fleet
    code, out, _err = _cli(ctx, "--json", "--limit", "1000")
    rows = {r["serial"]: r for r in json.loads(out)}
    assert {k: rows[s]["state"] for k, s in serials.items()} == STATE
    assert rows[serials["moved-new"]]["migrated_from"] == "scep"
    assert rows[serials["moved-new"]]["replaces"] == serials["moved-old"]
    assert rows[serials["moved-old"]]["migrated_from"] is None
    assert rows[serials["dev-due"]]["device_id"] == "UDID-0042"


def test_the_older_filters_still_combine_with_the_new_ones(
        fleet: tuple[AppContext, dict[str, str]]) -> None:
    ctx, serials = fleet
    assert set(_listed(ctx, serials, "--protocol", "acme")) == {
        "frac-overdue", "frac-due", "moved-new", "frac-ok"}
    assert set(_listed(ctx, serials, "--endpoint", "mdm", "--state", "overdue")) == {
        "dev-overdue", "moved-old"}
    assert _listed(ctx, serials, "--status", "revoked") == ["dev-revoked"]
    assert set(_listed(ctx, serials, "--expiring-within", "12d", "--protocol", "acme")) == {
        "frac-overdue"}
    assert set(_listed(ctx, serials, "--identity", "subject.CN:moved.example.com")) == {
        "moved-old", "moved-new"}
    assert _listed(ctx, serials, "--ca", "other") == []


def test_search_prefix_exact_identity_device_id_serial_and_wildcard(
        fleet: tuple[AppContext, dict[str, str]]) -> None:
    ctx, serials = fleet
    assert set(_listed(ctx, serials, "--search", "FRAC-")) == {
        "frac-overdue", "frac-due", "frac-ok"}
    # Every certificate of the identities the prefix finds, whatever their protocol.
    assert set(_listed(ctx, serials, "--search", "mov")) == {"moved-old", "moved-new"}
    assert _listed(ctx, serials, "--search", "subject.CN:dev-ok.example.com") == ["dev-ok"]
    assert _listed(ctx, serials, "--search", "UDID-0042") == ["dev-due"]
    # A serial is that certificate (not all of its identity's), in any spelling.
    old = serials["moved-old"]
    assert _listed(ctx, serials, "--search", old) == ["moved-old"]
    assert _listed(ctx, serials, "--search", "0x" + old.upper()) == ["moved-old"]
    assert set(_listed(ctx, serials, "--search", "*-due.*")) == {
        "dev-due", "fixed-due", "frac-due"}
    assert _listed(ctx, serials, "--search", "*-due.*", "--protocol", "est") == [
        "fixed-due", "dev-due"]  # newest first
    assert _listed(ctx, serials, "--search", "nothing-like-it") == []
    assert _listed(ctx, serials, "--search", "100%_") == []  # LIKE metacharacters literal


def test_sorts_in_both_directions_and_the_defaults(
        fleet: tuple[AppContext, dict[str, str]]) -> None:
    ctx, serials = fleet
    page = list_certificates(ctx.db, ctx.authority.profiles, Filters(), now=NOW, limit=1000)
    everything = page.items
    keys = {
        "issued": lambda i: (i.issued, i.record.serial_hex),
        "not_after": lambda i: (i.record.not_after, i.record.serial_hex),
        "serial": lambda i: i.record.serial_hex,
    }
    for sort, key in keys.items():
        for desc in (False, True):
            want = [i.record.serial_hex for i in sorted(everything, key=key, reverse=desc)]
            argv = ["--sort", sort, *(["--desc"] if desc else [])]
            assert _keys(serials, want) == _listed(ctx, serials, *argv), (sort, desc)
    # No --sort: newest first; with --state or --expiring-within, soonest expiry first.
    issued_order = [k for *_d, k, _cn, _p, _pr, _e, _s in sorted(ISSUES, key=lambda i: i[0])]
    assert _listed(ctx, serials) == issued_order
    due = _listed(ctx, serials, "--state", "due")
    assert due == ["fixed-due", "frac-due", "dev-due"]
    assert _listed(ctx, serials, "--state", "due", "--desc") == due[::-1]


@pytest.mark.parametrize("argv", [
    ["--sort", "not_after"], ["--sort", "issued", "--desc"], ["--sort", "serial"], [],
    ["--state", "overdue"], ["--protocol", "acme", "--sort", "not_after", "--desc"]])
def test_pages_by_cursor_and_offset_cover_the_listing_once(
        fleet: tuple[AppContext, dict[str, str]], argv: list[str]) -> None:
    ctx, serials = fleet
    whole = _listed(ctx, serials, *argv)
    size = max(1, (len(whole) + 1) // 2)  # two pages (three for an odd count's rest)
    code, first, err = _cli(ctx, "--json", "--limit", str(size), *argv)
    assert code == 0
    got = _keys(serials, [r["serial"] for r in json.loads(first)])
    assert err.startswith("more: --after ")  # JSON stays one document on stdout
    cursor = err.split()[-1]
    code, second, err = _cli(ctx, "--json", "--limit", str(size), "--after", cursor, *argv)
    got += _keys(serials, [r["serial"] for r in json.loads(second)])
    while err:
        cursor = err.split()[-1]
        code, more, err = _cli(ctx, "--json", "--limit", str(size), "--after", cursor,
                               *argv)
        got += _keys(serials, [r["serial"] for r in json.loads(more)])
    assert got == whole
    code, by_offset, _err = _cli(ctx, "--json", "--limit", str(size), "--offset",
                                 str(size), *argv)
    assert _keys(serials, [r["serial"] for r in json.loads(by_offset)]) == (
        whole[size:2 * size])


def test_table_prints_the_cursor_like_the_inventory(
        fleet: tuple[AppContext, dict[str, str]]) -> None:
    ctx, serials = fleet
    code, out, _err = _cli(ctx, "--limit", "6", "--sort", "not_after")
    lines = out.splitlines()
    assert lines[0].split() == ["SERIAL", "STATUS", "STATE", "PROFILE", "PROTOCOL",
                                "SUBJECT", "NOT_AFTER"]
    assert len(lines) == 2 + 6 + 1 and lines[-1].startswith("more: --after ")
    assert lines[2].split()[:3] == [serials["dev-expired"], "valid", "expired"]
    code, rest, _err = _cli(ctx, "--limit", "6", "--sort", "not_after", "--after",
                            lines[-1].split()[-1])
    rest_lines = rest.splitlines()
    assert len(rest_lines) == 2 + 6 and "more:" not in rest
    assert {ln.split()[0] for ln in lines[2:8]}.isdisjoint(
        {ln.split()[0] for ln in rest_lines[2:]})


def test_csv_has_the_new_columns(fleet: tuple[AppContext, dict[str, str]]) -> None:
    ctx, serials = fleet
    code, out, _err = _cli(ctx, "--csv", "--search", "moved", "--sort", "issued")
    rows = list(csv.DictReader(io.StringIO(out)))
    assert list(rows[0]) == list(commands.CERT_CSV_COLUMNS)
    assert [(r["serial"], r["state"], r["protocol"], r["migrated_from"], r["replaces"])
            for r in rows] == [
        (serials["moved-old"], "overdue", "scep", "", ""),
        (serials["moved-new"], "migrated", "acme", "scep", serials["moved-old"])]
    assert dt.datetime.fromisoformat(rows[1]["issued"]) == NOW - dt.timedelta(days=18)
    assert dt.datetime.fromisoformat(rows[1]["not_before"]) <= NOW - dt.timedelta(days=18)


@pytest.mark.parametrize("argv", [
    ["--state", "late"], ["--sort", "subject"], ["--limit", "0"], ["--limit", "1001"],
    ["--offset", "-1"], ["--offset", "100001"], ["--offset", "x"],
    ["--offset", "2", "--after", "x"], ["--search", "x" * 300],
    ["--search", "dev-\udcff"], ["--expiring-within", "soon"], ["--json", "--csv"],
    ["--status", "expired"]])
def test_bad_values_are_refused_with_exit_status_2(
        argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        build_parser().parse_args(["certs", "list", *argv])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "enroll certs list: error: argument" in err


def test_a_cursor_of_another_listing_is_refused_with_exit_status_2(
        fleet: tuple[AppContext, dict[str, str]]) -> None:
    ctx, _serials = fleet
    code, out, _err = _cli(ctx, "--limit", "2", "--sort", "not_after")
    cursor = out.splitlines()[-1].split()[-1]
    for argv in (["--sort", "issued"], ["--sort", "not_after", "--desc"], []):
        code, out, err = _cli(ctx, "--limit", "2", "--after", cursor, *argv)
        assert (code, out) == (2, "")
        assert err == ("enroll certs list: error: not a cursor of this listing (same sort "
                       "and direction)\n")
    code, out, err = _cli(ctx, "--after", "!!not-a-cursor")
    assert code == 2 and "not a cursor" in err
    inventory_cursor = json.loads(_inventory(ctx, "--limit", "1", "--json"))["next"]
    code, _out, err = _cli(ctx, "--after", inventory_cursor)
    assert code == 2 and "not a cursor" in err
    with pytest.raises(MalformedInput):
        list_certificates(ctx.db, ctx.authority.profiles, Filters(status="gone"), now=NOW)


def _inventory(ctx: AppContext, *argv: str) -> str:
    args = build_parser().parse_args(["inventory", *argv])
    opener = commands.Opener(args, {})
    opener._context = ctx
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert args.func(args, opener) == 0
    return out.getvalue()


def test_the_installed_command_exits_2_on_a_bad_cursor(
        tmp_path: Any, capsys: pytest.CaptureFixture[str]) -> None:
    """`main()` as the console script runs it, on an initialised data dir."""
    from enroll.embedded import init_data_dir
    from enroll.plugin_loader import build_plugin_manager

    data = tmp_path / "data"
    assert init_data_dir(data, build_plugin_manager()) is not None
    build_context(config_mod.load(None, {}, data_dir=data)).db.dispose()
    assert main(["--data-dir", str(data), "certs", "list", "--after", "bad"]) == 2
    assert "not a cursor" in capsys.readouterr().err
    assert main(["--data-dir", str(data), "certs", "list", "--state", "ok", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == []
