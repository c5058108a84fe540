"""Lifecycle events from the inventory: each expiry threshold once per certificate, the
expiry once, a migration deadline once, whatever the number of workers; a renewed
device is not warned about the certificate it replaced (real store, frozen clock)."""

from __future__ import annotations

import copy
import datetime as dt
import threading
from collections.abc import Callable
from typing import Any

from enroll import config as config_mod
from enroll.clock import FrozenClock
from enroll.context import AppContext
from enroll.hookspecs import hookimpl
from enroll.lifecycle import Lifecycle
from enroll.model import Issued
from enroll.store import lifecycle_notices
from enroll.testing import make_csr, request

DAY = 86400
Build = Callable[..., AppContext]


class Recorder:
    """A plugin listening to the three lifecycle hooks."""

    def __init__(self) -> None:
        self.events: list[tuple[Any, ...]] = []
        self._lock = threading.Lock()

    @hookimpl
    def enroll_certificate_expiring(self, certificate: Any, remaining: int,
                                    threshold: int) -> None:
        with self._lock:
            self.events.append(("expiring", certificate.subject, threshold, remaining))

    @hookimpl
    def enroll_certificate_expired(self, certificate: Any, profile: Any) -> None:
        with self._lock:
            self.events.append(("expired", certificate.subject, profile.name))

    @hookimpl
    def enroll_migration_deadline(self, profile: Any, migration: Any,
                                  stragglers: int) -> None:
        with self._lock:
            self.events.append(("deadline", profile.name, migration.to, stragglers))

    def take(self) -> list[tuple[Any, ...]]:
        with self._lock:
            events, self.events = sorted(self.events), []
        return events


class Broken:
    @hookimpl
    def enroll_certificate_expiring(self) -> None:
        raise RuntimeError("mail server on fire")


def _issue(ctx: AppContext, cn: str, profile: str = "device",
           protocol: str = "core") -> Issued:
    outcome = ctx.authority.submit(request(make_csr(cn=cn), profile, protocol=protocol))
    assert isinstance(outcome, Issued)
    return outcome


def _job(ctx: AppContext, **kw: Any) -> Lifecycle:
    return Lifecycle(ctx.db, ctx.pm, ctx.config, ctx.clock, **kw)


def test_each_threshold_fires_once_and_a_renewed_device_is_not_warned(build: Build) -> None:
    clock = FrozenClock(dt.datetime.now(dt.UTC))
    recorder = Recorder()
    ctx = build(clock=clock, extra_plugins=[recorder])
    a = _issue(ctx, "a.example")
    _issue(ctx, "b.example")
    job = _job(ctx)
    assert job.run().total == 0 and recorder.take() == []  # a year left

    clock.advance(dt.timedelta(days=340))  # 25 days left: inside 30d, outside 7d
    summary = job.run()
    assert (summary.expiring, summary.complete) == (2, True)
    events = recorder.take()
    assert [e[:3] for e in events] == [("expiring", "CN=a.example", 30 * DAY),
                                       ("expiring", "CN=b.example", 30 * DAY)]
    assert 24 * DAY < events[0][3] <= 25 * DAY + 3600
    assert job.run().total == 0 and recorder.take() == []  # never twice

    _issue(ctx, "b.example")  # b renews: its identity's current certificate is new
    clock.advance(dt.timedelta(days=20))  # 5 days left on a and on b's old certificate
    job.run()
    assert [e[:3] for e in recorder.take()] == [("expiring", "CN=a.example", 7 * DAY)]
    clock.advance(dt.timedelta(days=4, hours=12))
    job.run()
    assert [e[:3] for e in recorder.take()] == [("expiring", "CN=a.example", DAY)]
    clock.advance(dt.timedelta(days=1))  # a has expired, b's old certificate too
    job.run()
    assert recorder.take() == [("expired", "CN=a.example", "device")]
    clock.advance(dt.timedelta(hours=1))
    assert job.run().total == 0 and recorder.take() == []
    with ctx.db.read() as tx:
        assert lifecycle_notices.given(tx, a.serial_hex) == [
            "expiring:2592000", "expiring:604800", "expiring:86400", "expired"]


def test_a_certificate_first_seen_inside_several_thresholds_hears_only_the_nearest(
        build: Build) -> None:
    clock = FrozenClock(dt.datetime.now(dt.UTC))
    recorder = Recorder()
    ctx = build(clock=clock, extra_plugins=[recorder])
    _issue(ctx, "late.example")
    clock.advance(dt.timedelta(days=360))  # the job sees it first with 5 days left
    job = _job(ctx)
    job.run()
    assert [e[:3] for e in recorder.take()] == [("expiring", "CN=late.example", 7 * DAY)]
    clock.advance(dt.timedelta(hours=1))
    assert job.run().total == 0  # the 30-day notice does not follow afterwards


def test_two_workers_at_once_give_each_notice_once(build: Build) -> None:
    """Two workers (two engines on one database, each with its listener) run the job at
    the same moment: the notice rows decide, every certificate is announced once."""
    clock = FrozenClock(dt.datetime.now(dt.UTC))
    first, second = Recorder(), Recorder()
    ctx_a = build(clock=clock, extra_plugins=[first])
    ctx_b = build(clock=clock, extra_plugins=[second])
    for n in range(12):
        _issue(ctx_a, f"d{n}.example")
    clock.advance(dt.timedelta(days=340))
    start = threading.Barrier(2)
    totals: list[int] = []

    def worker(ctx: AppContext) -> None:
        start.wait()
        totals.append(_job(ctx).run().total)

    threads = [threading.Thread(target=worker, args=(c,)) for c in (ctx_a, ctx_b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    announced = [e[1] for e in first.take() + second.take()]
    assert sorted(announced) == sorted(f"CN=d{n}.example" for n in range(12))
    assert sum(totals) == 12
    assert _job(ctx_b).run().total == 0 and _job(ctx_a).run().total == 0


def test_a_run_is_bounded_and_the_rest_follows_next_run(build: Build) -> None:
    clock = FrozenClock(dt.datetime.now(dt.UTC))
    recorder = Recorder()
    ctx = build(clock=clock, extra_plugins=[recorder])
    for n in range(5):
        _issue(ctx, f"n{n}.example")
    clock.advance(dt.timedelta(days=340))
    job = _job(ctx, max_notices=3)
    first = job.run()
    assert (first.expiring, first.complete) == (3, False)
    second = job.run()
    assert (second.expiring, second.complete) == (2, True)
    assert len({e[1] for e in recorder.take()}) == 5


def test_a_failing_listener_neither_stops_the_others_nor_gets_a_second_notice(
        build: Build) -> None:
    clock = FrozenClock(dt.datetime.now(dt.UTC))
    recorder = Recorder()
    ctx = build(clock=clock, extra_plugins=[Broken(), recorder])
    _issue(ctx, "x.example")
    clock.advance(dt.timedelta(days=340))
    job = _job(ctx)
    assert job.run().expiring == 1
    assert [e[1] for e in recorder.take()] == ["CN=x.example"]
    assert job.run().total == 0


def test_revoked_certificates_are_not_announced(build: Build) -> None:
    from cryptography import x509

    clock = FrozenClock(dt.datetime.now(dt.UTC))
    recorder = Recorder()
    ctx = build(clock=clock, extra_plugins=[recorder])
    gone = _issue(ctx, "gone.example")
    ctx.authority.revoke(gone.serial_hex, x509.ReasonFlags.key_compromise, "test")
    clock.advance(dt.timedelta(days=340))
    _job(ctx).run()
    clock.advance(dt.timedelta(days=30))
    _job(ctx).run()
    assert recorder.take() == []


def _migrating_profile(after: dt.datetime, **notices: Any) -> dict[str, Any]:
    profile = copy.deepcopy(config_mod.default_raw_config()["profiles"]["device"])
    profile.update(validity="30d", **notices)
    profile["migration"] = {"to": "acme", "after": after.isoformat(), "mode": "warn"}
    return profile


def test_a_migration_deadline_fires_once_with_the_stragglers(build: Build) -> None:
    clock = FrozenClock(dt.datetime.now(dt.UTC))
    after = clock.now() + dt.timedelta(days=2)
    recorder = Recorder()
    ctx = build(clock=clock, extra_plugins=[recorder],
                extra_profiles={"fleet": _migrating_profile(after)})
    _issue(ctx, "old-1.example", "fleet", protocol="scep")
    _issue(ctx, "old-2.example", "fleet", protocol="est")
    _issue(ctx, "moved.example", "fleet", protocol="acme")
    job = _job(ctx)
    job.run()
    assert recorder.take() == []  # before the deadline
    clock.advance(dt.timedelta(days=2))
    job.run()
    assert recorder.take() == [("deadline", "fleet", "acme", 2)]
    clock.advance(dt.timedelta(hours=1))
    job.run()
    assert recorder.take() == []
    with ctx.db.read() as tx:
        assert lifecycle_notices.given(tx, "fleet") == [
            f"migration.deadline:{int(after.timestamp())}"]


def test_thresholds_come_from_the_profile(build: Build) -> None:
    clock = FrozenClock(dt.datetime.now(dt.UTC))
    recorder = Recorder()
    far = clock.now() + dt.timedelta(days=365)
    ctx = build(clock=clock, extra_plugins=[recorder],
                extra_profiles={"fleet": _migrating_profile(far, expiry_notices=["3d"])})
    _issue(ctx, "short.example", "fleet")
    clock.advance(dt.timedelta(days=20))  # 10 days left: inside no threshold of "fleet"
    _job(ctx).run()
    assert recorder.take() == []
    clock.advance(dt.timedelta(days=8))
    _job(ctx).run()
    assert [e[:3] for e in recorder.take()] == [("expiring", "CN=short.example", 3 * DAY)]


def test_old_certificate_notices_are_purged_but_migration_deadlines_kept(
        build: Build) -> None:
    clock = FrozenClock(dt.datetime.now(dt.UTC))
    after = clock.now() + dt.timedelta(days=1)
    ctx = build(clock=clock, extra_profiles={"fleet": _migrating_profile(after)})
    old = _issue(ctx, "old.example", "fleet")
    clock.advance(dt.timedelta(days=29, hours=12))  # 1d notice and the deadline
    _job(ctx).run()
    with ctx.db.read() as tx:
        assert lifecycle_notices.given(tx, old.serial_hex) == ["expiring:86400"]
    clock.advance(dt.timedelta(days=40))  # past notAfter + 7 days + 30 days + 1 day
    _job(ctx).run()
    with ctx.db.read() as tx:
        assert lifecycle_notices.given(tx, old.serial_hex) == []
        assert len(lifecycle_notices.given(tx, "fleet")) == 1


def test_enroll_lifecycle_run_gives_the_due_notices_now(
        tmp_path: Any, run_cli: Callable[..., Any]) -> None:
    import json

    data = tmp_path / "data"
    run_cli(data, "init")
    done = run_cli(data, "lifecycle", "run", "--json")
    assert json.loads(done.stdout) == {"expiring": 0, "expired": 0,
                                       "migration_deadlines": 0, "complete": True}
    assert "0 expiring, 0 expired, 0 migration deadline notices" in \
        run_cli(data, "lifecycle", "run").stdout


def test_a_run_past_its_time_budget_stops_claiming(build: Build) -> None:
    clock = FrozenClock(dt.datetime.now(dt.UTC))
    recorder = Recorder()
    ctx = build(clock=clock, extra_plugins=[recorder])
    _issue(ctx, "slow.example")
    clock.advance(dt.timedelta(days=340))
    ticks = iter([0.0, 31.0, 31.0, 31.0])  # the run starts, then its 30 s are gone
    stalled = _job(ctx, monotonic=lambda: next(ticks))
    summary = stalled.run()
    assert (summary.total, summary.complete) == (0, False)
    assert _job(ctx).run().expiring == 1  # the next run gives it
