"""Revocation shows up in the CRL and in OCSP: checked with the real `openssl` against a
real `enroll serve`, and the responder's edge cases in-process."""

from __future__ import annotations

import base64
import datetime as dt
import shutil
import subprocess
import urllib.parse
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509 import ocsp

from enroll.clock import FrozenClock
from enroll.context import AppContext
from enroll.model import Issued
from enroll.testing import make_csr, request

PEM = serialization.Encoding.PEM
DER = serialization.Encoding.DER


def openssl(*args: str | Path, stdin: bytes | None = None) -> subprocess.CompletedProcess[str]:
    if shutil.which("openssl") is None:
        pytest.skip("openssl not installed")
    done = subprocess.run(["openssl", *map(str, args)], capture_output=True, text=True,
                          timeout=30, check=False, input=stdin.decode() if stdin else None)
    assert done.returncode == 0, (args, done.stdout, done.stderr)
    return done


def issue(ctx: AppContext, cn: str) -> Issued:
    outcome = ctx.authority.submit(request(make_csr(cn=cn, dns=[cn]), "server"))
    assert isinstance(outcome, Issued)
    return outcome


@pytest.fixture
def served(enroll_server: Any, open_data_dir: Callable[..., AppContext],
           tmp_path: Path) -> dict[str, Any]:
    """A running server with one good and one revoked certificate, and PEM files."""
    ctx = open_data_dir(enroll_server.data_dir)
    good, bad = issue(ctx, "good.example.com"), issue(ctx, "bad.example.com")
    # Revoked from this process: the server answers from the shared store alone.
    ctx.authority.revoke(bad.serial_hex, x509.ReasonFlags.key_compromise, "secops")
    files = {"good": tmp_path / "good.pem", "bad": tmp_path / "bad.pem",
             "issuer": tmp_path / "issuing.pem", "chain": tmp_path / "chain.pem"}
    files["good"].write_bytes(good.certificate.public_bytes(PEM))
    files["bad"].write_bytes(bad.certificate.public_bytes(PEM))
    files["issuer"].write_bytes(good.chain[0].public_bytes(PEM))
    files["chain"].write_bytes(b"".join(c.public_bytes(PEM) for c in good.chain))
    return {"server": enroll_server, "good": good, "bad": bad, "files": files,
            "root": enroll_server.endpoints["root_ca"], "tmp": tmp_path}


def test_openssl_ocsp_over_post_and_get_reports_good_revoked_and_unauthorized(
        served: dict[str, Any]) -> None:
    f = served["files"]
    url = f"{served['server'].http_url}/ocsp"
    # One certificate per request, as the RFC 5019 lightweight profile (§2.1.1) has
    # clients send; a multi-certificate request is refused (test below).
    for target, expected in ((["-cert", f["good"]], f"{f['good']}: good"),
                             (["-cert", f["bad"]], f"{f['bad']}: revoked")):
        done = openssl("ocsp", "-issuer", f["issuer"], *target, "-url", url,
                       "-CAfile", served["root"])
        assert "Response verify OK" in done.stderr
        assert expected in done.stdout
        if "revoked" in expected:
            assert "Reason: keyCompromise" in done.stdout
        # RFC 5019 §4: the nonce is ignored, the stored response is the answer.
        assert "WARNING: no nonce in response" in done.stdout + done.stderr
    # A serial this CA never issued: unauthorized (unsigned, so it costs no signature;
    # RFC 6960 §2.3, RFC 5019 §2.2.3).
    unknown = "0x" + "42" * 16
    done = subprocess.run(["openssl", "ocsp", "-issuer", str(f["issuer"]), "-serial", unknown,
                           "-url", url, "-CAfile", str(served["root"])],
                          capture_output=True, text=True, timeout=30, check=False)
    assert done.returncode != 0 and "Responder Error: unauthorized (6)" in done.stdout
    # The same answers over GET; openssl builds the request and checks the response.
    tmp = served["tmp"]
    for name, expected in (("good", "good"), ("bad", "revoked")):
        req = tmp / f"{name}.req"
        openssl("ocsp", "-issuer", f["issuer"], "-cert", f[name], "-no_nonce", "-reqout", req)
        # RFC 6960 Appendix A.1: GET {url}/{url-encoding of base-64 DER OCSPRequest}
        encoded = urllib.parse.quote(base64.b64encode(req.read_bytes()).decode(), safe="")
        r = httpx.get(f"{served['server'].http_url}/ocsp/{encoded}", trust_env=False,
                      timeout=10)
        assert r.status_code == 200
        assert r.headers["content-type"] == "application/ocsp-response"
        resp = tmp / f"{name}.resp"
        resp.write_bytes(r.content)
        done = openssl("ocsp", "-respin", resp, "-issuer", f["issuer"], "-cert", f[name],
                       "-CAfile", served["root"])
        assert "Response verify OK" in done.stderr
        assert f"{f[name]}: {expected}" in done.stdout


def test_openssl_crl_lists_the_revoked_serial_and_verifies(served: dict[str, Any]) -> None:
    f, tmp = served["files"], served["tmp"]
    r = httpx.get(f"{served['server'].http_url}/crl/issuing.crl", trust_env=False, timeout=10)
    assert r.status_code == 200 and r.headers["content-type"] == "application/pkix-crl"
    crl_path = tmp / "issuing.crl"
    crl_path.write_bytes(r.content)
    done = openssl("crl", "-inform", "DER", "-in", crl_path, "-CAfile", f["chain"], "-noout",
                   "-text")
    assert "verify OK" in done.stderr
    bad_serial = format(served["bad"].certificate.serial_number, "X")
    good_serial = format(served["good"].certificate.serial_number, "X")
    text = done.stdout.replace(" ", "").upper()
    assert f"SERIALNUMBER:{bad_serial.rjust(32, '0')}" in text or \
        f"SERIALNUMBER:{bad_serial}" in text
    assert good_serial not in text
    assert "Key Compromise" in done.stdout
    assert "Next Update" in done.stdout
    r = httpx.get(f"{served['server'].http_url}/crl/issuing.pem", trust_env=False, timeout=10)
    crl = x509.load_pem_x509_crl(r.content)
    assert crl.get_revoked_certificate_by_serial_number(
        served["bad"].certificate.serial_number) is not None


# -- in-process: the responder's and the CRL service's edge cases ------------------------

def _ocsp_request(cert: x509.Certificate, issuer: x509.Certificate,
                  algorithm: hashes.HashAlgorithm, nonce: bytes | None = None) -> bytes:
    builder = ocsp.OCSPRequestBuilder().add_certificate(cert, issuer, algorithm)
    if nonce is not None:
        builder = builder.add_extension(x509.OCSPNonce(nonce), critical=False)
    return builder.build().public_bytes(DER)


def test_ocsp_answers_sha1_and_sha256_requests_and_ignores_the_nonce(
        context: AppContext) -> None:
    issued = issue(context, "n.example.com")
    issuer = issued.chain[0]
    for alg in (hashes.SHA1(), hashes.SHA256()):  # noqa: S303 - RFC 6960 clients use SHA-1
        der = context.ocsp.respond(_ocsp_request(issued.certificate, issuer, alg, b"n" * 16))
        resp = ocsp.load_der_ocsp_response(der)
        assert resp.response_status is ocsp.OCSPResponseStatus.SUCCESSFUL
        assert resp.certificate_status is ocsp.OCSPCertStatus.GOOD
        assert resp.serial_number == issued.certificate.serial_number
        # RFC 5019 §4: a nonce is ignored, the stored (pre-signed) response is the answer.
        assert not any(isinstance(e.value, x509.OCSPNonce) for e in resp.extensions)
        key = issuer.public_key()
        assert isinstance(key, ec.EllipticCurvePublicKey)
        assert resp.signature_hash_algorithm is not None
        key.verify(resp.signature, resp.tbs_response_bytes,
                   ec.ECDSA(resp.signature_hash_algorithm))  # raises if forged


def test_ocsp_for_another_issuer_is_unauthorized_and_garbage_is_malformed(
        context: AppContext) -> None:
    issued = issue(context, "u.example.com")
    foreign = _ocsp_request(issued.certificate, issued.certificate, hashes.SHA256())
    assert ocsp.load_der_ocsp_response(context.ocsp.respond(foreign)).response_status is \
        ocsp.OCSPResponseStatus.UNAUTHORIZED
    assert ocsp.load_der_ocsp_response(context.ocsp.respond(b"\x30\x03\x02\x01")
                                       ).response_status is \
        ocsp.OCSPResponseStatus.MALFORMED_REQUEST


def test_ocsp_request_for_several_certificates_is_refused_as_malformed(
        context: AppContext, tmp_path: Path) -> None:
    a, b = issue(context, "a.example.com"), issue(context, "b.example.com")
    for name, cert in (("a", a.certificate), ("b", b.certificate), ("ca", a.chain[0])):
        (tmp_path / f"{name}.pem").write_bytes(cert.public_bytes(PEM))
    openssl("ocsp", "-issuer", tmp_path / "ca.pem", "-cert", tmp_path / "a.pem", "-cert",
            tmp_path / "b.pem", "-reqout", tmp_path / "two.req")
    resp = ocsp.load_der_ocsp_response(context.ocsp.respond(
        (tmp_path / "two.req").read_bytes()))
    assert resp.response_status is ocsp.OCSPResponseStatus.MALFORMED_REQUEST


def test_ocsp_reports_revocation_time_and_reason(context: AppContext) -> None:
    issued = issue(context, "r.example.com")
    revoked = context.authority.revoke(issued.serial_hex, x509.ReasonFlags.superseded, "op")
    resp = ocsp.load_der_ocsp_response(context.ocsp.respond(_ocsp_request(
        issued.certificate, issued.chain[0], hashes.SHA256())))
    assert resp.certificate_status is ocsp.OCSPCertStatus.REVOKED
    assert resp.revocation_reason is x509.ReasonFlags.superseded
    assert revoked.revoked_at is not None
    assert resp.revocation_time_utc == revoked.revoked_at.replace(microsecond=0)


def number(crl: x509.CertificateRevocationList) -> int:
    return crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number


def test_crl_is_resigned_on_revocation_and_when_due(build: Callable[..., AppContext]) -> None:
    clock = FrozenClock(dt.datetime.now(dt.UTC))
    ctx = build(clock=clock)
    issuer = ctx.authority.chain("issuing")[0]
    first = x509.load_der_x509_crl(ctx.crls.current("issuing"))
    assert first.is_signature_valid(issuer.public_key())  # type: ignore[arg-type]
    settings = ctx.config.cas["issuing"]
    assert first.next_update_utc - first.last_update_utc == dt.timedelta(  # type: ignore[operator]
        seconds=settings.crl_validity)
    assert ctx.crls.current("issuing") == first.public_bytes(DER)  # not due: same bytes
    issued = issue(ctx, "c.example.com")
    ctx.authority.revoke(issued.serial_hex, x509.ReasonFlags.key_compromise, "op")
    second = x509.load_der_x509_crl(ctx.crls.current("issuing"))
    assert number(second) > number(first)
    assert second.get_revoked_certificate_by_serial_number(
        issued.certificate.serial_number) is not None
    clock.advance(dt.timedelta(seconds=settings.crl_refresh + 1))
    third = x509.load_der_x509_crl(ctx.crls.current("issuing"))
    assert number(third) > number(second)
    assert third.last_update_utc == clock.now().replace(microsecond=0)
    assert third.get_revoked_certificate_by_serial_number(
        issued.certificate.serial_number) is not None


# -- pkilint on what the revocation services sign --------------------------------------

def _errors(results: Any) -> list[str]:
    from pkilint.validation import ValidationFindingSeverity

    return [f"{r.node.path}: {d.finding.code} {d.message or ''}" for r in results
            for d in r.finding_descriptions
            if d.finding.severity <= ValidationFindingSeverity.ERROR]


def test_crl_with_revocations_lints_without_errors(context: AppContext) -> None:
    from pkilint import loader as pk_loader
    from pkilint import pkix as pk
    from pkilint.pkix import crl as pk_crl
    from pkilint.pkix import extension as pk_ext
    from pkilint.pkix import name as pk_name

    for reason in (x509.ReasonFlags.key_compromise, x509.ReasonFlags.unspecified):
        issued = issue(context, f"{reason.name.replace('_', '-')}.example.com")
        context.authority.revoke(issued.serial_hex, reason, "op")
    validator = pk_crl.create_pkix_crl_validator_container(
        [pk.create_attribute_decoder(pk_name.ATTRIBUTE_TYPE_MAPPINGS),
         pk.create_extension_decoder(pk_ext.EXTENSION_MAPPINGS)],
        [pk_crl.create_issuer_validator_container([]),
         pk_crl.create_validity_validator_container([]),
         pk_crl.create_extensions_validator_container([])])
    doc = pk_loader.RFC5280CertificateListDocumentLoader().load_der_document(
        context.crls.current("issuing"), "crl")
    assert _errors(validator.validate(doc.root)) == []


def test_ocsp_responses_lint_without_errors(context: AppContext) -> None:
    from pkilint import loader as pk_loader
    from pkilint import pkix as pk
    from pkilint.pkix import extension as pk_ext
    from pkilint.pkix import name as pk_name
    from pkilint.pkix import ocsp as pk_ocsp

    good, bad = issue(context, "g.example.com"), issue(context, "b.example.com")
    context.authority.revoke(bad.serial_hex, x509.ReasonFlags.key_compromise, "op")
    validator = pk_ocsp.create_pkix_ocsp_response_validator_container(
        [pk_ocsp.create_response_decoder(),
         pk.create_attribute_decoder(pk_name.ATTRIBUTE_TYPE_MAPPINGS),
         pk.create_extension_decoder(pk_ext.EXTENSION_MAPPINGS)], [])
    for cert in (good, bad):
        der = context.ocsp.respond(_ocsp_request(cert.certificate, cert.chain[0],
                                                 hashes.SHA256(), b"x" * 16))
        doc = pk_loader.RFC6960OCSPResponseDocumentLoader().load_der_document(der, "ocsp")
        assert _errors(validator.validate(doc.root)) == []
