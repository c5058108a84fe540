"""The shared rate-limit facility (`enroll.rate_limits`) on a real store: SQLite and,
with ENROLL_TEST_DATABASE_URL, PostgreSQL. Two `RateLimits` on one database stand for
two workers."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import pytest

from enroll.clock import FrozenClock
from enroll.errors import ConfigError, RateLimited
from enroll.plugin_loader import build_plugin_manager
from enroll.rate_limits import Limit, Rate, RateLimits, over, parse_rate, rates
from enroll.store import migrate
from enroll.store.db import Database

T0 = dt.datetime(2026, 12, 2, 12, 0, 0, tzinfo=dt.UTC)  # on a 15-minute boundary


@pytest.fixture
def db(db_url: str) -> Iterator[Database]:
    database = Database(db_url)
    migrate.upgrade(database, build_plugin_manager((), ()))
    yield database
    database.dispose()


def counter_rows(db: Database) -> int:
    with db.read() as tx:
        return int(tx.scalar("SELECT count(*) FROM rate_counters"))


def test_rates_parse_with_defaults_and_name_the_bad_key() -> None:
    assert parse_rate("10/15m", "k") == Rate(10, 900)
    assert parse_rate("off", "k") is None
    got = rates({"b": "3/1h"}, "x.rate_limits", {"a": Rate(1, 60), "b": None})
    assert got == {"a": Rate(1, 60), "b": Rate(3, 3600)}
    for bad in ("10", "x/1m", "0/1m", "5/fortnight", 5):
        with pytest.raises(ConfigError) as err:
            parse_rate(bad, "est.endpoints.default.rate_limits.auth_failures_per_user")
        assert err.value.key.endswith("auth_failures_per_user")
    with pytest.raises(ConfigError, match="unknown|not a setting|allowed") as err:
        rates({"typo": "1/1m"}, "est.endpoints.default.rate_limits", {"a": None})


def test_sliding_window_never_lets_more_than_the_rate_through() -> None:
    rate = Rate(10, 100)
    assert over(rate, 1000.0, 9, 0) is None
    # A full window: wait into the next one until its weight lets one more through.
    assert over(rate, 1000.0, 10, 0) == 101
    assert over(rate, 1000.0, 20, 0) == 151
    assert over(rate, 1151.0, 0, 20) is None
    # 40 % into the window, 10 in the previous one weigh 6: 4 more fit, the 5th waits.
    assert over(rate, 1040.0, 3, 10) is None
    wait = over(rate, 1040.0, 4, 10)
    assert wait is not None and 1 <= wait <= 61
    assert over(rate, 1040.0 + wait, 4, 10) is None


def test_two_workers_share_the_counts_and_a_refusal_reads_only(db: Database) -> None:
    clock = FrozenClock(T0)
    worker_a, worker_b = RateLimits(db, clock), RateLimits(db, clock)
    lim = [Limit("test.failures", "203.0.113.7", Rate(3, 900))]
    for worker in (worker_a, worker_b, worker_a):
        worker.check(lim, "failures")
        worker.hit(lim)
    with pytest.raises(RateLimited) as err:
        worker_b.check(lim, "failures")
    assert err.value.retry_after == 901 and err.value.limit == "test.failures"
    assert "retry after 901 s" in err.value.detail
    # Another subject is not affected.
    worker_b.check([Limit("test.failures", "203.0.113.8", Rate(3, 900))], "failures")
    # The refusal is remembered in-process: the next check costs no SQL at all.
    reads: list[Any] = []
    real_read = db.read
    db.read = lambda: (reads.append(1), real_read())[1]  # type: ignore[method-assign]
    try:
        with pytest.raises(RateLimited):
            worker_b.check(lim, "failures")
    finally:
        db.read = real_read  # type: ignore[method-assign]
    assert reads == []
    # The window slides: after the rate's period the subject may try again.
    clock.advance(dt.timedelta(seconds=1800))
    worker_a.check(lim, "failures")


def test_clear_lifts_a_lockout_and_sweep_drops_old_windows(db: Database) -> None:
    clock = FrozenClock(T0)
    limits = RateLimits(db, clock)
    lim = [Limit("test.failures", "user:alice", Rate(1, 60))]
    limits.hit(lim)
    with pytest.raises(RateLimited):
        limits.check(lim, "failures")
    assert limits.clear("test.failures", "user:alice") == 1
    limits.check(lim, "failures")
    limits.hit(lim)
    clock.advance(dt.timedelta(seconds=180))
    assert counter_rows(db) == 1
    assert limits.sweep() == 1 and counter_rows(db) == 0


def test_long_or_odd_subjects_are_hashed_into_a_bounded_key(db: Database) -> None:
    limits = RateLimits(db, FrozenClock(T0))
    odd = Limit("test.failures", "x" * 5000 + "\n\x00", Rate(1, 60))
    limits.hit([odd])
    with pytest.raises(RateLimited):
        limits.check([odd], "failures")
    with db.read() as tx:
        (key,) = [r["k"] for r in tx.all("SELECT k FROM rate_counters")]
    assert len(key) < 100 and key.startswith("test.failures|sha256:")


def test_cli_lists_and_clears_a_lockout(tmp_path: Any, run_cli: Any,
                                        open_data_dir: Any) -> None:
    import json

    from enroll.embedded import init_data_dir

    data = tmp_path / "data"
    assert init_data_dir(data, build_plugin_manager()) is not None
    ctx = open_data_dir(data)
    limits = RateLimits(ctx.db, ctx.clock)
    lim = [Limit("est.auth_failures", "default|addr|198.51.100.7", Rate(1, 900))]
    limits.hit(lim)
    with pytest.raises(RateLimited):
        RateLimits(ctx.db, ctx.clock).check(lim, "failures")
    listed = json.loads(run_cli(data, "limits", "list", "--json").stdout)
    assert [(r["key"], r["events"]) for r in listed] == [
        ("est.auth_failures|default|addr|198.51.100.7", 1)]
    done = run_cli(data, "limits", "clear", listed[0]["key"], "--actor", "carol")
    assert done.stdout.strip() == f"cleared {listed[0]['key']}"
    RateLimits(ctx.db, ctx.clock).check(lim, "failures")  # a fresh worker: let through
    missing = run_cli(data, "limits", "clear", listed[0]["key"], check=False)
    assert missing.returncode == 1 and "no counter" in missing.stderr
    events = [json.loads(line) for line in run_cli(data, "audit", "export").stdout.splitlines()]
    assert [(e["type"], e["actor"]) for e in events if e["type"].startswith("rate_limit")] \
        == [("rate_limit.cleared", "carol")]
