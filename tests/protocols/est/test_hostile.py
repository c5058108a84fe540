"""Hostile input through the EST door over HTTPS: always a 4xx (RFC 7030 §4.2.3),
never a 5xx, and nothing stored.

Hostile CSRs at simpleenroll / serverkeygen, bodies that are not base64, and client
certificates that do not parse (garbage, a garbage issuer, two extensions of a kind, a
key off its curve), from a trusted proxy's header or from the ASGI TLS extension: a
certificate that cannot be read is no credential, so the answer is 401."""

from __future__ import annotations

import base64
import datetime as dt
import urllib.parse
from pathlib import Path
from typing import Any

import anyio
import crafted
import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from harness import ALICE, est_enroll

from enroll.testing.est_client import PKCS10_HEADERS as PKCS10
from enroll.testing.est_client import WELL_KNOWN as EST


@pytest.mark.parametrize(("op", "vector"), [
    *[("simpleenroll", v) for v in sorted(crafted.REFUSED)],
    # serverkeygen makes the key: a CSR whose only fault is its key type is a template
    *[("serverkeygen", v) for v in sorted(crafted.UNLOADABLE)]])
def test_hostile_csr_is_400(est: Any, vector: str, op: str) -> None:
    body = base64.encodebytes(crafted.REFUSED[vector]())
    r = est.request("POST", f"{EST}/{op}", content=body, headers=PKCS10, auth=ALICE)
    assert r.status_code == 400, (r.status_code, r.text)
    assert r.headers["content-type"].startswith("text/plain")
    assert "internal" not in r.text
    assert est.counts() == (0, 0)


@pytest.mark.parametrize("body", [
    b"", b"\x00\xff\xfe", "é".encode(), b"====", b"-----BEGIN\n\xff\n-----END",
    b"A" * 5, base64.b64encode(b"\x30\x82\xff\xff"), base64.b64encode(b"\x30" * 3000),
])
def test_body_that_is_not_a_csr_is_400(est: Any, body: bytes) -> None:
    r = est.request("POST", f"{EST}/simpleenroll", content=body, headers=PKCS10, auth=ALICE)
    assert r.status_code == 400, (r.status_code, r.text)
    assert est.counts() == (0, 0)


def _certificate_pems() -> dict[str, str]:
    """Client certificates that load (cryptography parses lazily) but do not parse."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "device-1")])
    now = dt.datetime.now(dt.UTC)
    good = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(7)
            .not_valid_before(now - dt.timedelta(hours=1))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("a.example")]), False)
            .sign(key, hashes.SHA256())).public_bytes(serialization.Encoding.DER)
    ders = {
        "garbage_issuer": crafted.resigned_certificate(
            good, key, [], {"issuer": crafted.bad_utf8_name()}),
        "garbage_subject": crafted.resigned_certificate(
            good, key, [], {"subject": crafted.bad_utf8_name()}),
        "two_sans": crafted.resigned_certificate(
            good, key, [crafted.extension("2.5.29.17", crafted.san_der("b.example"))]),
        "garbage_san": crafted.resigned_certificate(
            good, key, [crafted.extension("1.3.6.1.5.5.7.1.1", b"\x30\x03\x30\x01")]),
        "off_curve_key": crafted.resigned_certificate(
            good, key, [], {"subject_public_key_info": crafted.off_curve_spki()}),
    }
    pems = {k: "-----BEGIN CERTIFICATE-----\n" + base64.encodebytes(v).decode()
            + "-----END CERTIFICATE-----\n" for k, v in ders.items()}
    pems["not_base64"] = "-----BEGIN CERTIFICATE-----\n!!!\n-----END CERTIFICATE-----\n"
    pems["not_der"] = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"
    return pems


PEMS = _certificate_pems()


@pytest.fixture
def anchored(make_est: Any, tmp_path: Path) -> Any:
    """An endpoint that trusts proxies on 127.0.0.2 and an external anchor: both make
    the credential check read a client certificate's issuer."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "device-1")])
    now = dt.datetime.now(dt.UTC)
    anchor = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
              .public_key(key.public_key()).serial_number(1)
              .not_valid_before(now - dt.timedelta(hours=1))
              .not_valid_after(now + dt.timedelta(days=1)).sign(key, hashes.SHA256()))
    path = tmp_path / "anchor.pem"
    path.write_bytes(anchor.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "proxy-secret").write_text(PROXY_SECRET)
    return make_est(trusted_proxies=["127.0.0.2"], client_cert_cas=[str(path)],
                    proxy={"secret_file": str(tmp_path / "proxy-secret")})


PROXY_SECRET = "hostile-test-proxy-secret-" + "a1" * 16  # noqa: S105 - a test value


def _csr_body() -> bytes:
    from enroll.testing import make_csr
    from enroll.testing.est_client import csr_body

    return csr_body(make_csr(cn="device-1"))


@pytest.mark.parametrize("case", sorted(PEMS))
@pytest.mark.parametrize("op", ["simpleenroll", "simplereenroll"])
def test_garbage_certificate_from_a_trusted_proxy_is_401(anchored: Any, case: str,
                                                         op: str) -> None:
    headers = {**PKCS10, "x-ssl-client-cert": urllib.parse.quote(PEMS[case]),
               "x-enroll-proxy-secret": PROXY_SECRET}
    r = anchored.request("POST", f"{EST}/{op}", content=_csr_body(), headers=headers,
                         peer="127.0.0.2")
    assert r.status_code == 401, (r.status_code, r.text)
    assert r.headers["www-authenticate"].startswith("Basic")
    assert anchored.counts() == (0, 0)


def _with_chain(app: Any, chain: list[Any]) -> Any:
    async def wrapped(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            scope = dict(scope)
            scope["extensions"] = {"tls": {"client_cert_chain": chain, "tls_version": 0x0303},
                                   "enroll.transport": {"peer": ("127.0.0.1", 40000),
                                                        "tls_unique": None}}
        await app(scope, receive, send)

    return wrapped


def _post(app: Any, op: str) -> httpx.Response:
    async def go() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="https://testserver") as c:
            return await c.post(f"{EST}/{op}", content=_csr_body(), headers=PKCS10)

    return anyio.run(go)


@pytest.mark.parametrize("case", [*sorted(PEMS), "not_a_string", "empty"])
@pytest.mark.parametrize("op", ["simpleenroll", "simplereenroll"])
def test_garbage_certificate_in_the_tls_extension_is_401(anchored: Any, case: str,
                                                         op: str) -> None:
    chain: list[Any] = {"not_a_string": [12345], "empty": [""]}.get(case) or [PEMS[case]]
    r = _post(_with_chain(anchored.app, chain), op)
    assert r.status_code == 401, (r.status_code, r.text)
    assert anchored.counts() == (0, 0)


def test_a_good_certificate_still_authenticates_after_the_checks(anchored: Any) -> None:
    """The control: the same request with a certificate this CA issued enrolls."""
    from enroll.testing import make_csr

    r = est_enroll(anchored, make_csr(cn="device-1"))
    assert r.status_code == 200, r.text
    from enroll.testing.est_client import certs_from

    cert = certs_from(r.content)[0]
    pem = cert.public_bytes(serialization.Encoding.PEM).decode()
    r = _post(_with_chain(anchored.app, [pem]), "simplereenroll")
    assert r.status_code == 200, r.text
    assert anchored.counts() == (2, 2)
