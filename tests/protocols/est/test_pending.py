"""Manual approval: 202 + Retry-After, then the certificate (or an error) on resubmission."""

from __future__ import annotations

from typing import Any

from harness import est_enroll

from enroll.model import RequestStatus
from enroll.testing import make_csr
from enroll.testing.est_client import certs_from

MANUAL = {"manual": {"ca": "issuing", "validity": "30d", "approval": "manual",
                     "subject": {"CN": "csr"}, "extended_key_usage": ["client_auth"]}}


def _pending_harness(make_est: Any) -> Any:
    return make_est(extra_profiles=MANUAL, profile="manual")


def test_pending_request_answers_202_with_retry_after(make_est: Any) -> None:
    h = _pending_harness(make_est)
    csr = make_csr(cn="needs-approval")
    r = est_enroll(h, csr)
    assert r.status_code == 202
    assert int(r.headers["retry-after"]) > 0
    again = est_enroll(h, csr)
    assert again.status_code == 202
    assert h.counts() == (0, 1)


def test_resubmission_after_approval_returns_the_certificate(make_est: Any) -> None:
    h = _pending_harness(make_est)
    csr = make_csr(cn="needs-approval")
    assert est_enroll(h, csr).status_code == 202
    [pending] = h.ctx.authority.list_requests(RequestStatus.PENDING)
    issued = h.ctx.authority.approve(pending.id, "officer")
    r = est_enroll(h, csr)
    assert r.status_code == 200
    assert certs_from(r.content) == [issued.certificate]
    assert h.counts() == (1, 1)


def test_resubmission_after_rejection_is_an_error(make_est: Any) -> None:
    h = _pending_harness(make_est)
    csr = make_csr(cn="will-be-rejected")
    assert est_enroll(h, csr).status_code == 202
    [pending] = h.ctx.authority.list_requests(RequestStatus.PENDING)
    h.ctx.authority.reject(pending.id, "officer", "not one of ours")
    r = est_enroll(h, csr)
    assert r.status_code == 403
    assert "not one of ours" in r.text
    assert h.counts() == (0, 1)


def test_another_user_resubmitting_the_csr_gets_its_own_request(make_est: Any,
                                                                bob: Any) -> None:
    h = _pending_harness(make_est)
    csr = make_csr(cn="shared")
    assert est_enroll(h, csr).status_code == 202
    assert est_enroll(h, csr, auth=bob).status_code == 202
    assert h.counts() == (0, 2)


def test_racing_resubmissions_issue_one_certificate(est: Any) -> None:
    from concurrent.futures import ThreadPoolExecutor

    csr = make_csr(cn="racer")
    with ThreadPoolExecutor(max_workers=6) as pool:
        answers = list(pool.map(lambda _: est_enroll(est, csr), range(6)))
    assert {r.status_code for r in answers} == {200}
    assert len({certs_from(r.content)[0].serial_number for r in answers}) == 1
    assert est.counts() == (1, 1)
