"""simplereenroll and client-certificate authentication, tls-unique, trusted proxies."""

from __future__ import annotations

import base64
import datetime as dt
import urllib.parse
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import AttributeOID, NameOID
from harness import est_enroll

from enroll.clock import FrozenClock
from enroll.testing import make_csr, make_key
from enroll.testing.est_client import PKCS10_HEADERS as PKCS10
from enroll.testing.est_client import WELL_KNOWN as EST
from enroll.testing.est_client import certs_from, csr_body


def _issue(h: Any, cn: str = "device-1", **kw: Any) -> tuple[Any, x509.Certificate]:
    key = make_key()
    r = est_enroll(h, make_csr(key, cn=cn, **kw))
    assert r.status_code == 200, r.text
    return key, certs_from(r.content)[0]


def _self_signed(cn: str = "device-1") -> tuple[Any, x509.Certificate]:
    key = make_key()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(hours=1))
            .not_valid_after(now + dt.timedelta(days=1)).sign(key, hashes.SHA256()))
    return key, cert


def test_reenroll_with_the_current_certificate_records_replaces(est: Any) -> None:
    _, old = _issue(est, dns=["d1.example.com"])
    new_key = make_key()
    r = est_enroll(est, make_csr(new_key, cn="device-1", dns=["d1.example.com"]),
                   op="simplereenroll", auth=None, client_cert=old)
    assert r.status_code == 200, r.text
    [new] = certs_from(r.content)
    record = est.ctx.authority.lookup(new)
    assert record.replaces == format(old.serial_number, "x")
    assert record.requester == f"cert:{old.serial_number:x}"
    assert new.public_key() == new_key.public_key()
    assert est.counts() == (2, 2)


def test_reenroll_with_another_subject_or_names_is_400(est: Any) -> None:
    _, old = _issue(est, dns=["d1.example.com"])
    other_cn = est_enroll(est, make_csr(cn="device-2", dns=["d1.example.com"]),
                          op="simplereenroll", auth=None, client_cert=old)
    assert other_cn.status_code == 400
    assert "subject" in other_cn.text
    other_san = est_enroll(est, make_csr(cn="device-1", dns=["evil.example.com"]),
                           op="simplereenroll", auth=None, client_cert=old)
    assert other_san.status_code == 400
    assert "subjectAltName" in other_san.text
    assert est.counts() == (1, 1)


def test_reenroll_without_a_client_certificate_is_401(est: Any) -> None:
    r = est_enroll(est, make_csr(cn="device-1"), op="simplereenroll")
    assert r.status_code == 401
    assert r.content == b""
    assert est.counts() == (0, 0)


def test_revoked_certificate_cannot_reenroll_or_authenticate(est: Any) -> None:
    _, old = _issue(est)
    est.ctx.authority.revoke(old.serial_number, x509.ReasonFlags.key_compromise, "test")
    r = est_enroll(est, make_csr(cn="device-1"), op="simplereenroll", auth=None, client_cert=old)
    assert r.status_code == 401
    r = est_enroll(est, make_csr(cn="other"), auth=None, client_cert=old)
    assert r.status_code == 401
    assert est.counts() == (1, 1)


def test_expired_certificate_is_refused(make_est: Any) -> None:
    clock = FrozenClock(dt.datetime.now(dt.UTC))
    h = make_est(clock=clock)
    _, old = _issue(h)
    clock.advance(dt.timedelta(days=400))
    r = est_enroll(h, make_csr(cn="device-1"), op="simplereenroll", auth=None, client_cert=old)
    assert r.status_code == 401
    assert h.counts() == (1, 1)


def test_certificate_from_an_untrusted_ca_is_401_and_stores_nothing(est: Any) -> None:
    _, stranger = _self_signed()
    for op in ("simpleenroll", "simplereenroll"):
        r = est_enroll(est, make_csr(cn="device-1"), op=op, auth=None, client_cert=stranger)
        assert r.status_code == 401, op
        assert r.content == b""
    assert est.counts() == (0, 0)


def test_client_certificate_authenticates_simpleenroll_for_its_own_identity(est: Any) -> None:
    _, cert = _issue(est)
    r = est_enroll(est, make_csr(cn="device-1"), auth=None, client_cert=cert)
    assert r.status_code == 200, r.text
    [new] = certs_from(r.content)
    assert est.ctx.authority.lookup(new).requester == f"cert:{cert.serial_number:x}"
    # Not for another identity, nor with a name the certificate does not carry.
    for csr in (make_csr(cn="second-identity"),
                make_csr(cn="device-1", dns=["added.example.com"])):
        r = est_enroll(est, csr, auth=None, client_cert=cert)
        assert r.status_code == 400, r.text
        assert f"names of certificate {cert.serial_number:x}" in r.text
    assert est.counts() == (2, 2)


def test_client_cert_scope_profile_lets_a_certificate_enroll_any_allowed_name(
        make_est: Any) -> None:
    h = make_est(client_cert_scope="profile")
    _, cert = _issue(h)
    r = est_enroll(h, make_csr(cn="second-identity"), auth=None, client_cert=cert)
    assert r.status_code == 200, r.text


def test_external_anchor_authenticates_directly_issued_certificates(make_est: Any,
                                                                    tmp_path: Path) -> None:
    anchor_key, anchor = _self_signed("Manufacturer CA")
    device_key = make_key()
    now = dt.datetime.now(dt.UTC)
    idevid = (x509.CertificateBuilder().subject_name(x509.Name(
        [x509.NameAttribute(NameOID.COMMON_NAME, "sn-0042")])).issuer_name(anchor.subject)
        .public_key(device_key.public_key()).serial_number(42)
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=30)).sign(anchor_key, hashes.SHA256()))
    path = tmp_path / "anchor.pem"
    path.write_bytes(anchor.public_bytes(serialization.Encoding.PEM))
    h = make_est(client_cert_cas=[str(path)])
    r = est_enroll(h, make_csr(cn="sn-0042"), auth=None, client_cert=idevid)
    assert r.status_code == 200, r.text
    _, forged = _self_signed("sn-0042")
    assert est_enroll(h, make_csr(cn="x"), auth=None, client_cert=forged).status_code == 401
    # An anchor-authenticated certificate was not issued here: no re-enrollment.
    r = est_enroll(h, make_csr(cn="sn-0042"), op="simplereenroll", auth=None, client_cert=idevid)
    assert r.status_code == 401


def test_basic_only_endpoint_ignores_client_certificates(make_est: Any) -> None:
    h = make_est(auth=["basic"])
    _, cert = _issue(h)
    r = est_enroll(h, make_csr(cn="x"), auth=None, client_cert=cert)
    assert r.status_code == 401


# -- trusted proxies --------------------------------------------------------------------

def _header(cert: x509.Certificate) -> dict[str, str]:
    pem = cert.public_bytes(serialization.Encoding.PEM).decode()
    return {**PKCS10, "x-ssl-client-cert": urllib.parse.quote(pem)}


SECRET = "proxy-secret-" + "5f0c" * 12  # noqa: S105 - a test value
SECRET_HEADER = "x-enroll-proxy-secret"  # noqa: S105 - a header name


@pytest.fixture
def proxy_cert(tmp_path: Path) -> x509.Certificate:
    """The proxy's own TLS client certificate (self-signed), in ``client_certs``."""
    _, cert = _self_signed("nginx-proxy")
    (tmp_path / "proxy.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return cert


@pytest.fixture
def proven(make_est: Any, tmp_path: Path, proxy_cert: x509.Certificate) -> Any:
    """EST behind a proxy at 127.0.0.2 or 10/8 that proves itself either way."""
    (tmp_path / "secret").write_text(SECRET + "\n")
    return make_est(trusted_proxies=["127.0.0.2", "10.0.0.0/8"], proxy={
        "client_certs": [str(tmp_path / "proxy.pem")],
        "secret_file": str(tmp_path / "secret")})


def _reenroll(h: Any, headers: Any, **kw: Any) -> Any:
    return h.request("POST", f"{EST}/simplereenroll", headers=headers,
                     content=csr_body(make_csr(cn="device-1")), **kw)


def test_proxy_header_is_honoured_from_a_proxy_with_its_client_certificate(
        proven: Any, proxy_cert: x509.Certificate) -> None:
    _, old = _issue(proven)
    r = _reenroll(proven, _header(old), client_cert=proxy_cert, peer="127.0.0.2",
                  tls_unique=b"proxy-channel")
    assert r.status_code == 200, r.text
    r = _reenroll(proven, _header(old), client_cert=proxy_cert, peer="10.1.2.3")
    assert r.status_code == 409, r.text  # proven again; the core's renewed-once rule
    assert proven.counts() == (2, 2)


def test_proxy_header_is_honoured_with_the_shared_secret(proven: Any) -> None:
    _, old = _issue(proven)
    r = _reenroll(proven, {**_header(old), SECRET_HEADER: SECRET}, peer="127.0.0.2")
    assert r.status_code == 200, r.text
    assert proven.counts() == (2, 2)


def test_proxy_without_proof_or_from_elsewhere_is_ignored(
        proven: Any, proxy_cert: x509.Certificate) -> None:
    _, old = _issue(proven)
    # A trusted address alone proves nothing any more.
    assert _reenroll(proven, _header(old), peer="127.0.0.2").status_code == 401
    # A wrong secret from the proxy's address.
    wrong = {**_header(old), SECRET_HEADER: SECRET[:-1] + "x"}
    assert _reenroll(proven, wrong, peer="127.0.0.2").status_code == 401
    # The right secret, or the proxy's certificate, from a peer that is not the proxy.
    right = {**_header(old), SECRET_HEADER: SECRET}
    assert _reenroll(proven, right, peer="127.0.0.1").status_code == 401
    assert _reenroll(proven, _header(old), client_cert=proxy_cert,
                     peer="127.0.0.1").status_code == 401
    # The proxy's own certificate, with nothing forwarded, is no client credential.
    assert _reenroll(proven, PKCS10, client_cert=proxy_cert,
                     peer="127.0.0.2").status_code == 401
    assert proven.counts() == (1, 1)


def test_repeated_certificate_or_secret_header_is_400(
        proven: Any, proxy_cert: x509.Certificate) -> None:
    _, old = _issue(proven)
    _, other = _issue(proven, cn="device-2")
    cert_header = _header(old)["x-ssl-client-cert"]
    other_header = _header(other)["x-ssl-client-cert"]
    twice = [*PKCS10.items(), ("x-ssl-client-cert", other_header),
             ("x-ssl-client-cert", cert_header)]
    r = _reenroll(proven, twice, client_cert=proxy_cert, peer="127.0.0.2")
    assert r.status_code == 400 and "x-ssl-client-cert header is repeated" in r.text
    # Even from an address that is not the proxy: never first- or last-wins.
    assert _reenroll(proven, twice, peer="127.0.0.1").status_code == 400
    secret_twice = [*PKCS10.items(), ("x-ssl-client-cert", cert_header),
                    (SECRET_HEADER, "wrong" * 8), (SECRET_HEADER, SECRET)]
    r = _reenroll(proven, secret_twice, peer="127.0.0.2")
    assert r.status_code == 400 and f"{SECRET_HEADER} header is repeated" in r.text
    assert proven.counts() == (2, 2)


def test_plain_http_from_the_proxy_is_refused_naming_https(proven: Any) -> None:
    _, old = _issue(proven)
    r = _reenroll(proven, {**_header(old), SECRET_HEADER: SECRET}, peer="127.0.0.2",
                  tls=False)
    assert r.status_code == 403
    assert r.text.startswith("EST is served over HTTPS only (RFC 7030 §3.3): https://")
    assert r.text.rstrip().endswith("/.well-known/est/simplereenroll")
    assert proven.counts() == (1, 1)


def test_embedded_app_honours_only_the_secret(make_est: Any, tmp_path: Path,
                                              proxy_cert: x509.Certificate) -> None:
    """Embedded under another ASGI server there is no socket peer to check."""
    (tmp_path / "secret").write_text(SECRET)
    h = make_est(trusted_proxies=["127.0.0.2"], listener=False, proxy={
        "client_certs": [str(tmp_path / "proxy.pem")], "secret_file": str(tmp_path / "secret")})
    _, old = _issue(h)
    assert _reenroll(h, _header(old)).status_code == 401
    r = _reenroll(h, {**_header(old), SECRET_HEADER: SECRET})
    assert r.status_code == 200, r.text
    only_certs = make_est(trusted_proxies=["127.0.0.2"], listener=False,
                          proxy={"client_certs": [str(tmp_path / "proxy.pem")]})
    _, old = _issue(only_certs)
    assert _reenroll(only_certs, {**_header(old), SECRET_HEADER: SECRET}).status_code == 401


def test_forged_proxy_header_from_an_untrusted_address_is_ignored(proven: Any) -> None:
    _, old = _issue(proven)
    r = _reenroll(proven, _header(old), peer="127.0.0.1")
    assert r.status_code == 401
    # Over plain HTTP it is not even EST.
    assert _reenroll(proven, _header(old), peer="127.0.0.1", tls=False).status_code == 403
    assert proven.counts() == (1, 1)


def test_forged_proxy_header_with_no_trusted_proxies_is_ignored(est: Any) -> None:
    _, old = _issue(est)
    r = est.request("POST", f"{EST}/simpleenroll", content=csr_body(make_csr(cn="x")),
                    headers=_header(old))
    assert r.status_code == 401
    assert est.counts() == (1, 1)


# -- tls-unique (RFC 7030 §3.5) ----------------------------------------------------------

def _pop_csr(binding: bytes | None, cn: str = "pop") -> x509.CertificateSigningRequest:
    attrs = [(AttributeOID.CHALLENGE_PASSWORD, base64.b64encode(binding))] if binding else []
    return make_csr(cn=cn, attributes=attrs)


def test_tls_unique_in_challenge_password_binds_the_request(make_est: Any) -> None:
    h = make_est(tls_unique="required")
    binding = bytes(range(12))
    ok = est_enroll(h, _pop_csr(binding), tls_unique=binding)
    assert ok.status_code == 200, ok.text
    wrong = est_enroll(h, _pop_csr(b"another session"), tls_unique=binding)
    assert wrong.status_code == 400
    assert "tls-unique" in wrong.text
    missing = est_enroll(h, _pop_csr(None, "nopop"), tls_unique=binding)
    assert missing.status_code == 400
    no_binding = est_enroll(h, _pop_csr(binding, "tls13"), tls_unique=None)
    assert no_binding.status_code == 400
    assert h.counts() == (1, 1)


def test_optional_tls_unique_checks_only_when_both_sides_have_it(est: Any) -> None:
    binding = b"session-binding!"
    assert est_enroll(est, _pop_csr(None, "a"), tls_unique=binding).status_code == 200
    assert est_enroll(est, _pop_csr(binding, "b"), tls_unique=None).status_code == 200
    assert est_enroll(est, _pop_csr(b"mismatch", "c"), tls_unique=binding).status_code == 400
