"""The worker's periodic jobs: one list, each job run when due, a failure logged and
the job run again at its next time (no sleeping: a fake monotonic clock)."""

from __future__ import annotations

import datetime as dt
import logging

import pytest

from enroll.context import AppContext
from enroll.scheduler import Job, Scheduler, jobs_for


class Ticks:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def test_a_worker_runs_its_periodic_jobs(context: AppContext) -> None:
    jobs = {job.name: job for job in jobs_for(context)}
    assert set(jobs) == {"crl-refresh", "recovery", "pending-expiry", "revoke-superseded",
                         "lifecycle", "rate-limit-sweep", "audit-chain"}
    assert jobs["recovery"].interval == context.config.recovery_interval
    assert jobs["crl-refresh"].interval == 1800  # half the default crl_refresh of 1h
    for job in jobs.values():
        job.run()  # each runs against the real store
    with context.db.read() as tx:
        assert tx.scalar("SELECT count(*) FROM crls") == len(context.config.cas)  # one each


def test_jobs_run_when_due_and_a_failure_does_not_stop_the_others(
        caplog: pytest.LogCaptureFixture) -> None:
    ticks = Ticks()
    ran: list[str] = []

    def boom() -> None:
        ran.append("boom")
        raise RuntimeError("database away")

    scheduler = Scheduler([Job("boom", 10, boom), Job("ok", 30, lambda: ran.append("ok"))],
                          monotonic=ticks)
    ticks.t += 30  # past every first run (spread over each job's interval)
    with caplog.at_level(logging.ERROR, logger="enroll.scheduler"):
        assert scheduler.run_due() == ["boom", "ok"]
    assert "scheduled job boom failed" in caplog.text
    assert scheduler.run_due() == []  # neither is due again yet
    ticks.t += 10
    assert scheduler.run_due() == ["boom"]
    ticks.t += 20
    assert scheduler.run_due() == ["boom", "ok"]
    assert ran == ["boom", "ok", "boom", "boom", "ok"]


def test_a_stopped_scheduler_runs_nothing() -> None:
    ticks = Ticks()
    scheduler = Scheduler([Job("x", 1, lambda: None)], monotonic=ticks)
    scheduler.start()
    scheduler.stop()
    ticks.t += 5
    assert scheduler.run_due() == []


def test_a_once_job_runs_in_one_worker_per_interval(context: AppContext) -> None:
    """Two workers (two schedulers, one database): the lease lets one run the job; the
    other skips it until the lease has expired, then takes it over."""
    from enroll.scheduler import lease_taker
    from enroll.store import leases

    ticks = Ticks()
    ran: list[str] = []
    now = [context.clock.now()]
    workers = []
    for name in ("a", "b"):
        holder = f"worker-{name}"
        workers.append(Scheduler(
            [Job("superseded", 60, lambda n=name: ran.append(n), once=True)],
            monotonic=ticks,
            lease=lambda job, ttl, h=holder: leases.take(context.db, job, h, ttl, now[0])))
    ticks.t += 60
    assert [w.run_due() for w in workers] == [["superseded"], ["superseded"]]
    assert ran == ["a"]  # b was due too, but a held the lease
    with context.db.read() as tx:
        assert tx.scalar("SELECT holder FROM scheduler_leases") == "worker-a"
    now[0] += dt.timedelta(seconds=61)
    ticks.t += 60
    workers[1].run_due()
    assert ran == ["a", "b"]  # a's lease expired: b took it over
    assert lease_taker(context)("other", 5)  # a worker's own taker, on the real store
