"""SCEP messages real clients send (issue 12), through the app on SQLite and PostgreSQL:

- sscep's GET PKIOperation whose base64 is broken into lines (``%0A``, ``%0D%0A``);
- a challengePassword written as BMPString (NDES), TeletexString or UniversalString;
- Cisco IOS / sscep ``-O`` re-enrolment: a PKCSReq signed by the current certificate of
  this engine, for a new key (or the same key without a challenge);
- certmonger ``rekey``: a PKCSReq for a new key signed by a self-signed certificate of
  the old, certified key.

Each acceptance is paired with what is still refused, its failInfo, and nothing stored.
"""

from __future__ import annotations

import base64
import datetime as dt
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID
from enroll.protocols.scep.failinfo import UNDECRYPTABLE_TEXT, FailInfo
from enroll.protocols.scep.pkimessage import MessageType, PKIStatus
from harness import CHALLENGE, Harness, scep_client, scep_operation, scep_ra

from enroll.clock import FrozenClock
from enroll.crypto.keys import spki_sha256
from enroll.testing.scep_client import Reply, ScepClient, csr_with_challenge, self_signed


def _send(h: Harness, client: ScepClient, csr: x509.CertificateSigningRequest,
          tid: str, message_type: MessageType = MessageType.PKCS_REQ,
          now: dt.datetime | None = None) -> Reply:
    message, _ = client.pkcs_req(csr, tid, message_type, now=now)
    r = scep_operation(h, message)
    assert r.status_code == 200, r.text
    return client.read(r.content)


def _enrolled(h: Harness, cn: str = "router-1",
              dns: tuple[str, ...] = ()) -> tuple[ScepClient, x509.Certificate]:
    client = scep_client(h)
    reply = _send(h, client, csr_with_challenge(client.key, cn, CHALLENGE, dns), f"first-{cn}")
    assert reply.certificate is not None, reply.certrep.fail_text
    return client, reply.certificate


def _new_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _refused(reply: Reply, fail_info: FailInfo) -> None:
    assert reply.status is PKIStatus.FAILURE
    assert reply.certrep.fail_info is fail_info, reply.certrep.fail_text


def _renews(h: Harness, reply: Reply, old: x509.Certificate,
            key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> x509.Certificate:
    assert reply.status is PKIStatus.SUCCESS, reply.certrep.fail_text
    cert = reply.certificate
    assert cert is not None and cert != old
    assert spki_sha256(cert.public_key()) == spki_sha256(key.public_key())
    record = h.ctx.authority.lookup(cert)
    old_serial = format(old.serial_number, "x")
    assert record is not None and record.replaces == old_serial
    assert record.requester == f"cert:{old_serial}"
    old_record = h.ctx.authority.lookup(old)
    assert old_record is not None and old_record.superseded_by == record.serial_hex
    return cert


# -- 1. sscep: line-wrapped base64 in a GET -------------------------------------------------

def _wrapped(message: bytes, newline: str) -> str:
    text = base64.b64encode(message).decode()
    return newline.join(text[i:i + 64] for i in range(0, len(text), 64)) + newline


@pytest.mark.parametrize("newline", ["\n", "\r\n"], ids=["LF", "CRLF"])
def test_get_with_base64_broken_into_lines_enrols(scep: Harness, newline: str) -> None:
    client = scep_client(scep)
    message, _ = client.pkcs_req(csr_with_challenge(client.key, "sscep-get", CHALLENGE))
    encoded = _wrapped(message, newline)
    assert encoded.count(newline) > 10
    r = scep.get("/scep", params={"operation": "PKIOperation", "message": encoded})
    # httpx sends the line breaks percent-encoded, as sscep does.
    assert ("%0D%0A" if newline == "\r\n" else "%0A") in str(r.request.url)
    assert r.status_code == 200, r.text
    assert client.read(r.content).status is PKIStatus.SUCCESS
    assert scep.counts() == (1, 1)


@pytest.mark.parametrize("message", [
    "%%%not*base64",
    "%%%not*\nbase64\r\n",
    "QUJD\tREVG",  # other whitespace is not a line break
    "QUJD\nRE",  # wrapped, but not whole base64
])
def test_get_with_what_is_not_base64_is_still_refused(scep: Harness, message: str) -> None:
    r = scep.get("/scep", params={"operation": "PKIOperation", "message": message})
    assert r.status_code == 400
    assert r.text == "message is not base64\n"
    assert scep.counts() == (0, 0)


def test_wrapped_base64_is_still_bounded(make_scep: Any) -> None:
    h = make_scep(max_message_bytes=4096)
    wrapped = _wrapped(b"\x30" * 4096, "\r\n")
    assert h.get("/scep", params={"operation": "PKIOperation",
                                  "message": wrapped}).status_code == 400  # not a message
    too_big = _wrapped(b"\x30" * 8192, "\r\n")
    assert h.get("/scep", params={"operation": "PKIOperation",
                                  "message": too_big}).status_code == 414
    assert h.counts() == (0, 0)


# -- 2. challengePassword as BMPString (and the other DirectoryString types) -------------

@pytest.mark.parametrize("string_type", ["bmp", "teletex", "universal", "printable", "utf8"])
def test_challenge_password_in_any_directory_string_type_enrols(
        scep: Harness, string_type: str) -> None:
    client = scep_client(scep)
    csr = csr_with_challenge(client.key, f"ndes-{string_type}", CHALLENGE,
                             string_type=string_type)
    reply = _send(scep, client, csr, f"tid-{string_type}")
    assert reply.status is PKIStatus.SUCCESS, reply.certrep.fail_text
    assert scep.counts() == (1, 1)


def test_non_ascii_bmp_challenge_matches_the_configured_one(make_scep: Any) -> None:
    secret = "Kennwört-ÄÖÜ-ß-7f3a9c2e5b1d"  # noqa: S105 - test value
    h = make_scep(challenge=secret)
    client = scep_client(h)
    reply = _send(h, client, csr_with_challenge(client.key, "ndes-1", secret,
                                                string_type="bmp"), "tid-bmp")
    assert reply.status is PKIStatus.SUCCESS, reply.certrep.fail_text


@pytest.mark.parametrize("string_type", ["bmp", "universal"])
def test_wrong_bmp_challenge_is_still_badrequest(scep: Harness, string_type: str) -> None:
    client = scep_client(scep)
    for wrong in ("wrong", CHALLENGE[:-1], CHALLENGE + "x"):
        reply = _send(scep, client, csr_with_challenge(client.key, "ndes", wrong,
                                                       string_type=string_type), wrong)
        _refused(reply, FailInfo.BAD_REQUEST)
        assert reply.certrep.fail_text == "the challenge password is not valid"
    assert scep.counts() == (0, 0)


def test_bmp_challenge_that_does_not_decode_is_badrequest(scep: Harness) -> None:
    from cryptography.x509.name import _ASN1Type
    from cryptography.x509.oid import AttributeOID

    client = scep_client(scep)
    csr = (x509.CertificateSigningRequestBuilder()
           .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ndes")]))
           .add_attribute(AttributeOID.CHALLENGE_PASSWORD, CHALLENGE.encode("utf-16-be")[1:],
                          _tag=_ASN1Type.BMPString)
           .sign(client.key, hashes.SHA256()))
    _refused(_send(scep, client, csr, "odd-bmp"), FailInfo.BAD_REQUEST)
    assert scep.counts() == (0, 0)


# -- 3. Cisco IOS / sscep -O: PKCSReq signed by the current certificate ------------------

@pytest.mark.parametrize("challenge", [None, CHALLENGE, "stale"], ids=["none", "valid", "stale"])
def test_pkcsreq_signed_by_a_live_certificate_for_a_new_key_renews_it(
        scep: Harness, challenge: str | None) -> None:
    client, old = _enrolled(scep)
    client.signer = old  # signs with the certificate being renewed, and its key
    new_key = _new_key()
    reply = _send(scep, client, csr_with_challenge(new_key, "router-1", challenge), "reenrol")
    _renews(scep, reply, old, new_key)
    assert scep.counts() == (2, 2)
    # A retry of the transaction gets the same certificate.
    again = _send(scep, client, csr_with_challenge(new_key, "router-1", challenge), "reenrol")
    assert again.certificate == reply.certificate
    assert scep.counts() == (2, 2)


def test_pkcsreq_signed_by_a_live_certificate_for_its_own_key_renews_it(scep: Harness) -> None:
    client, old = _enrolled(scep)
    client.signer = old
    reply = _send(scep, client, csr_with_challenge(client.key, "router-1", None), "same-key")
    _renews(scep, reply, old, client.key)


def test_pkcsreq_renewal_to_an_ec_key(scep: Harness) -> None:
    client, old = _enrolled(scep)
    client.signer = old
    new_key = ec.generate_private_key(ec.SECP256R1())
    reply = _send(scep, client, csr_with_challenge(new_key, "router-1", None), "to-ec")
    _renews(scep, reply, old, new_key)


def test_pkcsreq_renewal_keeps_the_renewal_rule(scep: Harness) -> None:
    client, old = _enrolled(scep, dns=("r1.example.net",))
    client.signer = old
    for cn, dns in (("someone-else", ("r1.example.net",)),
                    ("router-1", ("r1.example.net", "extra.example.net"))):
        reply = _send(scep, client, csr_with_challenge(_new_key(), cn, CHALLENGE, dns), cn)
        _refused(reply, FailInfo.BAD_REQUEST)
    assert scep.counts() == (1, 1)


def test_pkcsreq_signed_by_a_revoked_certificate_is_refused(scep: Harness) -> None:
    client, old = _enrolled(scep)
    scep.ctx.authority.revoke(old.serial_number, x509.ReasonFlags.superseded, "test")
    client.signer = old
    reply = _send(scep, client, csr_with_challenge(_new_key(), "router-1", None), "revoked")
    _refused(reply, FailInfo.BAD_REQUEST)
    assert "revoked" in (reply.certrep.fail_text or "")
    assert scep.counts() == (1, 1)


def test_pkcsreq_signed_by_an_expired_certificate_is_refused(make_scep: Any) -> None:
    clock = FrozenClock(dt.datetime.now(dt.UTC))
    h = make_scep(clock=clock, renewal_grace=0)
    client, old = _enrolled(h)
    later = old.not_valid_after_utc + dt.timedelta(days=2)
    clock.advance(later - clock.now())
    client.signer = old
    client.ra = scep_ra(h)  # the RA issued with it expired too: GetCACert has its successor
    reply = _send(h, client, csr_with_challenge(_new_key(), "router-1", None), "expired",
                  now=later)
    _refused(reply, FailInfo.BAD_REQUEST)
    assert "expired" in (reply.certrep.fail_text or "")
    assert h.counts() == (1, 1)


def test_pkcsreq_signed_by_a_foreign_certificate_for_another_key_is_badmessagecheck(
        scep: Harness) -> None:
    client = scep_client(scep)
    foreign_ca_key = _new_key()
    foreign_ca = self_signed(foreign_ca_key, "Foreign CA")
    now = dt.datetime.now(dt.UTC)
    client.signer = (x509.CertificateBuilder().subject_name(x509.Name(
        [x509.NameAttribute(NameOID.COMMON_NAME, "router-1")])).issuer_name(foreign_ca.subject)
        .public_key(client.key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=30)).sign(foreign_ca_key, hashes.SHA256()))
    # Even with the right challenge: the signer proves no key of this engine's.
    reply = _send(scep, client, csr_with_challenge(_new_key(), "router-1", CHALLENGE), "f")
    _refused(reply, FailInfo.BAD_MESSAGE_CHECK)
    assert reply.certrep.fail_text == UNDECRYPTABLE_TEXT
    assert scep.counts() == (0, 0)


# -- 4. certmonger rekey: self-signed certificate of the old, certified key --------------

def test_rekey_signed_by_a_self_signed_certificate_of_the_certified_key_renews(
        scep: Harness) -> None:
    client, old = _enrolled(scep, "host-1")
    assert client.signer.issuer == client.signer.subject  # still the self-signed one
    client.signer = self_signed(client.key, "certmonger")  # a fresh one, as certmonger does
    new_key = _new_key()
    reply = _send(scep, client, csr_with_challenge(new_key, "host-1", None), "rekey")
    _renews(scep, reply, old, new_key)
    again = _send(scep, client, csr_with_challenge(new_key, "host-1", None), "rekey")
    assert again.certificate == reply.certificate
    assert scep.counts() == (2, 2)


def test_same_key_without_challenge_signed_self_signed_renews(scep: Harness) -> None:
    client, old = _enrolled(scep, "host-2")
    reply = _send(scep, client, csr_with_challenge(client.key, "host-2", None), "renew")
    _renews(scep, reply, old, client.key)


@pytest.mark.parametrize("challenge", [None, CHALLENGE], ids=["none", "valid"])
def test_self_signed_signer_of_an_unknown_key_for_another_key_is_badmessagecheck(
        scep: Harness, challenge: str | None) -> None:
    client = scep_client(scep)
    reply = _send(scep, client, csr_with_challenge(_new_key(), "host-3", challenge), "u")
    _refused(reply, FailInfo.BAD_MESSAGE_CHECK)
    assert reply.certrep.fail_text == UNDECRYPTABLE_TEXT
    assert scep.counts() == (0, 0)


def test_rekey_with_the_key_of_a_revoked_certificate_is_badmessagecheck(
        scep: Harness) -> None:
    client, old = _enrolled(scep, "host-4")
    scep.ctx.authority.revoke(old.serial_number, x509.ReasonFlags.superseded, "test")
    reply = _send(scep, client, csr_with_challenge(_new_key(), "host-4", CHALLENGE), "rev")
    _refused(reply, FailInfo.BAD_MESSAGE_CHECK)
    assert scep.counts() == (1, 1)


def test_rekey_renewal_keeps_the_renewal_rule(scep: Harness) -> None:
    client, _old = _enrolled(scep, "host-5")
    reply = _send(scep, client, csr_with_challenge(_new_key(), "host-6", None), "other")
    _refused(reply, FailInfo.BAD_REQUEST)
    assert scep.counts() == (1, 1)


def test_rekey_pending_renewal_is_polled_with_the_self_signed_signer(make_scep: Any) -> None:
    manual = {"officer": {"ca": "issuing", "validity": "30d", "approval": "manual",
                          "key_usage": ["digital_signature", "key_encipherment"],
                          "extended_key_usage": ["client_auth"], "subject": {"CN": "csr"},
                          "key_types": ["rsa-2048"]}}
    h = make_scep(extra_profiles=manual, profile="officer")
    client = scep_client(h)
    first = _send(h, client, csr_with_challenge(client.key, "laptop", CHALLENGE), "tid-1")
    assert first.status is PKIStatus.PENDING
    h.ctx.authority.approve(h.ctx.authority.find_transaction("scep", "default", "tid-1").id,
                            "officer")
    issuer = h.ctx.authority.chain("issuing")[0].subject
    csr = csr_with_challenge(client.key, "laptop", CHALLENGE)
    old = client.read(scep_operation(h, client.cert_poll(issuer, csr.subject,
                                                         "tid-1")).content)
    assert old.certificate is not None
    new_key = _new_key()
    new_csr = csr_with_challenge(new_key, "laptop", None)
    assert _send(h, client, new_csr, "tid-2").status is PKIStatus.PENDING
    poll = client.read(scep_operation(h, client.cert_poll(issuer, new_csr.subject,
                                                          "tid-2")).content)
    assert poll.status is PKIStatus.PENDING, poll.certrep.fail_text
