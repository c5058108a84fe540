"""cacerts, csrattrs, simpleenroll and Basic auth through the ASGI app."""

from __future__ import annotations

import base64
from typing import Any

from asn1crypto import core
from cryptography.x509.oid import ExtendedKeyUsageOID
from enroll.protocols.est.csrattrs import CsrAttrs
from harness import ALICE, Harness, est_enroll

from enroll.crypto.keys import spki_sha256
from enroll.testing import make_csr, make_key
from enroll.testing.est_client import PKCS10_HEADERS as PKCS10
from enroll.testing.est_client import WELL_KNOWN as EST
from enroll.testing.est_client import certs_from, csr_body


def test_cacerts_returns_the_chain_as_certs_only_pkcs7(est: Harness) -> None:
    r = est.get(f"{EST}/cacerts")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/pkcs7-mime")
    certs = certs_from(r.content)
    assert sorted(c.serial_number for c in certs) == sorted(
        c.serial_number for c in est.ctx.authority.chain("issuing"))


def test_csrattrs_is_204_when_the_profile_asks_for_nothing(est: Harness) -> None:
    r = est.get(f"{EST}/csrattrs")
    assert r.status_code == 204
    assert r.content == b""


def test_csrattrs_lists_key_type_and_required_names_from_the_profile(make_est: Any) -> None:
    h = make_est(endpoints={"default": {"profile": "tls-listener"},
                            "web": {"profile": "server", "tls_unique": "required"}})
    r = h.get(f"{EST}/csrattrs")
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/csrattrs"
    attrs = CsrAttrs.load(base64.b64decode(r.content))
    first = attrs[0].chosen
    assert first["type"].dotted == "1.2.840.10045.2.1"  # id-ecPublicKey
    assert core.ObjectIdentifier.load(first["values"][0].dump()).dotted == \
        "1.2.840.10045.3.1.7"  # P-256
    web = CsrAttrs.load(base64.b64decode(h.get(f"{EST}/web/csrattrs").content))
    oids = {a.chosen.dotted for a in web if a.name == "oid"}
    assert oids == {"2.5.29.17", "1.2.840.113549.1.9.7"}  # SAN, challengePassword


def test_simpleenroll_with_basic_auth_issues_a_certificate(est: Harness) -> None:
    key = make_key()
    r = est_enroll(est, make_csr(key, cn="device-1"))
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("application/pkcs7-mime")
    [cert] = certs_from(r.content)
    assert spki_sha256(cert.public_key()) == spki_sha256(key.public_key())
    assert cert.subject.rfc4514_string() == "CN=device-1"
    assert ExtendedKeyUsageOID.CLIENT_AUTH in cert.extensions.get_extension_for_class(
        __import__("cryptography").x509.ExtendedKeyUsage).value
    record = est.ctx.authority.lookup(cert)
    assert record is not None and record.protocol == "est"
    assert record.requester == "est-user:default:alice"
    assert est.counts() == (1, 1)


def test_base64_with_line_breaks_is_accepted_and_pem_armour_refused(est: Harness) -> None:
    csr = make_csr(cn="armoured")
    from cryptography.hazmat.primitives import serialization

    pem = csr.public_bytes(serialization.Encoding.PEM)
    r = est.request("POST", f"{EST}/simpleenroll", content=pem, headers=PKCS10,
                    auth=ALICE)
    assert r.status_code == 400, r.text
    assert "RFC 7030 §4.2.1" in r.text
    assert est.counts() == (0, 0)
    spaced = b"\r\n  ".join(base64.b64encode(csr.public_bytes(serialization.Encoding.DER))
                            [i:i + 10] for i in range(0, 400, 10))
    r = est.request("POST", f"{EST}/simpleenroll", content=spaced, headers=PKCS10,
                    auth=ALICE)
    assert r.status_code == 200, r.text


def test_operator_chosen_password_is_checked_with_scrypt(est: Harness, bob: Any) -> None:
    r = est_enroll(est, make_csr(cn="bob-device"), auth=bob)
    assert r.status_code == 200, r.text
    again = est_enroll(est, make_csr(cn="bob-device-2"), auth=bob)  # from the verified cache
    assert again.status_code == 200
    assert est_enroll(est, make_csr(cn="x"), auth=(bob[0], "wrong")).status_code == 401


def test_no_credentials_is_401_with_challenge_and_empty_body(est: Harness) -> None:
    r = est_enroll(est, make_csr(), auth=None)
    assert r.status_code == 401
    assert r.headers["www-authenticate"].startswith("Basic realm=")
    assert r.content == b""
    assert est.counts() == (0, 0)


def test_wrong_password_and_unknown_user_are_401_and_store_nothing(est: Harness) -> None:
    for creds in (("alice", "wrong"), ("mallory", "alice-generated-secret-0f9e8d7c6b5a")):
        r = est_enroll(est, make_csr(), auth=creds)
        assert r.status_code == 401
        assert r.content == b""
        assert "www-authenticate" in r.headers
    assert est.counts() == (0, 0)


def test_garbage_body_is_400_and_stores_nothing(est: Harness) -> None:
    for body in (b"not base64 at all!!", base64.b64encode(b"\x30\x03\x02\x01\x01"), b""):
        r = est.request("POST", f"{EST}/simpleenroll", content=body, headers=PKCS10,
                        auth=ALICE)
        assert r.status_code == 400, body
        assert b"not base64 at all" not in r.content
        assert b"alice" not in r.content
    assert est.counts() == (0, 0)


def test_wrong_content_type_is_415(est: Harness) -> None:
    r = est.request("POST", f"{EST}/simpleenroll", content=csr_body(make_csr()),
                    headers={"content-type": "application/x-www-form-urlencoded"},
                    auth=ALICE)
    assert r.status_code == 415
    assert est.counts() == (0, 0)


def test_csr_violating_the_profile_is_400_with_a_short_reason(est: Harness) -> None:
    weak = est_enroll(est, make_csr(make_key("rsa-1024"), cn="weak"))
    assert weak.status_code == 400
    assert "too weak" in weak.text and len(weak.text) < 200
    ca = est_enroll(est, make_csr(cn="sub-ca", ca=True))
    assert ca.status_code == 400
    assert "CA:TRUE" in ca.text
    assert est.counts() == (0, 0)


def test_bad_csr_signature_is_400(est: Harness) -> None:
    from pathlib import Path

    vector = Path(__file__).parents[2] / "vectors" / "core" / "rsa2048_bad_signature.csr.der"
    r = est.request("POST", f"{EST}/simpleenroll", content=base64.encodebytes(
        vector.read_bytes()), headers=PKCS10, auth=ALICE)
    assert r.status_code == 400
    assert "signature" in r.text
    assert est.counts() == (0, 0)


def test_plain_http_is_refused_before_credentials_are_read(est: Harness) -> None:
    r = est_enroll(est, make_csr(), tls=False)
    assert r.status_code == 403
    assert "HTTPS" in r.text
    assert est.counts() == (0, 0)


def test_fullcmc_answers_501_with_a_clear_body(est: Harness) -> None:
    r = est.request("POST", f"{EST}/fullcmc", content=b"MAA=",
                    headers={"content-type": "application/pkcs7-mime"})
    assert r.status_code == 501
    assert "not implemented" in r.text


def test_oversized_body_is_413(est: Harness) -> None:
    r = est.request("POST", f"{EST}/simpleenroll", content=b"A" * 300_000, headers=PKCS10,
                    auth=ALICE)
    assert r.status_code == 413
    assert est.counts() == (0, 0)


def test_labelled_endpoint_uses_its_own_profile(make_est: Any) -> None:
    h = make_est(labels={"web": {"profile": "server"}})
    no_san = est_enroll(h, make_csr(cn="www.example.com"), path=f"{EST}/web")
    assert no_san.status_code == 400
    ok = est_enroll(h, make_csr(cn="www.example.com", dns=["www.example.com"]),
                  path=f"{EST}/web")
    assert ok.status_code == 200, ok.text
    [cert] = certs_from(ok.content)
    record = h.ctx.authority.lookup(cert)
    assert record.profile == "server"
    assert h.counts() == (1, 1)


def test_resubmitting_the_same_csr_returns_the_same_certificate(est: Harness) -> None:
    csr = make_csr(cn="retry")
    first = est_enroll(est, csr)
    second = est_enroll(est, csr)
    assert first.status_code == second.status_code == 200
    assert certs_from(first.content) == certs_from(second.content)
    assert est.counts() == (1, 1)


def test_same_key_after_revocation_gets_a_new_certificate(make_est: Any) -> None:
    import datetime as dt

    from cryptography import x509

    from enroll.clock import FrozenClock

    clock = FrozenClock(dt.datetime.now(dt.UTC))
    h = make_est(clock=clock)
    csr = make_csr(cn="revoked-then-back")
    [first] = certs_from(est_enroll(h, csr).content)
    h.ctx.authority.revoke(first.serial_number, x509.ReasonFlags.superseded, "test")
    clock.advance(dt.timedelta(hours=1))
    r = est_enroll(h, csr)
    assert r.status_code == 200
    [second] = certs_from(r.content)
    assert second.serial_number != first.serial_number
    assert h.counts() == (2, 2)
