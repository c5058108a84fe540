"""OCSP answers come from stored, pre-signed responses: one signature per certificate
state, shared through the database; re-signed on revocation and at half validity; an
unknown serial costs no signature and stores nothing. Real CA keys, real database."""

from __future__ import annotations

import copy
import datetime as dt
import threading
from collections.abc import Callable
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp

from enroll import config as config_mod
from enroll.clock import FrozenClock
from enroll.context import AppContext
from enroll.model import Issued
from enroll.store import ocsp_responses
from enroll.testing import make_csr, request

DER = serialization.Encoding.DER
SHA1 = hashes.SHA1()  # noqa: S303 - RFC 5019 CertIDs


def _issue(ctx: AppContext, cn: str) -> Issued:
    outcome = ctx.authority.submit(request(make_csr(cn=cn, dns=[cn]), "server"))
    assert isinstance(outcome, Issued)
    return outcome


def _req(issued: Issued, alg: hashes.HashAlgorithm = SHA1, nonce: bytes | None = None
         ) -> bytes:
    builder = ocsp.OCSPRequestBuilder().add_certificate(issued.certificate, issued.chain[0],
                                                        alg)
    if nonce is not None:
        builder = builder.add_extension(x509.OCSPNonce(nonce), critical=False)
    return builder.build().public_bytes(DER)


def _count_signatures(ctx: AppContext, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Wrap the issuing CA's `sign_ocsp`; the list's length is the number of calls."""
    backend = ctx.cas.get("issuing")
    real = backend.sign_ocsp
    calls: list[int] = []

    def counting(builder: ocsp.OCSPResponseBuilder) -> ocsp.OCSPResponse:
        calls.append(1)
        return real(builder)

    monkeypatch.setattr(backend, "sign_ocsp", counting)
    return calls


def _stored_rows(ctx: AppContext) -> int:
    with ctx.db.read() as tx:
        return int(tx.scalar("SELECT COUNT(*) FROM ocsp_responses"))


def test_a_hundred_requests_for_one_serial_cost_one_signature(
        context: AppContext, monkeypatch: pytest.MonkeyPatch) -> None:
    issued = _issue(context, "h.example.com")
    calls = _count_signatures(context, monkeypatch)
    answers = {context.ocsp.respond(_req(issued, nonce=bytes([i]) * 16)) for i in range(100)}
    assert len(calls) == 1
    assert len(answers) == 1  # nonces ignored (RFC 5019 §4): the same stored bytes
    resp = ocsp.load_der_ocsp_response(answers.pop())
    assert resp.certificate_status is ocsp.OCSPCertStatus.GOOD
    assert resp.serial_number == issued.certificate.serial_number
    # A SHA-256 CertID is another stored response (a client matches the CertID it sent).
    sha256 = ocsp.load_der_ocsp_response(context.ocsp.respond(_req(issued, hashes.SHA256())))
    assert sha256.hash_algorithm.name == "sha256" and len(calls) == 2
    assert _stored_rows(context) == 2


def test_concurrent_first_requests_in_one_worker_cost_one_signature(
        context: AppContext, monkeypatch: pytest.MonkeyPatch) -> None:
    issued = _issue(context, "c.example.com")
    calls = _count_signatures(context, monkeypatch)
    der = _req(issued)
    barrier = threading.Barrier(16)
    answers: list[bytes] = []

    def ask() -> None:
        barrier.wait()
        answers.append(context.ocsp.respond(der))

    threads = [threading.Thread(target=ask) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(answers) == 16 and len(set(answers)) == 1
    assert len(calls) == 1


def test_a_second_worker_answers_from_the_stored_response(
        build: Callable[..., AppContext], monkeypatch: pytest.MonkeyPatch) -> None:
    first, second = build(), build()  # two contexts on one database: two workers
    issued = _issue(first, "w.example.com")
    der = first.ocsp.respond(_req(issued))
    calls = _count_signatures(second, monkeypatch)
    assert second.ocsp.respond(_req(issued)) == der
    assert calls == []


def test_unknown_serial_is_unauthorized_unsigned_and_stores_nothing(
        context: AppContext, monkeypatch: pytest.MonkeyPatch) -> None:
    issued = _issue(context, "k.example.com")
    calls = _count_signatures(context, monkeypatch)
    issuer = issued.chain[0]
    for serial in (1, 2**159, issued.certificate.serial_number + 1):
        der = ocsp.OCSPRequestBuilder().add_certificate_by_hash(
            *_issuer_hashes(context, issuer), serial, SHA1).build().public_bytes(DER)
        resp = ocsp.load_der_ocsp_response(context.ocsp.respond(der))
        assert resp.response_status is ocsp.OCSPResponseStatus.UNAUTHORIZED
    # A certificate of the root asked about under the issuing CA: not this CA's serial.
    assert calls == [] and _stored_rows(context) == 0


def _issuer_hashes(ctx: AppContext, issuer: x509.Certificate) -> tuple[bytes, bytes]:
    from enroll.ocsp import _key_bits

    name = hashes.Hash(SHA1)
    name.update(issuer.subject.public_bytes())
    key = hashes.Hash(SHA1)
    key.update(_key_bits(issuer))
    return name.finalize(), key.finalize()


def test_revocation_resigns_at_once_and_a_stale_good_is_never_served(
        build: Callable[..., AppContext], monkeypatch: pytest.MonkeyPatch) -> None:
    worker, admin = build(), build()
    issued = _issue(admin, "r.example.com")
    good = worker.ocsp.respond(_req(issued))
    assert ocsp.load_der_ocsp_response(good).certificate_status is ocsp.OCSPCertStatus.GOOD
    admin.authority.revoke(issued.serial_hex, x509.ReasonFlags.key_compromise, "secops")
    # The revoking process re-signed the stored SHA-1 response: the worker signs nothing.
    calls = _count_signatures(worker, monkeypatch)
    resp = ocsp.load_der_ocsp_response(worker.ocsp.respond(_req(issued)))
    assert resp.certificate_status is ocsp.OCSPCertStatus.REVOKED
    assert resp.revocation_reason is x509.ReasonFlags.key_compromise
    assert calls == []
    # A "good" signed before the revocation whose write lands after it (a racing
    # worker) neither replaces the revoked response nor is ever served.
    stale = ocsp_responses.StoredResponse(
        ocsp_responses.GOOD, dt.datetime.now(dt.UTC), dt.datetime.now(dt.UTC) +
        dt.timedelta(days=1), good)
    with worker.db.write() as tx:
        ocsp_responses.put(tx, "issuing", issued.serial_hex, "sha1", stale)
    with worker.db.read() as tx:
        row = ocsp_responses.get(tx, "issuing", issued.serial_hex, "sha1")
    assert row is not None and row.status == ocsp_responses.REVOKED
    with worker.db.write() as tx:  # even forced in, it says good where the store says revoked
        tx.run("UPDATE ocsp_responses SET status = 'good', der = ?", (good,))
    again = ocsp.load_der_ocsp_response(worker.ocsp.respond(_req(issued)))
    assert again.certificate_status is ocsp.OCSPCertStatus.REVOKED
    assert len(calls) == 1  # re-signed once, from the certificate's state


def test_this_update_is_backdated_and_resigned_at_half_validity(
        build: Callable[..., AppContext], monkeypatch: pytest.MonkeyPatch) -> None:
    cas = copy.deepcopy(config_mod.default_raw_config()["cas"])
    cas["issuing"].update(ocsp_validity="2h", ocsp_backdate="10m")
    start = dt.datetime.now(dt.UTC).replace(microsecond=0)
    clock = FrozenClock(start)
    ctx = build(cas=cas, clock=clock)
    issued = _issue(ctx, "t.example.com")
    calls = _count_signatures(ctx, monkeypatch)
    first = ocsp.load_der_ocsp_response(ctx.ocsp.respond(_req(issued)))
    assert first.this_update_utc == start - dt.timedelta(minutes=10)
    assert first.next_update_utc == start + dt.timedelta(hours=2)
    clock.advance(dt.timedelta(minutes=59))
    assert ctx.ocsp.respond(_req(issued)) == first.public_bytes(DER)
    assert len(calls) == 1
    clock.advance(dt.timedelta(minutes=1))  # half of the 2 h validity: re-signed
    second = ocsp.load_der_ocsp_response(ctx.ocsp.respond(_req(issued)))
    assert len(calls) == 2
    assert second.this_update_utc == clock.now() - dt.timedelta(minutes=10)
    assert second.next_update_utc == clock.now() + dt.timedelta(hours=2)
    assert _stored_rows(ctx) == 1


@pytest.mark.parametrize("value", ["30s", "banana"])
def test_ocsp_validity_is_checked(make_config: Callable[..., Any], value: str) -> None:
    cas = copy.deepcopy(config_mod.default_raw_config()["cas"])
    cas["issuing"]["ocsp_validity"] = value
    with pytest.raises(config_mod.ConfigError, match="cas.issuing.ocsp_validity"):
        make_config(cas=cas)


def test_a_response_that_cannot_be_stored_is_still_answered(
        context: AppContext, monkeypatch: pytest.MonkeyPatch) -> None:
    issued = _issue(context, "s.example.com")

    def failing(*_: Any) -> None:
        raise RuntimeError("disk full")

    monkeypatch.setattr(ocsp_responses, "put", failing)
    resp = ocsp.load_der_ocsp_response(context.ocsp.respond(_req(issued)))
    assert resp.certificate_status is ocsp.OCSPCertStatus.GOOD
    assert _stored_rows(context) == 0
    monkeypatch.undo()
    calls = _count_signatures(context, monkeypatch)
    context.ocsp.respond(_req(issued))
    context.ocsp.respond(_req(issued))
    assert len(calls) == 1 and _stored_rows(context) == 1
