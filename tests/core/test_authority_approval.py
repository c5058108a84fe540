"""The manual approval queue: pending, approved (issues), rejected, with audit events."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import pytest
from cryptography import x509

from enroll.context import AppContext
from enroll.errors import BadCSR, Conflict, NotFound
from enroll.model import Issued, Pending, Rejected, RequestStatus
from enroll.store import queries
from enroll.testing import make_csr, request

MANUAL = {"manual": {"ca": "issuing", "validity": "30d", "approval": "manual",
                     "extended_key_usage": ["client_auth"], "san": {"dns": ["*"]}}}
Counts = Callable[[AppContext], tuple[int, int]]


@pytest.fixture
def ctx(build: Callable[..., AppContext]) -> AppContext:
    return build(extra_profiles=MANUAL)


def pend(ctx: AppContext, csr: x509.CertificateSigningRequest | None = None,
         **kw: str) -> Pending:
    csr = csr or make_csr(dns=["q.example.com"])
    outcome = ctx.authority.submit(request(csr, "manual", **kw))
    assert isinstance(outcome, Pending)
    return outcome


def test_manual_profile_request_is_pending_and_queued(ctx: AppContext, stored: Counts) -> None:
    outcome = pend(ctx)
    assert outcome.reason == "profile requires manual approval"
    assert outcome.retry_after > 0
    assert stored(ctx) == (0, 1)
    [queued] = ctx.authority.list_requests(RequestStatus.PENDING)
    assert queued.id == outcome.request_id
    assert queued.sans == ("dns:q.example.com",)
    assert isinstance(ctx.authority.status(outcome.request_id), Pending)


def test_approval_issues_the_certificate_and_audits_who_and_when(
        ctx: AppContext, stored: Counts) -> None:
    csr = make_csr(dns=["q.example.com"])
    pending = pend(ctx, csr, protocol="est", transaction_id="poll-1")
    before = dt.datetime.now(dt.UTC)
    issued = ctx.authority.approve(pending.request_id, "officer-alice")
    assert isinstance(issued, Issued)
    assert issued.request_id == pending.request_id
    assert stored(ctx) == (1, 1)
    # A polling client now gets the certificate, by request id or by transaction.
    polled = ctx.authority.status(pending.request_id)
    assert isinstance(polled, Issued) and polled.certificate == issued.certificate
    retried = ctx.authority.submit(request(csr, "manual", protocol="est",
                                           transaction_id="poll-1"))
    assert isinstance(retried, Issued) and retried.certificate == issued.certificate
    with ctx.db.read() as conn:
        events = queries.list_audit(conn, request_id=pending.request_id)
    assert [e.type for e in events] == ["request.pending", "request.approved",
                                        "certificate.issued"]
    approval = events[1]
    assert approval.actor == "officer-alice"
    assert before - dt.timedelta(seconds=5) <= approval.at <= dt.datetime.now(dt.UTC)
    assert approval.details["reserved_serial"]


def test_rejection_records_reason_and_actor_and_issues_nothing(
        ctx: AppContext, stored: Counts) -> None:
    pending = pend(ctx)
    record = ctx.authority.reject(pending.request_id, "officer-bob", "unknown device")
    assert record.status is RequestStatus.REJECTED
    assert record.reason == "unknown device"
    assert stored(ctx) == (0, 1)
    outcome = ctx.authority.status(pending.request_id)
    assert isinstance(outcome, Rejected) and outcome.reason == "unknown device"
    with ctx.db.read() as conn:
        events = queries.list_audit(conn, request_id=pending.request_id)
    assert [(e.type, e.actor) for e in events] == [("request.pending", "test"),
                                                   ("request.rejected", "officer-bob")]
    assert events[1].details["reason"] == "unknown device"
    assert events[1].at.tzinfo is not None


def test_approving_twice_is_a_conflict_and_issues_once(ctx: AppContext, stored: Counts) -> None:
    pending = pend(ctx)
    ctx.authority.approve(pending.request_id, "alice")
    with pytest.raises(Conflict, match="request is issued, not pending"):
        ctx.authority.approve(pending.request_id, "bob")
    assert stored(ctx) == (1, 1)


def test_rejecting_an_approved_request_and_approving_a_rejected_one_conflict(
        ctx: AppContext, stored: Counts) -> None:
    approved, rejected = pend(ctx), pend(ctx)
    ctx.authority.approve(approved.request_id, "alice")
    ctx.authority.reject(rejected.request_id, "alice", "no")
    with pytest.raises(Conflict):
        ctx.authority.reject(approved.request_id, "bob", "too late")
    with pytest.raises(Conflict, match="rejected, not pending"):
        ctx.authority.approve(rejected.request_id, "bob")
    assert stored(ctx) == (1, 2)


def test_deciding_an_unknown_request_is_not_found(ctx: AppContext) -> None:
    with pytest.raises(NotFound):
        ctx.authority.approve("00000000-0000-0000-0000-000000000000", "alice")
    with pytest.raises(NotFound):
        ctx.authority.reject("00000000-0000-0000-0000-000000000000", "alice", "x")



def test_an_approved_issuance_is_counted_in_the_issuance_metric(ctx: AppContext) -> None:
    from enroll import metrics

    def issued() -> float:
        value = metrics.REGISTRY.get_sample_value(
            "enroll_issuances_total", {"protocol": "core", "profile": "manual"})
        return value or 0.0

    pending = pend(ctx)
    before = issued()
    ctx.authority.approve(pending.request_id, "alice")
    assert issued() == before + 1


def test_approving_a_request_the_profile_no_longer_allows_marks_it_failed(
        build: Callable[..., AppContext]) -> None:
    narrow = {"manual": {**MANUAL["manual"], "san": {"dns": ["*.other.example"]}}}
    first = build(extra_profiles=MANUAL)
    pending = pend(first)
    # The operator narrowed the profile before approving (same database, new start).
    later = build(extra_profiles=narrow)
    with pytest.raises(BadCSR):
        later.authority.approve(pending.request_id, "alice")
    record = later.authority.request(pending.request_id)
    assert record is not None and record.status is RequestStatus.FAILED
