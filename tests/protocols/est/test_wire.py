"""EST wire formats with request bodies as real clients produce them (tests/vectors/est)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from enroll.protocols.est import wire
from harness import ALICE

from enroll.csr import load_csr
from enroll.errors import MalformedInput
from enroll.testing import make_csr, make_key
from enroll.testing.est_client import PKCS10_HEADERS, WELL_KNOWN, certs_from, serverkeygen_parts

VECTORS = Path(__file__).resolve().parents[2] / "vectors" / "est"


def vector(name: str) -> bytes:
    return (VECTORS / name).read_bytes()


@pytest.mark.parametrize(("name", "cn"), [
    ("openssl_p256_simpleenroll.b64", "device-1"),
    ("openssl_rsa2048_one_line.b64", "rsa-device"),
])
def test_openssl_bodies_parse(name: str, cn: str) -> None:
    csr = load_csr(wire.decode_base64_body(vector(name)))
    assert csr.is_signature_valid
    assert csr.subject.rfc4514_string().startswith(f"CN={cn}") or \
        csr.subject.rfc4514_string().endswith(f"CN={cn}")


@pytest.mark.parametrize("name", ["garbage_body.txt", "truncated_base64.b64"])
def test_bad_bodies_are_malformed_input(name: str) -> None:
    with pytest.raises(MalformedInput):
        load_csr(wire.decode_base64_body(vector(name)))


def test_pem_body_is_refused_naming_the_expected_encoding() -> None:
    with pytest.raises(MalformedInput, match="RFC 7030 §4.2.1 expects the base64"):
        wire.decode_base64_body(vector("openssl_p256_pem_armour.csr.pem"))
    with pytest.raises(MalformedInput, match="the body is PEM"):
        wire.decode_base64_body(b"\r\n  " + vector("openssl_p256_pem_armour.csr.pem"))


def test_pem_body_is_400_through_the_app_and_nothing_is_stored(est: Any) -> None:
    r = est.request("POST", f"{WELL_KNOWN}/simpleenroll",
                    content=vector("openssl_p256_pem_armour.csr.pem"),
                    headers=PKCS10_HEADERS, auth=ALICE)
    assert r.status_code == 400
    assert r.headers["content-type"].startswith("text/plain")
    assert "base64 encoding of the DER" in r.text
    assert est.counts() == (0, 0)


def test_oversized_body_is_refused_before_decoding() -> None:
    with pytest.raises(MalformedInput, match="too large"):
        wire.decode_base64_body(b"A" * (wire.MAX_CSR_BODY + 1))


def test_multipart_round_trips_through_an_email_parser() -> None:
    import datetime as dt

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from enroll.protocols.est.serverkeygen import pkcs8_der

    key = make_key()
    name = x509.Name.from_rfc4514_string("CN=multipart")
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(7).not_valid_before(now)
            .not_valid_after(now + dt.timedelta(days=1)).sign(key, hashes.SHA256()))
    body, ctype = wire.multipart_key_and_cert(pkcs8_der(key), [cert])
    assert ctype.startswith("multipart/mixed; boundary=")
    parsed_key, certs = serverkeygen_parts(body, ctype)
    assert parsed_key == pkcs8_der(key) and certs == [cert]


@pytest.mark.parametrize("name", ["openssl_p256_simpleenroll.b64",
                                  "openssl_rsa2048_one_line.b64"])
def test_openssl_vectors_enroll_through_the_app(est: Any, name: str) -> None:
    r = est.request("POST", f"{WELL_KNOWN}/simpleenroll", content=vector(name),
                    headers=PKCS10_HEADERS, auth=ALICE)
    assert r.status_code == 200, r.text
    [cert] = certs_from(r.content)
    assert cert.public_key() == load_csr(wire.decode_base64_body(vector(name))).public_key()


def test_csr_body_helper_matches_what_the_server_reads() -> None:
    from enroll.testing.est_client import csr_body

    csr = make_csr(cn="helper")
    assert load_csr(wire.decode_base64_body(csr_body(csr))) == csr
