"""Refusals in the audit trail (`enroll.refusals`): counted per window in place, bounded
under a flood, chained when the window closes. On a SQLite file and on PostgreSQL."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pytest

from enroll import refusals
from enroll.clock import FrozenClock
from enroll.context import AppContext
from enroll.errors import BadCSR, PolicyDenied
from enroll.store import audit_chain, queries
from enroll.testing import make_csr, request

START = dt.datetime(2026, 3, 1, 12, 0, 5, tzinfo=dt.UTC)


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(START)


@pytest.fixture
def ctx(build: Callable[..., AppContext], clock: FrozenClock) -> AppContext:
    return build(clock=clock)


def open_rows(ctx: AppContext, *, flush: bool = True) -> list[dict[str, object]]:
    """The open windows' rows, after writing the counts this process holds."""
    if flush:
        ctx.authority.flush_refusals()
    with ctx.db.read() as tx:
        return refusals.open_counts(tx)


def refused_events(ctx: AppContext) -> list[dict[str, object]]:
    with ctx.db.read() as tx:
        return [dict(e.details, actor=e.actor) for e in queries.list_audit(tx)
                if e.type == "request.refused"]


def test_a_flood_from_one_source_is_one_row_counted_in_place(ctx: AppContext) -> None:
    for i in range(1000):
        ctx.authority.record_refusal("est:default", "unauthorized", "192.0.2.7", None,
                                     {"operation": "simpleenroll", "n": i})
    [row] = open_rows(ctx)
    assert (row["door"], row["reason"], row["source"], row["actor"], row["count"]) == (
        "est:default", "unauthorized", "192.0.2.7", "", 1000)
    assert row["details"] == {"operation": "simpleenroll", "n": 0}  # the first, as sample


def test_repeats_are_held_and_written_in_one_write_per_interval(
        ctx: AppContext, clock: FrozenClock) -> None:
    from enroll.refusal_buffer import FLUSH_SECONDS

    for _ in range(1000):
        ctx.authority.record_refusal("est:default", "rate_limited", "192.0.2.8", None, {})
    # One write: the first refusal opened the row, the 999 repeats are held.
    [row] = open_rows(ctx, flush=False)
    assert row["count"] == 1
    clock.advance(dt.timedelta(seconds=FLUSH_SECONDS))
    ctx.authority.record_refusal("est:default", "rate_limited", "192.0.2.8", None, {})
    [row] = open_rows(ctx, flush=False)
    assert row["count"] == 1001  # the interval passed: the held counts are written
    assert ctx.authority.flush_refusals() == 0  # nothing is held any more


def test_held_repeats_reach_their_window_before_it_is_chained(
        ctx: AppContext, clock: FrozenClock) -> None:
    for _ in range(10):
        ctx.authority.record_refusal("scep:default", "unauthorized", "192.0.2.3", None, {})
    clock.advance(dt.timedelta(seconds=refusals.WINDOW_SECONDS))
    # A refusal in the next window writes the held counts, then closes the old window.
    ctx.authority.record_refusal("scep:default", "bad_csr", "192.0.2.3", None, {})
    [event] = refused_events(ctx)
    assert (event["reason"], event["count"]) == ("unauthorized", 10)


def test_a_flood_from_many_sources_costs_bounded_rows(ctx: AppContext,
                                                      clock: FrozenClock) -> None:
    for i in range(1000):
        ctx.authority.record_refusal("scep:default", "undecryptable",
                                     f"2001:db8::{i:x}", None, {})
    rows = open_rows(ctx)
    assert len(rows) == refusals.MAX_KEYS_PER_WINDOW + 1
    overflow = [r for r in rows if r["source"] == refusals.OVERFLOW]
    assert len(overflow) == 1
    assert overflow[0]["count"] == 1000 - refusals.MAX_KEYS_PER_WINDOW
    assert sum(int(str(r["count"])) for r in rows) == 1000
    # The window closes: its rows become chained events, nothing is lost.
    clock.advance(dt.timedelta(seconds=refusals.WINDOW_SECONDS))
    assert ctx.authority.close_refusal_windows() == len(rows)
    assert open_rows(ctx) == []
    events = refused_events(ctx)
    assert len(events) == len(rows)
    assert sum(int(str(e["count"])) for e in events) == 1000
    assert {e["actor"] for e in events} == {refusals.UNAUTHENTICATED, refusals.OVERFLOW}
    with ctx.db.read() as tx:
        assert audit_chain.verify(tx).ok


def test_windows_close_on_the_next_refusal_and_keep_door_reason_source_apart(
        ctx: AppContext, clock: FrozenClock) -> None:
    ctx.authority.record_refusal("est:default", "unauthorized", "192.0.2.1", None, {})
    ctx.authority.record_refusal("est:default", "unauthorized", "192.0.2.1", None, {})
    ctx.authority.record_refusal("est:default", "bad_csr", "192.0.2.1", "est-user:a", {})
    ctx.authority.record_refusal("acme:default", "acme_badCSR", None, None, {})
    assert len(open_rows(ctx)) == 3
    clock.advance(dt.timedelta(seconds=refusals.WINDOW_SECONDS))
    ctx.authority.record_refusal("est:default", "unauthorized", "192.0.2.1", None, {})
    [fresh] = open_rows(ctx)
    assert fresh["count"] == 1
    events = sorted(refused_events(ctx), key=lambda e: (str(e["door"]), str(e["reason"])))
    assert [(e["door"], e["reason"], e["source"], e["actor"], e["count"]) for e in events] == [
        ("acme:default", "acme_badCSR", None, "unauthenticated", 1),
        ("est:default", "bad_csr", "192.0.2.1", "est-user:a", 1),
        ("est:default", "unauthorized", "192.0.2.1", "unauthenticated", 2)]
    assert events[0]["window_seconds"] == refusals.WINDOW_SECONDS


def test_concurrent_refusals_of_one_key_are_all_counted(ctx: AppContext) -> None:
    n, each = 8, 25
    barrier = threading.Barrier(n)

    def work(_: int) -> None:
        barrier.wait(timeout=30)
        for _ in range(each):
            ctx.authority.record_refusal("scep:default", "unauthorized", "192.0.2.9",
                                         None, {})

    with ThreadPoolExecutor(max_workers=n) as pool:
        list(pool.map(work, range(n)))
    [row] = open_rows(ctx)
    assert row["count"] == n * each


def test_client_supplied_details_are_bounded(ctx: AppContext) -> None:
    ctx.authority.record_refusal("acme:default", "acme_malformed", "x" * 500, "y" * 900,
                                 {f"k{i}": "v" * 5000 for i in range(50)})
    [row] = open_rows(ctx)
    assert len(str(row["source"])) == 64 and len(str(row["actor"])) == 512
    details = row["details"]
    assert isinstance(details, dict) and len(details) == refusals.MAX_DETAIL_KEYS
    assert all(len(v) == refusals.MAX_DETAIL_TEXT for v in details.values())


def test_the_core_attributes_a_refused_submission_to_its_requester(ctx: AppContext) -> None:
    csr = make_csr(dns=[f"n{i}.example.com" for i in range(11)])  # max_names is 10
    with pytest.raises(BadCSR) as caught:
        ctx.authority.submit(request(csr, "device"))
    assert refusals.actor_of(caught.value) == "test"
    assert refusals.reason_code(caught.value) == "bad_csr"
    assert refusals.reason_code(PolicyDenied("no")) == "policy_denied"


def test_a_refusal_the_store_cannot_take_is_logged_and_not_raised(
        ctx: AppContext, caplog: pytest.LogCaptureFixture) -> None:
    with ctx.db.write() as tx:
        tx.run("DROP TABLE audit_refusals")
    ctx.authority.record_refusal("est:default", "unauthorized", None, None, {})
    assert "could not record a refusal" in caplog.text
