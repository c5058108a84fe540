"""Periodic jobs of a serving worker, in one place.

Every worker runs the same jobs on one daemon thread (`Scheduler`); each job must be
safe to run in several workers and hosts at once (they share only the database). The
jobs are the list in `jobs_for`: adding one is one line there. A job's first run is
spread over its interval (random offset) so workers started together do not all run it
at once; a failing run is logged and the job runs again at its next time.

A job marked ``once`` must run in one worker per interval across all hosts: before each
run the worker takes the job's lease in the database (`enroll.store.leases`) for the
interval, and skips the run when another worker holds it.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from enroll import lifecycle, recovery
from enroll.context import AppContext
from enroll.store import audit_chain, leases

log = logging.getLogger("enroll.scheduler")
AUDIT_CHAIN_INTERVAL = 5.0
"""Seconds an audit event may wait before it is in the hash chain."""


@dataclass(frozen=True, slots=True)
class Job:
    name: str
    interval: float
    """Seconds between two runs."""
    run: Callable[[], object]
    once: bool = False
    """Run by one worker per interval across all hosts (a database lease)."""


def jobs_for(ctx: AppContext) -> list[Job]:
    """The periodic jobs of a worker (add a job here)."""
    config = ctx.config
    crl_interval = max(10.0, min(ca.crl_refresh for ca in config.cas.values()) / 2)
    return [
        Job("crl-refresh", crl_interval, ctx.crls.refresh_due),
        Job("recovery", float(config.recovery_interval), lambda: recovery.run(ctx)),
        # Expired pending requests, and this worker's held refusal counts written and
        # passed refusal windows chained into the audit trail.
        Job("pending-expiry", 60.0, ctx.authority.expire_pending),
        # Profiles with `revoke_superseded_after`: revoke what a renewal replaced.
        Job("revoke-superseded", 3600.0, ctx.authority.revoke_superseded, once=True),
        # certificate.expiring / .expired and migration.deadline events, each once ever.
        Job("lifecycle", lifecycle.INTERVAL,
            lifecycle.Lifecycle(ctx.db, ctx.pm, ctx.config, ctx.clock).run, once=True),
        Job("rate-limit-sweep", 600.0, ctx.frontend.limits.sweep),
        # Seal the audit events committed since the last run into the hash chain.
        Job("audit-chain", AUDIT_CHAIN_INTERVAL, lambda: audit_chain.chain_all(ctx.db)),
    ]


def lease_taker(ctx: AppContext) -> Callable[[str, float], bool]:
    """Takes a ``once`` job's lease in `ctx`'s database for one interval."""
    holder = leases.holder_id()
    return lambda name, ttl: leases.take(ctx.db, name, holder, ttl, ctx.clock.now())


class Scheduler:
    """Runs `jobs` on one thread until `stop()`."""

    def __init__(self, jobs: Sequence[Job], *,
                 monotonic: Callable[[], float] = time.monotonic,
                 lease: Callable[[str, float], bool] | None = None) -> None:
        self.jobs = list(jobs)
        self._lease = lease
        self._monotonic = monotonic
        start = monotonic()
        self._due = {job.name: start + random.uniform(0, job.interval)  # noqa: S311
                     for job in self.jobs}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def run_due(self) -> list[str]:
        """Run every job whose time has come (each failure logged); the names run."""
        ran: list[str] = []
        for job in self.jobs:
            if self._stop.is_set() or self._monotonic() < self._due[job.name]:
                continue
            try:
                if not job.once or self._lease is None or self._lease(job.name,
                                                                        job.interval):
                    job.run()
            except Exception:
                log.exception("scheduled job %s failed", job.name)
            self._due[job.name] = self._monotonic() + job.interval
            ran.append(job.name)
        return ran

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.run_due()
            wait = min(self._due.values(), default=self._monotonic() + 60) - self._monotonic()
            self._stop.wait(max(0.05, wait))

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="enroll-scheduler",
                                        daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
