"""After a device moves to the migration's target, the certificate it replaced is revoked
(reason superseded) once ``revoke_superseded_after`` has passed, by exactly one of several
workers sharing the database (the ``revoke-superseded`` job's lease)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import threading
from collections.abc import Callable
from typing import Any

from cryptography import x509

from enroll import migration_report
from enroll.clock import FrozenClock
from enroll.context import AppContext
from enroll.model import Issued
from enroll.scheduler import Job, Scheduler, jobs_for, lease_taker
from enroll.store import queries
from enroll.testing import make_csr, request

LAPTOP: dict[str, Any] = {
    "ca": "issuing", "validity": "90d", "identity": "subject.CN",
    "subject": {"CN": "csr"}, "key_types": ["ec-p256", "rsa-2048"],
    "extended_key_usage": ["client_auth"], "revoke_superseded_after": "7d",
    "migration": {"to": "acme", "after": "2020-01-01", "mode": "short",
                  "short_validity": "14d", "message": "Renew over ACME"},
}


def test_two_workers_one_database_revoke_the_superseded_scep_certificate_once(
        build: Callable[..., AppContext]) -> None:
    clock = FrozenClock(dt.datetime.now(dt.UTC))
    workers = [build(clock=clock, extra_profiles={"laptop": LAPTOP}) for _ in range(2)]
    authority = workers[0].authority
    scep = authority.submit(request(make_csr(cn="mac-1"), "laptop", protocol="scep",
                                    endpoint="default"))
    assert isinstance(scep, Issued)
    old = format(scep.certificate.serial_number, "x")
    clock.advance(dt.timedelta(days=1))
    acme = authority.submit(request(make_csr(cn="mac-1"), "laptop", protocol="acme",
                                    endpoint="default", replaces=old))
    assert isinstance(acme, Issued)
    clock.advance(dt.timedelta(days=8))  # past the 7-day grace

    runs: list[tuple[int, list[str]]] = []

    def counted(n: int, job: Job) -> Job:
        # The real job, noting which worker ran it and what it revoked.
        return dataclasses.replace(job, run=lambda: runs.append((n, job.run())))  # type: ignore[arg-type]

    start = threading.Barrier(2)
    ran: list[list[str]] = []

    def work(n: int, ctx: AppContext) -> None:
        # Built on the worker's own thread: its lease holder (host:pid:thread) is its own,
        # as two processes' are.
        ticks = [0.0]
        scheduler = Scheduler([counted(n, j) for j in jobs_for(ctx)
                               if j.name == "revoke-superseded"],
                              monotonic=lambda: ticks[0], lease=lease_taker(ctx))
        ticks[0] = 10_000.0  # every job is due
        start.wait()
        ran.append(scheduler.run_due())

    threads = [threading.Thread(target=work, args=(n, ctx))
               for n, ctx in enumerate(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert ran == [["revoke-superseded"], ["revoke-superseded"]]  # both were due ...
    assert [revoked for _, revoked in runs] == [[old]]  # ... one held the lease and ran it
    with workers[0].db.read() as tx:
        revoked = [e for e in queries.list_audit(tx) if e.type == "certificate.revoked"]
        assert int(tx.scalar("SELECT count(*) FROM scheduler_leases "
                             "WHERE name = 'revoke-superseded'")) == 1
        status = migration_report.status(tx, authority.profiles, clock.now(), "laptop")
    assert [(e.serial_hex, e.actor, e.details["reason"]) for e in revoked] == [
        (old, "system:renewal", "superseded")]
    record = authority.certificate(old)
    assert record is not None
    assert record.revocation_reason is x509.ReasonFlags.superseded
    assert authority.certificate(acme.serial_hex).status.value == "valid"  # type: ignore[union-attr]
    [laptop] = status
    assert (laptop.on_target, laptop.stragglers, laptop.migrated) == (1, 0, 1)
    assert workers[1].authority.revoke_superseded() == []  # nothing left to do
