"""The recovery pass: requests a dead signer left `approved` are finished, once, by one
worker; the client's retry then gets that certificate (F3 extended to recovery)."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable
from typing import Any

import pytest
from cryptography import x509

from enroll import recovery
from enroll.authority import Authority
from enroll.clock import FrozenClock
from enroll.context import AppContext
from enroll.model import NOT_RECOVERABLE, CertificateStatus, Issued, Rejected, RequestStatus
from enroll.store import queries
from enroll.testing import make_csr, request

Counts = Callable[[AppContext], tuple[int, int]]
GRACE = dt.timedelta(seconds=61)


class Crash(RuntimeError):
    pass


def crashing(ctx: AppContext) -> Authority:
    """An authority on the same store whose process 'dies' after signing."""
    def crash() -> None:
        raise Crash("power cut")

    a = ctx.authority
    return Authority(db=a.db, pm=a.pm, cas=a.cas, profiles=a.profiles, clock=a.clock,
                     crls=a.crls, crash_after_sign=crash)


def stuck(ctx: AppContext, tid: str = "t-stuck") -> tuple[x509.CertificateSigningRequest, str]:
    csr = make_csr()
    with pytest.raises(Crash):
        crashing(ctx).submit(request(csr, protocol="scep", endpoint="default",
                                     transaction_id=tid))
    left = ctx.authority.find_transaction("scep", "default", tid)
    assert left is not None and left.status is RequestStatus.APPROVED
    return csr, left.id


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(dt.datetime.now(dt.UTC))


@pytest.fixture
def ctx(build: Callable[..., AppContext], clock: FrozenClock) -> AppContext:
    return build(clock=clock)


def audit(ctx: AppContext, request_id: str) -> list[str]:
    with ctx.db.read() as tx:
        return [e.type for e in queries.list_audit(tx, request_id=request_id)]


def test_a_request_within_the_grace_period_is_left_to_its_signer(
        ctx: AppContext, clock: FrozenClock, stored: Counts) -> None:
    _csr, rid = stuck(ctx)
    clock.advance(dt.timedelta(seconds=30))
    assert recovery.run(ctx).requests == 0
    assert ctx.authority.request(rid).status is RequestStatus.APPROVED  # type: ignore[union-attr]
    assert stored(ctx) == (0, 1)


def test_the_pass_signs_and_stores_and_the_retry_gets_that_certificate(
        ctx: AppContext, clock: FrozenClock, stored: Counts) -> None:
    csr, rid = stuck(ctx)
    clock.advance(GRACE)
    assert recovery.run(ctx).requests == 1
    record = ctx.authority.request(rid)
    assert record is not None and record.status is RequestStatus.ISSUED
    cert = ctx.authority.certificate(record.certificate_serial or "")
    assert cert is not None and cert.status is CertificateStatus.VALID
    assert stored(ctx) == (1, 1)
    # The audit trail tells the story: approved, taken over by recovery, issued.
    assert audit(ctx, rid) == ["request.approved", "request.recovering", "certificate.issued"]
    # The SCEP client's retry (same transactionID, same key) is answered with it.
    retry = ctx.authority.submit(request(csr, protocol="scep", endpoint="default",
                                         transaction_id="t-stuck"))
    assert isinstance(retry, Issued) and retry.certificate == cert.certificate
    # A second pass finds nothing left.
    clock.advance(GRACE)
    assert recovery.run(ctx).requests == 0
    assert stored(ctx) == (1, 1)


def test_a_retry_after_the_grace_period_is_answered_with_a_certificate_at_once(
        ctx: AppContext, clock: FrozenClock, stored: Counts) -> None:
    csr, rid = stuck(ctx, "t-retry")
    clock.advance(GRACE)
    retry = ctx.authority.submit(request(csr, protocol="scep", endpoint="default",
                                         transaction_id="t-retry"))
    assert isinstance(retry, Issued) and retry.request_id == rid
    assert stored(ctx) == (1, 1)


def test_two_workers_recovering_at_once_issue_one_certificate(
        ctx: AppContext, build: Callable[..., AppContext], clock: FrozenClock,
        stored: Counts) -> None:
    other = build(clock=clock)  # a second worker on the same database
    ids = [stuck(ctx, f"t-{i}")[1] for i in range(4)]
    clock.advance(GRACE)
    results: list[list[str]] = []
    barrier = threading.Barrier(2)

    def run(a: AppContext) -> None:
        barrier.wait()
        results.append(a.authority.recover_stale())

    threads = [threading.Thread(target=run, args=(c,)) for c in (ctx, other)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    done = [rid for r in results for rid in r]
    assert sorted(done) == sorted(ids)  # each claimed by exactly one of them
    assert stored(ctx) == (4, 4)
    for rid in ids:
        assert audit(ctx, rid).count("request.recovering") == 1
        assert audit(ctx, rid).count("certificate.issued") == 1


def test_a_request_recovery_cannot_sign_fails_with_a_reason_the_retry_sees(
        ctx: AppContext, clock: FrozenClock, stored: Counts) -> None:
    csr, rid = stuck(ctx, "t-gone")
    ctx.authority.profiles.pop("device")  # the profile was removed from the config
    clock.advance(GRACE)
    assert recovery.run(ctx).requests == 1
    record = ctx.authority.request(rid)
    assert record is not None and record.status is RequestStatus.FAILED
    assert "device" in record.reason
    assert stored(ctx) == (0, 1)
    outcome: Any = ctx.authority.status(rid)
    assert isinstance(outcome, Rejected)


def test_a_slow_signer_overtaken_by_recovery_answers_with_the_stored_certificate(
        ctx: AppContext, clock: FrozenClock, stored: Counts) -> None:
    """The signer was alive but slower than the grace period: recovery issued first;
    the slow one's certificate is never stored nor handed out."""
    a = ctx.authority
    answers: list[Any] = []

    def late() -> None:
        clock.advance(GRACE)
        answers.append(a.recover_stale())

    slow = Authority(db=a.db, pm=a.pm, cas=a.cas, profiles=a.profiles, clock=a.clock,
                     crls=a.crls, crash_after_sign=late)
    outcome = slow.submit(request(make_csr(), protocol="est", transaction_id="t-slow"))
    assert len(answers[0]) == 1
    assert isinstance(outcome, Issued)
    record = a.request(outcome.request_id)
    assert record is not None and record.certificate_serial == outcome.serial_hex
    assert stored(ctx) == (1, 1)


def test_a_request_its_front_end_cannot_deliver_later_is_failed_and_released(
        ctx: AppContext, clock: FrozenClock, stored: Counts) -> None:
    """An EST server-generated key lived only in the dead worker: recovery must not
    certify it; the client's retry is a new request (new key)."""
    csr = make_csr()
    with pytest.raises(Crash):
        crashing(ctx).submit(request(csr, protocol="est", endpoint="default",
                                     transaction_id="t-key",
                                     attributes={NOT_RECOVERABLE: True}))
    left = ctx.authority.find_transaction("est", "default", "t-key")
    assert left is not None
    clock.advance(GRACE)
    assert recovery.run(ctx).requests == 1
    failed = ctx.authority.request(left.id)
    assert failed is not None and failed.status is RequestStatus.FAILED
    assert failed.transaction_id is None and "send the request again" in failed.reason
    assert stored(ctx) == (0, 1)
    retry = ctx.authority.submit(request(make_csr(), protocol="est", endpoint="default",
                                         transaction_id="t-key"))
    assert isinstance(retry, Issued) and retry.request_id != left.id
