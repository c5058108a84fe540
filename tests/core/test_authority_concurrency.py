"""Concurrent enrollments against one store (SQLite file and PostgreSQL)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from cryptography import x509

from enroll.context import AppContext
from enroll.errors import Conflict
from enroll.model import Issued
from enroll.store import queries
from enroll.testing import make_csr, request

Counts = Callable[[AppContext], tuple[int, int]]


def race(n: int, work: Callable[[int], Any]) -> list[Any]:
    """Run `work(i)` for i in range(n) on n threads released together; return results
    or the exceptions raised, in order."""
    barrier = threading.Barrier(n)

    def run(i: int) -> Any:
        barrier.wait(timeout=30)
        try:
            return work(i)
        except Exception as exc:  # noqa: BLE001 - collected for the assertions
            return exc

    with ThreadPoolExecutor(max_workers=n) as pool:
        return list(pool.map(run, range(n)))


def test_fifty_concurrent_enrollments_give_fifty_distinct_serials_and_rows(
        context: AppContext, stored: Counts) -> None:
    csrs = [make_csr(cn=f"dev-{i}.example.com") for i in range(50)]
    results = race(50, lambda i: context.authority.submit(request(csrs[i], protocol="est")))
    assert all(isinstance(r, Issued) for r in results), [r for r in results
                                                         if not isinstance(r, Issued)][:3]
    serials = {r.certificate.serial_number for r in results}
    assert len(serials) == 50
    assert stored(context) == (50, 50)
    with context.db.read() as conn:
        rows = queries.list_certificates(conn, limit=100)
    assert {r.serial for r in rows} == serials
    assert {r.subject for r in rows} == {f"CN=dev-{i}.example.com" for i in range(50)}


def test_racing_retries_of_one_transaction_issue_one_certificate(
        context: AppContext, stored: Counts) -> None:
    csr = make_csr()
    results = race(10, lambda i: context.authority.submit(request(
        csr, protocol="scep", endpoint="default", transaction_id="tid-race")))
    assert all(isinstance(r, Issued) for r in results), results
    assert len({r.certificate.serial_number for r in results}) == 1
    assert len({r.request_id for r in results}) == 1
    assert stored(context) == (1, 1)


def test_racing_same_transaction_with_other_keys_issues_once_and_conflicts_the_rest(
        context: AppContext, stored: Counts) -> None:
    csrs = [make_csr() for _ in range(8)]
    results = race(8, lambda i: context.authority.submit(request(
        csrs[i], protocol="scep", endpoint="default", transaction_id="tid-keys")))
    issued = [r for r in results if isinstance(r, Issued)]
    conflicts = [r for r in results if isinstance(r, Conflict)]
    assert len(issued) == 1 and len(conflicts) == 7, results
    assert stored(context) == (1, 1)


def test_concurrent_revocations_of_one_certificate_succeed_once(context: AppContext) -> None:
    n = 20
    issued = context.authority.submit(request(make_csr()))
    assert isinstance(issued, Issued)
    results = race(n, lambda i: context.authority.revoke(
        issued.serial_hex, x509.ReasonFlags.key_compromise, f"op-{i}"))
    assert sum(not isinstance(r, Exception) for r in results) == 1
    assert all(isinstance(r, Conflict) for r in results if isinstance(r, Exception)), results
    with context.db.read() as conn:
        revocations = [e for e in queries.list_audit(conn, request_id=issued.request_id)
                       if e.type == "certificate.revoked"]
    assert len(revocations) == 1


def test_racing_approvals_of_one_request_issue_once(build: Callable[..., AppContext],
                                                    stored: Counts) -> None:
    ctx = build(extra_profiles={"manual": {"ca": "issuing", "approval": "manual"}})
    pending = ctx.authority.submit(request(make_csr(), "manual"))
    results = race(10, lambda i: ctx.authority.approve(pending.request_id, f"officer-{i}"))
    assert sum(isinstance(r, Issued) for r in results) == 1
    assert all(isinstance(r, Conflict) for r in results if not isinstance(r, Issued)), results
    assert stored(ctx) == (1, 1)
    with ctx.db.read() as conn:
        approvals = [e for e in queries.list_audit(conn, request_id=pending.request_id)
                     if e.type == "request.approved"]
    assert len(approvals) == 1
