"""PKCSReq, RenewalReq, CertPoll, GetCert and GetCRL through the ASGI app."""

from __future__ import annotations

import base64

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from enroll.protocols.scep.failinfo import UNDECRYPTABLE_TEXT, FailInfo
from enroll.protocols.scep.pkimessage import MessageType, PKIStatus
from harness import CHALLENGE, Harness, scep_client, scep_operation, scep_ra

from enroll.crypto.keys import spki_sha256
from enroll.testing.scep_client import csr_with_challenge


def test_pkcsreq_with_static_challenge_issues_a_certificate(scep: Harness) -> None:
    client = scep_client(scep)
    csr = csr_with_challenge(client.key, "device-1", CHALLENGE)
    message, nonce = client.pkcs_req(csr, "tid-1")
    r = scep_operation(scep, message)
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/x-pki-message"
    reply = client.read(r.content)
    assert reply.status is PKIStatus.SUCCESS
    assert reply.certrep.recipient_nonce == nonce
    assert reply.certrep.transaction_id == "tid-1"
    cert = reply.certificate
    assert cert is not None
    assert spki_sha256(cert.public_key()) == spki_sha256(client.key.public_key())
    assert cert.subject.rfc4514_string() == "CN=device-1"
    record = scep.ctx.authority.lookup(cert)
    assert record is not None and record.protocol == "scep"
    assert scep.counts() == (1, 1)


def test_pkioperation_by_get_with_base64_message(scep: Harness) -> None:
    client = scep_client(scep)
    message, _ = client.pkcs_req(csr_with_challenge(client.key, "device-get", CHALLENGE))
    r = scep.get("/scep", params={"operation": "PKIOperation",
                                  "message": base64.b64encode(message).decode()})
    assert r.status_code == 200
    assert client.read(r.content).status is PKIStatus.SUCCESS


def test_wrong_challenge_answers_badrequest_and_stores_nothing(scep: Harness) -> None:
    client = scep_client(scep)
    message, _ = client.pkcs_req(csr_with_challenge(client.key, "device-1", "wrong"))
    reply = client.read(scep_operation(scep, message).content)
    assert reply.status is PKIStatus.FAILURE
    assert reply.certrep.fail_info is FailInfo.BAD_REQUEST
    assert scep.counts() == (0, 0)


def test_missing_challenge_answers_badrequest_and_stores_nothing(scep: Harness) -> None:
    client = scep_client(scep)
    message, _ = client.pkcs_req(csr_with_challenge(client.key, "device-1", None))
    reply = client.read(scep_operation(scep, message).content)
    assert reply.certrep.fail_info is FailInfo.BAD_REQUEST
    assert scep.counts() == (0, 0)


def test_retries_of_one_transaction_return_the_same_certificate(scep: Harness) -> None:
    client = scep_client(scep)
    csr = csr_with_challenge(client.key, "device-1", CHALLENGE)
    first = client.read(scep_operation(scep, client.pkcs_req(csr, "tid-r")[0]).content)
    second = client.read(scep_operation(scep, client.pkcs_req(csr, "tid-r")[0]).content)
    assert first.certificate == second.certificate
    assert scep.counts() == (1, 1)


def test_same_transaction_with_another_key_is_refused(scep: Harness) -> None:
    one, two = scep_client(scep), scep_client(scep)
    ok = one.read(scep_operation(scep, one.pkcs_req(
        csr_with_challenge(one.key, "a", CHALLENGE), "shared")[0]).content)
    assert ok.status is PKIStatus.SUCCESS
    refused = two.read(scep_operation(scep, two.pkcs_req(
        csr_with_challenge(two.key, "b", CHALLENGE), "shared")[0]).content)
    assert refused.status is PKIStatus.FAILURE
    assert refused.certrep.fail_info is FailInfo.BAD_REQUEST
    assert scep.counts() == (1, 1)


def _enrolled(scep: Harness) -> tuple[object, x509.Certificate]:
    client = scep_client(scep)
    reply = client.read(scep_operation(scep, client.pkcs_req(
        csr_with_challenge(client.key, "device-r", CHALLENGE), "tid-e")[0]).content)
    assert reply.certificate is not None
    return client, reply.certificate


def test_renewalreq_signed_by_the_current_certificate_records_replaces(scep: Harness) -> None:
    client, cert = _enrolled(scep)
    client.signer = cert  # type: ignore[attr-defined]
    csr = csr_with_challenge(client.key, "device-r", None)  # type: ignore[attr-defined]
    message, _ = client.pkcs_req(csr, "tid-e", MessageType.RENEWAL_REQ)  # type: ignore[attr-defined]
    reply = client.read(scep_operation(scep, message).content)  # type: ignore[attr-defined]
    assert reply.status is PKIStatus.SUCCESS, reply.certrep.fail_text
    assert reply.certificate is not None and reply.certificate != cert
    record = scep.ctx.authority.lookup(reply.certificate)
    assert record.replaces == format(cert.serial_number, "x")
    assert scep.counts() == (2, 2)


def test_renewal_of_a_revoked_certificate_is_refused(scep: Harness) -> None:
    client, cert = _enrolled(scep)
    scep.ctx.authority.revoke(cert.serial_number, x509.ReasonFlags.key_compromise, "test")
    client.signer = cert  # type: ignore[attr-defined]
    message, _ = client.pkcs_req(csr_with_challenge(client.key, "device-r", None),  # type: ignore[attr-defined]
                                 "tid-e", MessageType.RENEWAL_REQ)
    reply = client.read(scep_operation(scep, message).content)  # type: ignore[attr-defined]
    assert reply.certrep.fail_info is FailInfo.BAD_REQUEST
    assert scep.counts() == (1, 1)


def test_renewal_signed_by_an_unknown_certificate_is_refused(scep: Harness) -> None:
    client = scep_client(scep)
    message, _ = client.pkcs_req(csr_with_challenge(client.key, "x", None), "t",
                                 MessageType.RENEWAL_REQ)
    reply = client.read(scep_operation(scep, message).content)
    assert reply.certrep.fail_info is FailInfo.BAD_REQUEST
    assert scep.counts() == (0, 0)


def test_renewal_changing_the_subject_is_refused(scep: Harness) -> None:
    client, cert = _enrolled(scep)
    client.signer = cert  # type: ignore[attr-defined]
    message, _ = client.pkcs_req(csr_with_challenge(client.key, "someone-else", None),  # type: ignore[attr-defined]
                                 "tid-e", MessageType.RENEWAL_REQ)
    reply = client.read(scep_operation(scep, message).content)  # type: ignore[attr-defined]
    assert reply.certrep.fail_info is FailInfo.BAD_REQUEST
    assert scep.counts() == (1, 1)


def test_manual_approval_pending_then_certpoll_success(make_scep) -> None:  # type: ignore[no-untyped-def]
    manual = {"officer": {"ca": "issuing", "validity": "30d", "approval": "manual",
                          "key_usage": ["digital_signature", "key_encipherment"],
                          "extended_key_usage": ["client_auth"], "subject": {"CN": "csr"},
                          "key_types": ["rsa-2048"]}}
    scep = make_scep(extra_profiles=manual, profile="officer")
    client = scep_client(scep)
    csr = csr_with_challenge(client.key, "laptop", CHALLENGE)
    reply = client.read(scep_operation(scep, client.pkcs_req(csr, "tid-p")[0]).content)
    assert reply.status is PKIStatus.PENDING
    assert scep.counts() == (0, 1)
    issuer = scep.ctx.authority.chain("issuing")[0].subject
    poll = client.read(scep_operation(scep, client.cert_poll(issuer, csr.subject, "tid-p")).content)
    assert poll.status is PKIStatus.PENDING
    record = scep.ctx.authority.find_transaction("scep", "default", "tid-p")
    scep.ctx.authority.approve(record.id, "officer")
    poll = client.read(scep_operation(scep, client.cert_poll(issuer, csr.subject, "tid-p")).content)
    assert poll.status is PKIStatus.SUCCESS
    assert poll.certificate is not None
    assert scep.counts() == (1, 1)


def test_certpoll_after_rejection_answers_failure(make_scep) -> None:  # type: ignore[no-untyped-def]
    manual = {"officer": {"ca": "issuing", "validity": "30d", "approval": "manual",
                          "subject": {"CN": "csr"}, "key_types": ["rsa-2048"],
                          "key_usage": ["digital_signature", "key_encipherment"]}}
    scep = make_scep(extra_profiles=manual, profile="officer")
    client = scep_client(scep)
    csr = csr_with_challenge(client.key, "laptop", CHALLENGE)
    assert client.read(scep_operation(scep, client.pkcs_req(csr, "tid-x")[0]).content).status \
        is PKIStatus.PENDING
    record = scep.ctx.authority.find_transaction("scep", "default", "tid-x")
    scep.ctx.authority.reject(record.id, "officer", "not ours")
    issuer = scep.ctx.authority.chain("issuing")[0].subject
    poll = client.read(scep_operation(scep, client.cert_poll(issuer, csr.subject, "tid-x")).content)
    assert poll.status is PKIStatus.FAILURE
    assert poll.certrep.fail_info is FailInfo.BAD_REQUEST
    assert scep.counts() == (0, 1)


def test_certpoll_for_an_unknown_transaction_answers_badcertid(scep: Harness) -> None:
    client = scep_client(scep)
    issuer = scep.ctx.authority.chain("issuing")[0].subject
    poll = client.read(scep_operation(scep, client.cert_poll(issuer, issuer, "nope")).content)
    assert poll.certrep.fail_info is FailInfo.BAD_CERT_ID


def test_getcert_returns_an_issued_certificate(scep: Harness) -> None:
    _client, cert = _enrolled(scep)
    other = scep_client(scep)
    answer = scep_operation(scep, other.get_cert(cert.issuer, cert.serial_number))
    reply = other.read(answer.content)
    assert reply.status is PKIStatus.SUCCESS
    assert reply.certificate == cert
    # Not found is the answer of content that does not decrypt (docs/scep.md): nothing
    # authenticates an IssuerAndSerialNumber, so "parsed" must not be visible.
    missing = other.read(scep_operation(scep, other.get_cert(cert.issuer, 12345)).content)
    assert missing.certrep.fail_info is FailInfo.BAD_MESSAGE_CHECK
    assert missing.certrep.fail_text == UNDECRYPTABLE_TEXT


def test_getcrl_returns_the_issuers_crl(scep: Harness) -> None:
    _client, cert = _enrolled(scep)
    other = scep_client(scep)
    reply = other.read(scep_operation(scep, other.get_cert(
        cert.issuer, cert.serial_number, MessageType.GET_CRL)).content)
    assert reply.status is PKIStatus.SUCCESS
    crl = x509.load_der_x509_crl(reply.crls[0])
    assert crl.issuer == cert.issuer


def test_issued_certificate_chains_to_the_endpoint_ca(scep: Harness) -> None:
    _client, cert = _enrolled(scep)
    ca = scep.ctx.authority.chain("issuing")[0]
    cert.verify_directly_issued_by(ca)
    assert cert.public_bytes(serialization.Encoding.DER)


def test_renewal_to_an_ec_key_is_signed_with_the_current_rsa_certificate(scep: Harness) -> None:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec

    client, cert = _enrolled(scep)
    client.signer = cert
    ec_key = ec.generate_private_key(ec.SECP256R1())
    csr = (x509.CertificateSigningRequestBuilder().subject_name(cert.subject)
           .sign(ec_key, hashes.SHA256()))
    message, _ = client.pkcs_req(csr, "tid-ec", MessageType.RENEWAL_REQ)
    reply = client.read(scep_operation(scep, message).content)
    assert reply.status is PKIStatus.SUCCESS, reply.certrep.fail_text
    assert isinstance(reply.certificate.public_key(), ec.EllipticCurvePublicKey)


def test_expired_certificate_renews_only_within_the_grace(make_scep) -> None:  # type: ignore[no-untyped-def]
    import datetime as dt

    from enroll.clock import FrozenClock

    for grace, expected in ((0, PKIStatus.FAILURE), ("30d", PKIStatus.SUCCESS)):
        clock = FrozenClock(dt.datetime.now(dt.UTC))
        scep = make_scep(clock=clock, renewal_grace=grace)
        client = scep_client(scep)
        first = client.read(scep_operation(scep, client.pkcs_req(
            csr_with_challenge(client.key, f"old-{grace}", CHALLENGE))[0]).content)
        assert first.certificate is not None
        later = first.certificate.not_valid_after_utc + dt.timedelta(days=2)
        clock.advance(later - clock.now())
        client.signer = first.certificate
        client.ra = scep_ra(scep)  # the first RA expired too: GetCACert has its successor
        message, _ = client.pkcs_req(csr_with_challenge(client.key, f"old-{grace}", None),
                                     f"renew-{grace}", MessageType.RENEWAL_REQ, now=later)
        reply = client.read(scep_operation(scep, message).content)
        assert reply.status is expected, reply.certrep.fail_text
