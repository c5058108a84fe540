"""Every check on a PKIOperation: the wire answer, and that nothing was stored."""

from __future__ import annotations

import datetime as dt
import os
from typing import Any

import pytest
from asn1crypto import cms
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID
from enroll.protocols.scep.failinfo import FailInfo
from enroll.protocols.scep.pkimessage import MessageType, PKIStatus, build_request
from harness import CHALLENGE, Harness, scep_client, scep_operation, scep_ra

from enroll.testing.scep_client import csr_with_challenge, self_signed

DER = serialization.Encoding.DER


def _failure(scep: Harness, client: Any, message: bytes) -> FailInfo | None:
    r = scep_operation(scep, message)
    assert r.status_code == 200, r.text
    reply = client.read(r.content)  # the FAILURE CertRep is signed by the RA too
    assert reply.status is PKIStatus.FAILURE
    assert scep.counts() == (0, 0)
    return reply.certrep.fail_info


def test_garbage_der_is_http_400_and_stores_nothing(scep: Harness) -> None:
    r = scep_operation(scep, os.urandom(300))
    assert r.status_code == 400
    assert "Traceback" not in r.text
    assert scep.counts() == (0, 0)


def test_truncated_message_is_http_400(scep: Harness) -> None:
    client = scep_client(scep)
    message, _ = client.pkcs_req(csr_with_challenge(client.key, "d", CHALLENGE))
    assert scep_operation(scep, message[: len(message) // 2]).status_code == 400
    assert scep_operation(scep, b"").status_code == 400
    assert scep.counts() == (0, 0)


def test_get_with_a_message_that_is_not_base64_is_http_400(scep: Harness) -> None:
    r = scep.get("/scep", params={"operation": "PKIOperation", "message": "%%%not*base64"})
    assert r.status_code == 400
    assert scep.counts() == (0, 0)


def test_oversized_body_is_refused_before_parsing(make_scep: Any) -> None:
    scep = make_scep(max_message_bytes=4096)
    assert scep_operation(scep, b"\x30" * 5000).status_code == 413
    big = scep.get("/scep", params={"operation": "PKIOperation", "message": "A" * 9000})
    assert big.status_code == 414
    assert scep.counts() == (0, 0)


def test_unknown_operation_is_http_400(scep: Harness) -> None:
    assert scep.get("/scep", params={"operation": "Nope"}).status_code == 400


def test_envelope_to_another_recipient_is_badmessagecheck(scep: Harness) -> None:
    client = scep_client(scep)
    stranger_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    csr = csr_with_challenge(client.key, "d", CHALLENGE)
    message = build_request(MessageType.PKCS_REQ, csr.public_bytes(DER),
                            [self_signed(stranger_key, "other-ra")], client.signer,
                            client.key, "t1")
    assert _failure(scep, client, message) is FailInfo.BAD_MESSAGE_CHECK


def test_tampered_signature_is_badmessagecheck(scep: Harness) -> None:
    client = scep_client(scep)
    message, _ = client.pkcs_req(csr_with_challenge(client.key, "d", CHALLENGE))
    info = cms.ContentInfo.load(message)
    si = info["content"]["signer_infos"][0]
    sig = bytearray(si["signature"].native)
    sig[10] ^= 0xFF
    si["signature"] = bytes(sig)
    assert _failure(scep, client, info.dump(force=True)) is FailInfo.BAD_MESSAGE_CHECK


def test_tampered_content_is_badmessagecheck(scep: Harness) -> None:
    client = scep_client(scep)
    message, _ = client.pkcs_req(csr_with_challenge(client.key, "d", CHALLENGE))
    info = cms.ContentInfo.load(message)
    eci = info["content"]["encap_content_info"]
    content = bytearray(eci["content"].native)
    content[-5] ^= 0x01
    eci["content"] = bytes(content)
    assert _failure(scep, client, info.dump(force=True)) is FailInfo.BAD_MESSAGE_CHECK


@pytest.mark.parametrize("message_type", ["99", "18", "3"])
def test_unhandled_message_types_are_badrequest(scep: Harness, message_type: str) -> None:
    client = scep_client(scep)
    message, _ = client.pkcs_req(csr_with_challenge(client.key, "d", CHALLENGE),
                                 message_type=message_type)
    assert _failure(scep, client, message) is FailInfo.BAD_REQUEST


def test_signing_time_far_in_the_past_is_badtime(scep: Harness) -> None:
    client = scep_client(scep)
    old = dt.datetime.now(dt.UTC) - dt.timedelta(days=3)
    message, _ = client.pkcs_req(csr_with_challenge(client.key, "d", CHALLENGE), now=old)
    assert _failure(scep, client, message) is FailInfo.BAD_TIME


@pytest.mark.parametrize("kw", [{"digest": "sha512"}, {"cipher": "aes256_cbc"}])
def test_aes256_and_sha512_are_accepted_by_default(scep: Harness, kw: dict) -> None:  # type: ignore[type-arg]
    client = scep_client(scep, **kw)
    message, _ = client.pkcs_req(csr_with_challenge(client.key, "d", CHALLENGE))
    assert client.read(scep_operation(scep, message).content).status is PKIStatus.SUCCESS


def test_signer_key_different_from_csr_key_is_the_undecryptable_answer(scep: Harness) -> None:
    client = scep_client(scep)
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    message, _ = client.pkcs_req(csr_with_challenge(other, "d", CHALLENGE))
    assert _failure(scep, client, message) is FailInfo.BAD_MESSAGE_CHECK


def test_csr_with_a_broken_self_signature_is_badmessagecheck(scep: Harness) -> None:
    client = scep_client(scep)
    der = bytearray(csr_with_challenge(client.key, "d", CHALLENGE).public_bytes(DER))
    der[-3] ^= 0xFF
    message = build_request(MessageType.PKCS_REQ, bytes(der), [client.ra], client.signer,
                            client.key, "t2")
    assert _failure(scep, client, message) is FailInfo.BAD_MESSAGE_CHECK


def test_content_that_is_not_a_csr_is_the_undecryptable_answer(scep: Harness) -> None:
    client = scep_client(scep)
    message = build_request(MessageType.PKCS_REQ, b"\x30\x03\x02\x01\x01", [client.ra],
                            client.signer, client.key, "t3")
    assert _failure(scep, client, message) is FailInfo.BAD_MESSAGE_CHECK


def test_csr_the_profile_refuses_is_badrequest(scep: Harness) -> None:
    client = scep_client(scep)
    csr = csr_with_challenge(client.key, "d", CHALLENGE)
    refused = (x509.CertificateSigningRequestBuilder()
               .subject_name(csr.subject)
               .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
               .add_attribute(x509.oid.AttributeOID.CHALLENGE_PASSWORD,
                              CHALLENGE.encode())
               .sign(client.key, hashes.SHA256()))
    message, _ = client.pkcs_req(refused)
    assert _failure(scep, client, message) is FailInfo.BAD_REQUEST


@pytest.mark.parametrize("curve", [ec.SECP256R1(), ec.SECP384R1()])
def test_pkcsreq_with_an_ec_key_is_answered_by_ecdh(scep: Harness, curve: Any) -> None:
    from enroll.testing.scep_client import ScepClient

    key = ec.generate_private_key(curve)
    client = ScepClient(scep_ra(scep), key=key)
    message, _ = client.pkcs_req(csr_with_challenge(key, "ec-device", CHALLENGE))
    reply = client.read(scep_operation(scep, message).content)
    assert reply.status is PKIStatus.SUCCESS, reply.certrep.fail_text
    assert reply.certificate.public_key() == key.public_key()
    assert scep.counts() == (1, 1)


def test_ed25519_signer_is_badalg(scep: Harness) -> None:
    from cryptography.hazmat.primitives.asymmetric import ed25519

    client = scep_client(scep)
    key = ed25519.Ed25519PrivateKey.generate()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ed")])
    now = dt.datetime.now(dt.UTC)
    signer = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
              .public_key(key.public_key()).serial_number(1).not_valid_before(now)
              .not_valid_after(now + dt.timedelta(days=1)).sign(key, None))
    # Signed by our RSA client key but claiming the Ed25519 certificate as signer.
    message = build_request(MessageType.PKCS_REQ, b"\x30\x00", [client.ra], signer,
                            client.key, "t-ed")
    r = scep_operation(scep, message)
    from enroll.protocols.scep.pkimessage import parse_certrep

    rep = parse_certrep(r.content, client.ra)
    assert rep.status is PKIStatus.FAILURE and rep.fail_info is FailInfo.BAD_ALG
    assert scep.counts() == (0, 0)


def test_mutated_messages_never_cause_a_server_error(scep: Harness) -> None:
    """Seeded byte-level mutations of valid messages: every answer is a signed CertRep
    or a 400, never a 500 (found a non-ASCII transactionID and undecodable signer keys)."""
    import random

    from enroll.protocols.scep.pkimessage import parse_certrep

    client = scep_client(scep)
    issuer = scep.ctx.authority.chain("issuing")[0].subject
    bases = [client.pkcs_req(csr_with_challenge(client.key, "f", "wrong"))[0],
             client.get_cert(issuer, 5), client.cert_poll(issuer, issuer, "x")]
    rng = random.Random(1)  # noqa: S311 - reproducible fuzzing, not crypto
    for _ in range(150):
        m = bytearray(rng.choice(bases))
        for _ in range(rng.randint(1, 4)):
            pos = rng.randrange(len(m))
            op = rng.random()
            if op < 0.6:
                m[pos] = rng.randrange(256)
            elif op < 0.8:
                del m[pos:pos + rng.randint(1, 20)]
            else:
                m[pos:pos] = rng.randbytes(rng.randint(1, 10))
        r = scep_operation(scep, bytes(m))
        assert r.status_code in (200, 400), r.status_code
        if r.status_code == 200:
            parse_certrep(r.content, client.ra)
    assert scep.counts() == (0, 0)
