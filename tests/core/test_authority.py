"""The authority pipeline: issue, refuse (storing nothing), retry, renew, revoke, crash."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes

from enroll import authority as authority_mod
from enroll import recovery
from enroll.authority import Authority
from enroll.context import AppContext
from enroll.csr import load_csr
from enroll.errors import BadCSR, Conflict, EnrollError, MalformedInput, NotFound
from enroll.model import CertificateStatus, Issued, Pending, RequestStatus
from enroll.store import queries
from enroll.testing import make_csr, make_key, request

Counts = Callable[[AppContext], tuple[int, int]]


def audit_types(ctx: AppContext, request_id: str | None = None) -> list[str]:
    """Audit event types, leaving out the CAs' own creation events."""
    with ctx.db.read() as conn:
        return [e.type for e in queries.list_audit(conn, request_id=request_id)
                if not e.type.startswith("ca.")]


def issue(ctx: AppContext, profile: str = "device", **kw: Any) -> Issued:
    outcome = ctx.authority.submit(request(make_csr(**kw), profile))
    assert isinstance(outcome, Issued)
    return outcome


def test_issued_certificate_is_stored_with_its_request_and_audit_event(
        context: AppContext) -> None:
    outcome = context.authority.submit(request(
        make_csr(cn="dev-1.example.com", dns=["dev-1.example.com"]), "device",
        protocol="scep", endpoint="default", attributes={"message_type": "PKCSReq"}))
    assert isinstance(outcome, Issued)
    record = context.authority.lookup(outcome.certificate)
    assert record is not None
    assert (record.status, record.profile, record.protocol, record.requester, record.ca) == (
        CertificateStatus.VALID, "device", "scep", "test", "issuing")
    assert record.sans == ("dns:dev-1.example.com",)
    req = context.authority.request(outcome.request_id)
    assert req is not None and req.status is RequestStatus.ISSUED
    assert req.certificate_serial == outcome.serial_hex
    assert req.attributes == {"message_type": "PKCSReq"}
    assert audit_types(context, outcome.request_id) == ["request.approved",
                                                        "certificate.issued"]
    assert outcome.chain == context.authority.chain("issuing")
    assert outcome.chain[0].subject == outcome.certificate.issuer


def test_lookup_answers_only_for_certificates_issued_here(context: AppContext) -> None:
    issued = issue(context)
    assert context.authority.lookup(issued.certificate) is not None
    assert context.authority.lookup(context.authority.chain("issuing")[0]) is None
    # Same serial, issuer name and subject, signed by someone else: not ours.
    forger = make_key()
    original = issued.certificate
    forged = (x509.CertificateBuilder().subject_name(original.subject)
              .issuer_name(original.issuer).public_key(forger.public_key())
              .serial_number(original.serial_number)
              .not_valid_before(original.not_valid_before_utc)
              .not_valid_after(original.not_valid_after_utc)
              .sign(forger, hashes.SHA256()))
    assert context.authority.lookup(forged) is None


def test_bad_csrs_get_a_typed_error_and_leave_nothing_stored(
        context: AppContext, stored: Counts, vector: Callable[[str], bytes]) -> None:
    cases: list[tuple[x509.CertificateSigningRequest, str, type[Exception], str]] = [
        (x509.load_der_x509_csr(vector("rsa2048_bad_signature.csr.der")), "device", BadCSR,
         "CSR signature does not verify"),
        (x509.load_pem_x509_csr(vector("openssl_rsa1024.csr.pem")), "device", BadCSR,
         "too weak"),
        (x509.load_pem_x509_csr(vector("openssl_ca_true.csr.pem")), "device", BadCSR,
         "CA:TRUE"),
        (x509.load_pem_x509_csr(vector("openssl_eku_code_signing.csr.pem")), "device", BadCSR,
         "extended key usage"),
        (make_csr(cn="no-names.example.com"), "server", BadCSR,
         "requires at least one subject alternative name"),
        (make_csr(), "no-such-profile", NotFound, "no profile named"),
    ]
    for csr, profile, error, reason in cases:
        with pytest.raises(error, match=reason):
            context.authority.submit(request(csr, profile))
    with pytest.raises(NotFound):
        context.authority.submit(request(make_csr(), ca="no-such-ca"))
    assert stored(context) == (0, 0)
    assert audit_types(context) == []


def test_malformed_csr_bytes_are_malformed_input_and_store_nothing(
        context: AppContext, stored: Counts, vector: Callable[[str], bytes]) -> None:
    for name in ("garbage.csr.pem", "truncated.csr.der"):
        with pytest.raises(MalformedInput):
            context.authority.submit(request(load_csr(vector(name))))
    assert stored(context) == (0, 0)


def test_check_runs_profile_rules_without_storing(context: AppContext, stored: Counts) -> None:
    accepted = context.authority.check(request(make_csr(dns=["a.example.com"]), "server"))
    assert accepted.names == (x509.DNSName("a.example.com"),)
    with pytest.raises(BadCSR):
        context.authority.check(request(make_csr(make_key("rsa-1024"))))
    assert stored(context) == (0, 0)


def test_transaction_id_retries_return_the_first_certificate(
        context: AppContext, stored: Counts) -> None:
    csr = make_csr()
    first = context.authority.submit(request(csr, protocol="scep", endpoint="e",
                                             transaction_id="tid-1"))
    again = context.authority.submit(request(csr, protocol="scep", endpoint="e",
                                             transaction_id="tid-1"))
    assert isinstance(first, Issued) and isinstance(again, Issued)
    assert again.certificate == first.certificate
    assert again.request_id == first.request_id
    assert stored(context) == (1, 1)
    found = context.authority.find_transaction("scep", "e", "tid-1")
    assert found is not None and found.id == first.request_id


def test_same_transaction_id_with_another_key_is_a_conflict(
        context: AppContext, stored: Counts) -> None:
    context.authority.submit(request(make_csr(), protocol="scep", endpoint="e",
                                     transaction_id="tid-1"))
    with pytest.raises(Conflict, match="another key"):
        context.authority.submit(request(make_csr(), protocol="scep", endpoint="e",
                                         transaction_id="tid-1"))
    assert stored(context) == (1, 1)


def test_same_transaction_id_on_another_endpoint_is_a_new_request(
        context: AppContext, stored: Counts) -> None:
    csr = make_csr()
    a = context.authority.submit(request(csr, protocol="scep", endpoint="a",
                                         transaction_id="t"))
    b = context.authority.submit(request(csr, protocol="scep", endpoint="b",
                                         transaction_id="t"))
    assert isinstance(a, Issued) and isinstance(b, Issued)
    assert a.serial_hex != b.serial_hex
    assert stored(context) == (2, 2)


def test_renewal_links_the_replaced_certificate(context: AppContext) -> None:
    old = issue(context)
    new = context.authority.submit(request(make_csr(), replaces=old.serial_hex,
                                           protocol="est"))
    assert isinstance(new, Issued)
    record = context.authority.certificate(new.serial_hex)
    assert record is not None and record.replaces == old.serial_hex


def test_renewal_of_an_unknown_certificate_is_not_found_and_stores_nothing(
        context: AppContext, stored: Counts) -> None:
    with pytest.raises(NotFound):
        context.authority.submit(request(make_csr(), replaces="abcdef"))
    assert stored(context) == (0, 0)


def test_revocation_records_reason_time_and_audit_and_is_not_repeatable(
        context: AppContext) -> None:
    issued = issue(context)
    revoked = context.authority.revoke(issued.serial_hex, x509.ReasonFlags.key_compromise,
                                       "alice")
    assert revoked.status is CertificateStatus.REVOKED
    assert revoked.revocation_reason is x509.ReasonFlags.key_compromise
    assert revoked.revoked_at is not None and revoked.revoked_at.tzinfo is not None
    with context.db.read() as conn:
        events = queries.list_audit(conn, request_id=issued.request_id)
    assert (events[-1].type, events[-1].actor, events[-1].serial_hex) == (
        "certificate.revoked", "alice", issued.serial_hex)
    with pytest.raises(Conflict, match="already revoked"):
        context.authority.revoke(issued.serial_hex, x509.ReasonFlags.superseded, "alice")
    with pytest.raises(NotFound):
        context.authority.revoke("123456789abcdef", x509.ReasonFlags.superseded, "alice")


def test_remove_from_crl_is_not_a_revocation_reason(context: AppContext) -> None:
    issued = issue(context)
    with pytest.raises(EnrollError):
        context.authority.revoke(issued.serial_hex, x509.ReasonFlags.remove_from_crl, "op")
    record = context.authority.certificate(issued.serial_hex)
    assert record is not None and record.status is CertificateStatus.VALID


def test_status_of_an_unknown_request_is_not_found(context: AppContext) -> None:
    with pytest.raises(NotFound):
        context.authority.status("00000000-0000-0000-0000-000000000000")


class Crash(RuntimeError):
    pass


def _crashing(ctx: AppContext, error: BaseException) -> Authority:
    def crash() -> None:
        raise error

    a = ctx.authority
    return Authority(db=a.db, pm=a.pm, cas=a.cas, profiles=a.profiles, clock=a.clock,
                     crls=a.crls, crash_after_sign=crash)


@pytest.mark.parametrize("error", [Crash("power cut"), SystemExit(137)])
def test_crash_between_signing_and_storing_hands_out_nothing_and_audit_explains(
        context: AppContext, stored: Counts, error: BaseException,
        monkeypatch: pytest.MonkeyPatch) -> None:
    # A retry waits a bounded time for a concurrent signer; keep that wait short here.
    monkeypatch.setattr(authority_mod, "RETRY_WAIT_SECONDS", 0.2, raising=False)
    crashing = _crashing(context, error)
    with pytest.raises(type(error)):
        crashing.submit(request(make_csr(), protocol="est", transaction_id="t-crash"))
    # No certificate reached the client, and none is stored.
    assert stored(context) == (0, 1)
    # The next start (a fresh authority) can explain the state from the store alone.
    [approved] = context.authority.list_requests(RequestStatus.APPROVED)
    assert approved.certificate_serial is None
    with context.db.read() as conn:
        events = queries.list_audit(conn, request_id=approved.id)
    assert [e.type for e in events] == ["request.approved"]
    reserved = events[0].details["reserved_serial"]
    assert isinstance(reserved, str) and int(reserved, 16) > 0
    assert context.authority.certificate(reserved) is None
    # A retry of that transaction is never answered with a certificate the store lacks.
    retry = context.authority.submit(request(x509.load_pem_x509_csr(
        approved.csr_pem.encode()), protocol="est", transaction_id="t-crash"))
    assert isinstance(retry, Pending)
    assert stored(context) == (0, 1)
    # Recovery (once the grace period is over: zero here) finishes it: signed under a
    # new serial (the reserved one was never handed out) and stored, and the retry now
    # gets exactly the certificate the store holds.
    context.authority.recovery_grace = dt.timedelta(0)
    assert recovery.run(context).requests == 1
    retry = context.authority.submit(request(x509.load_pem_x509_csr(
        approved.csr_pem.encode()), protocol="est", transaction_id="t-crash"))
    assert isinstance(retry, Issued) and retry.request_id == approved.id
    record = context.authority.certificate(retry.serial_hex)
    assert record is not None and record.certificate == retry.certificate
    assert retry.serial_hex != reserved
    assert stored(context) == (1, 1)
    assert not context.authority.list_requests(RequestStatus.APPROVED)


def test_an_operator_closes_a_request_left_approved_by_a_crash(
        context: AppContext, stored: Counts, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(authority_mod, "RETRY_WAIT_SECONDS", 0.2, raising=False)
    with pytest.raises(Crash):
        _crashing(context, Crash("power cut")).submit(
            request(make_csr(), protocol="est", transaction_id="t-stuck"))
    [stuck] = context.authority.list_requests(RequestStatus.APPROVED)
    context.authority.reject(stuck.id, "alice", "signing crashed; client must retry")
    closed = context.authority.request(stuck.id)
    assert closed is not None and closed.status is RequestStatus.REJECTED
    with context.db.read() as conn:
        types = [e.type for e in queries.list_audit(conn, request_id=stuck.id)]
    assert types == ["request.approved", "request.rejected"]
    assert stored(context) == (0, 1)
