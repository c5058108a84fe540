"""Four-eyes approval (``approvals_required``: N distinct approvers, never the requester)
and the expiry of pending requests (``pending_expiry``), through the authority and the
CLI, on a SQLite file and on PostgreSQL."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from harness import child_env

from enroll import config as config_mod
from enroll.approvals import cli_actor, os_user
from enroll.clock import FrozenClock
from enroll.context import AppContext, build_context
from enroll.embedded import init_data_dir
from enroll.errors import ConfigError, Conflict, Unauthorized
from enroll.model import AwaitingApproval, Issued, Pending, Rejected, RequestStatus
from enroll.plugin_loader import build_plugin_manager
from enroll.store import audit_chain, queries
from enroll.testing import make_csr, request

FOUR_EYES = {"four": {"ca": "issuing", "validity": "30d", "approval": "manual",
                      "approvals_required": 2, "pending_expiry": "2h",
                      "extended_key_usage": ["client_auth"], "san": {"dns": ["*"]}}}
START = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(START)


@pytest.fixture
def ctx(build: Callable[..., AppContext], clock: FrozenClock) -> AppContext:
    return build(clock=clock, extra_profiles=FOUR_EYES)


def pend(ctx: AppContext, requester: str = "est-user:default:dev") -> Pending:
    from enroll.model import Requester

    outcome = ctx.authority.submit(request(make_csr(dns=["q.example.com"]), "four",
                                           requester=Requester(requester, "basic")))
    assert isinstance(outcome, Pending)
    return outcome


def events(ctx: AppContext, request_id: str) -> list[tuple[str, str]]:
    with ctx.db.read() as tx:
        return [(e.type, e.actor) for e in queries.list_audit(tx, request_id=request_id)]


def test_two_distinct_approvers_issue_and_each_approval_is_audited(ctx: AppContext) -> None:
    pending = pend(ctx)
    first = ctx.authority.approve(pending.request_id, "alice")
    assert first == AwaitingApproval(pending.request_id, ("alice",), 2)
    assert isinstance(ctx.authority.status(pending.request_id), Pending)
    with pytest.raises(Conflict, match="alice has already approved"):
        ctx.authority.approve(pending.request_id, "alice")
    second = ctx.authority.approve(pending.request_id, "bob")
    assert isinstance(second, Issued)
    assert events(ctx, pending.request_id) == [
        ("request.pending", "est-user:default:dev"), ("request.approval", "alice"),
        ("request.approved", "bob"), ("certificate.issued", "est-user:default:dev")]
    with ctx.db.read() as tx:
        [approved] = [e for e in queries.list_audit(tx, request_id=pending.request_id)
                      if e.type == "request.approved"]
        assert audit_chain.verify(tx).ok
    assert approved.details["approvers"] == ["alice", "bob"]
    assert approved.details["required"] == 2
    assert ctx.authority.approvers(pending.request_id) == ["alice", "bob"]


def test_the_requester_can_never_approve_its_own_request(ctx: AppContext) -> None:
    pending = pend(ctx, requester="est-user:default:carol")
    with pytest.raises(Unauthorized, match="cannot approve its own request"):
        ctx.authority.approve(pending.request_id, "est-user:default:carol")
    # Through the CLI's actor too: the claimed name is checked as well as the account.
    with pytest.raises(Unauthorized):
        ctx.authority.approve(pending.request_id, cli_actor("est-user:default:carol"))
    assert ctx.authority.approvers(pending.request_id) == []
    assert ("request.approval_refused", "est-user:default:carol") in events(
        ctx, pending.request_id)


def test_racing_approvers_reach_the_quorum_once(ctx: AppContext) -> None:
    pending = pend(ctx)
    n = 6
    barrier = threading.Barrier(n)

    def work(i: int) -> Any:
        barrier.wait(timeout=30)
        try:
            return ctx.authority.approve(pending.request_id, f"officer-{i}")
        except Conflict as exc:
            return exc

    with ThreadPoolExecutor(max_workers=n) as pool:
        results = list(pool.map(work, range(n)))
    assert sum(isinstance(r, Issued) for r in results) == 1
    assert sum(isinstance(r, AwaitingApproval) for r in results) == 1
    assert all(isinstance(r, Conflict) for r in results
               if not isinstance(r, Issued | AwaitingApproval))
    assert len(ctx.authority.approvers(pending.request_id)) == 2


def test_a_pending_request_expires_when_read_after_pending_expiry(
        ctx: AppContext, clock: FrozenClock) -> None:
    pending = pend(ctx)
    ctx.authority.approve(pending.request_id, "alice")
    clock.advance(dt.timedelta(hours=2))
    outcome = ctx.authority.status(pending.request_id)
    assert isinstance(outcome, Rejected)
    assert "not approved within 2h" in outcome.reason
    record = ctx.authority.request(pending.request_id)
    assert record is not None and record.status is RequestStatus.EXPIRED
    with pytest.raises(Conflict, match="expired, not pending"):
        ctx.authority.approve(pending.request_id, "bob")
    assert events(ctx, pending.request_id)[-1] == ("request.expired", "system:expiry")


def test_the_sweep_expires_only_what_is_due_and_once(build: Callable[..., AppContext],
                                                     clock: FrozenClock) -> None:
    ctx = build(clock=clock, extra_profiles={
        **FOUR_EYES, "slow": {**FOUR_EYES["four"], "pending_expiry": "7d"}})
    due = pend(ctx)
    kept = ctx.authority.submit(request(make_csr(dns=["k.example.com"], cn="k.example.com"),
                                        "slow"))
    assert isinstance(kept, Pending)
    clock.advance(dt.timedelta(hours=3))
    assert ctx.authority.expire_pending() == 1
    assert ctx.authority.expire_pending() == 0
    assert isinstance(ctx.authority.status(due.request_id), Rejected)
    assert isinstance(ctx.authority.status(kept.request_id), Pending)


def test_the_sweep_pages_past_requests_that_are_not_due(
        build: Callable[..., AppContext], clock: FrozenClock,
        monkeypatch: pytest.MonkeyPatch) -> None:
    from enroll import authority

    monkeypatch.setattr(authority, "SWEEP_PAGE", 2)
    ctx = build(clock=clock, extra_profiles={
        **FOUR_EYES, "slow": {**FOUR_EYES["four"], "pending_expiry": "7d"}})
    for i in range(5):  # older, but their profile keeps them for a week
        ctx.authority.submit(request(make_csr(dns=[f"s{i}.example.com"],
                                              cn=f"s{i}.example.com"), "slow"))
        clock.advance(dt.timedelta(seconds=1))
    due = pend(ctx)
    clock.advance(dt.timedelta(hours=3))
    assert ctx.authority.expire_pending() == 1
    record = ctx.authority.request(due.request_id)
    assert record is not None and record.status is RequestStatus.EXPIRED


def test_the_approval_settings_are_validated(make_config: Callable[..., Any]) -> None:
    with pytest.raises(ConfigError, match="approvals_required"):
        make_config(extra_profiles={"x": {"ca": "issuing", "approvals_required": 0}})
    with pytest.raises(ConfigError, match="pending_expiry"):
        make_config(extra_profiles={"x": {"ca": "issuing", "pending_expiry": "1s"}})


# -- through the CLI ----------------------------------------------------------------------

ENV = {"ENROLL_PROFILES__DEVICE__APPROVAL": "manual",
       "ENROLL_PROFILES__DEVICE__APPROVALS_REQUIRED": "2"}


@pytest.fixture
def cli(tmp_path: Path, db_url: str) -> Iterator[tuple[Path, dict[str, str]]]:
    data = tmp_path / "data"
    env = {"ENROLL_DATABASE_URL": db_url, **ENV}
    assert init_data_dir(data, build_plugin_manager()) is not None
    build_context(config_mod.load(None, env, data_dir=data), create=True).db.dispose()
    yield data, env


def run(cli: tuple[Path, dict[str, str]], *args: str) -> subprocess.CompletedProcess[str]:
    data, env = cli
    return subprocess.run([sys.executable, "-m", "enroll.cli.main", "--data-dir", str(data),
                           *args], capture_output=True, text=True, timeout=120,
                          env=child_env(**env), check=False)


def test_four_eyes_through_the_cli(cli: tuple[Path, dict[str, str]]) -> None:
    from enroll.model import Requester

    data, env = cli
    ctx = build_context(config_mod.load(None, env, data_dir=data))
    try:
        pending = ctx.authority.submit(request(make_csr(), requester=Requester(
            "est-user:default:dev", "basic")))
    finally:
        ctx.db.dispose()
    assert isinstance(pending, Pending)
    rid = pending.request_id
    me = f"os-user:{os_user()}"

    own = run(cli, "requests", "approve", rid, "--actor", "est-user:default:dev")
    assert own.returncode == 1
    assert own.stderr.strip() == "error: the requester cannot approve its own request"

    first = run(cli, "requests", "approve", rid, "--actor", "alice")
    assert first.returncode == 0, first.stderr
    assert first.stdout.startswith(f"approval 1 of 2 recorded for {rid} as {me} as alice; "
                                   "waiting for 1 more approver(s)")
    again = run(cli, "requests", "approve", rid, "--actor", "alice")
    assert again.returncode == 1
    assert "has already approved this request" in again.stderr

    [listed] = json.loads(run(cli, "requests", "list", "--json").stdout)
    assert (listed["id"], listed["approvals"]) == (rid, "1/2")

    second = run(cli, "requests", "approve", rid, "--actor", "bob")
    assert second.returncode == 0, second.stderr
    assert second.stdout.startswith(f"approved {rid}: issued certificate ")
    assert second.stderr.strip() == f"recorded as {me} as bob"

    verified = run(cli, "audit", "verify")
    assert verified.returncode == 0, verified.stderr
