"""`enroll serve --workers 2`: OCSP answered from the stored response by both workers
(one signature for a hundred requests, a revocation visible at once on both), RFC 5019
caching headers on GET and POST, and one /metrics scrape that sums both workers'
counters and reports the store gauges. SQLite file and PostgreSQL."""

from __future__ import annotations

import base64
import datetime as dt
import email.utils
import hashlib
import re
import subprocess
import urllib.parse
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp
from prometheus_client.parser import text_string_to_metric_families

from enroll import config as config_mod
from enroll.context import build_context
from enroll.model import Issued, Pending
from enroll.testing import make_csr, request

pytestmark = [pytest.mark.slow]
DER = serialization.Encoding.DER
PEM = serialization.Encoding.PEM
CACHE_CONTROL = re.compile(r"^max-age=(\d+), public, no-transform, must-revalidate$")


def _ask(http_url: str, der: bytes, get: bool) -> httpx.Response:
    # A new connection per request, so the kernel spreads them over both workers.
    with httpx.Client(trust_env=False, timeout=10) as client:
        if get:  # RFC 6960 Appendix A.1
            return client.get(f"{http_url}/ocsp/"
                              + urllib.parse.quote(base64.b64encode(der).decode(), safe=""))
        return client.post(f"{http_url}/ocsp", content=der,
                           headers={"content-type": "application/ocsp-request"})


def _check_headers(r: httpx.Response) -> ocsp.OCSPResponse:
    """RFC 5019 §6: the headers agree with each other and with the response."""
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/ocsp-response"
    resp = ocsp.load_der_ocsp_response(r.content)
    assert resp.response_status is ocsp.OCSPResponseStatus.SUCCESSFUL
    match = CACHE_CONTROL.match(r.headers["cache-control"])
    assert match, r.headers["cache-control"]
    expires = email.utils.parsedate_to_datetime(r.headers["expires"])
    date = email.utils.parsedate_to_datetime(r.headers["date"])
    assert expires == resp.next_update_utc
    assert email.utils.parsedate_to_datetime(r.headers["last-modified"]) == \
        resp.this_update_utc
    assert 0 < int(match.group(1)) <= (expires - date).total_seconds() + 1
    assert r.headers["etag"] == f'"{hashlib.sha1(r.content).hexdigest()}"'  # noqa: S324
    return resp


def _scrape(http_url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    r = httpx.get(f"{http_url}/metrics", trust_env=False, timeout=10)
    assert r.status_code == 200
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(r.text) for s in family.samples}


def _worker_counts(log: str, path_prefix: str) -> dict[str, int]:
    counts: dict[str, int] = {}
    for line in log.splitlines():
        if "worker=" in line and f"path={path_prefix}" in line:
            worker = line.split("worker=")[1].split()[0]
            counts[worker] = counts.get(worker, 0) + 1
    return counts


def test_two_workers_share_ocsp_responses_and_sum_their_metrics(
        tmp_path: Path, db_url: str, server_factory: Any) -> None:
    data = tmp_path / "data"
    server = server_factory(data, extra_env={"ENROLL_DATABASE_URL": db_url,
                                             "ENROLL_LOG_REQUESTS": "1"},
                            args=("--workers", "2"))
    # This process is the operator: short-lived server certificates (expiring within
    # 30 days) and manual approval for the device profile (one pending request).
    cfg = config_mod.load(None, {"ENROLL_DATABASE_URL": db_url,
                                 "ENROLL_PROFILES__SERVER__VALIDITY": "20d",
                                 "ENROLL_PROFILES__DEVICE__APPROVAL": "manual"},
                          data_dir=data)
    ctx = build_context(cfg)
    try:
        good, bad = (ctx.authority.submit(request(make_csr(cn=n, dns=[n]), "server"))
                     for n in ("good.example.com", "bad.example.com"))
        assert isinstance(good, Issued) and isinstance(bad, Issued)
        pending = ctx.authority.submit(request(make_csr(cn="d1", dns=[]), "device"))
        assert isinstance(pending, Pending)
        issuer = good.chain[0]
        sha1 = hashes.SHA1()  # noqa: S303 - what RFC 5019 clients send
        der = ocsp.OCSPRequestBuilder().add_certificate(good.certificate, issuer,
                                                        sha1).build().public_bytes(DER)
        crl = x509.load_der_x509_crl(httpx.get(f"{server.http_url}/crl/issuing.crl",
                                               trust_env=False, timeout=10).content)

        before = _scrape(server.http_url)
        bodies = set()
        for i in range(100):
            r = _ask(server.http_url, der, get=i % 2 == 0)
            resp = _check_headers(r)
            assert resp.certificate_status is ocsp.OCSPCertStatus.GOOD
            bodies.add(r.content)
        assert len(bodies) == 1  # GET and POST, both workers: the one stored response
        served = _worker_counts(server.log_path.read_text(), "/ocsp")
        assert len(served) == 2 and sum(served.values()) == 100, served

        after = _scrape(server.http_url)
        # Counters summed over both workers: each served only part of the 100.
        signed = after.get(("enroll_ocsp_signatures_total", (("ca", "issuing"),)), 0)
        assert signed == 1
        stored = (("answer", "stored"),)
        assert after[("enroll_ocsp_responses_total", stored)] - \
            before.get(("enroll_ocsp_responses_total", stored), 0) == 99
        core_2xx = ("enroll_http_requests_total", (("protocol", "core"), ("status", "2xx")))
        # 100 OCSP requests and the first scrape (counted once its answer was sent).
        assert after[core_2xx] - before[core_2xx] == 101
        assert max(served.values()) < 100

        # The store gauges, read from the database at scrape time.
        now = dt.datetime.now(dt.UTC)
        for name in ("root", "issuing"):
            cert = ctx.cas.get(name).certificate
            value = after[("enroll_ca_certificate_expiry_seconds", (("ca", name),))]
            assert abs(value - (cert.not_valid_after_utc - now).total_seconds()) < 60
        value = after[("enroll_crl_next_update_seconds", (("ca", "issuing"),))]
        assert crl.next_update_utc is not None
        assert abs(value - (crl.next_update_utc - now).total_seconds()) < 60
        assert after[("enroll_pending_approvals", ())] == 1
        assert after[("enroll_certificates_expiring_30d", ())] == 2

        # Revoked from another process (the CLI): the very next answers, on both
        # workers, say revoked, and they sign nothing (the CLI re-signed at revocation).
        done = server.enroll("certs", "revoke", good.serial_hex, "--reason", "key_compromise")
        assert done.returncode == 0, done.stderr
        for i in range(10):
            resp = _check_headers(_ask(server.http_url, der, get=i % 2 == 1))
            assert resp.certificate_status is ocsp.OCSPCertStatus.REVOKED
            assert resp.revocation_reason is x509.ReasonFlags.key_compromise
        assert len(_worker_counts(server.log_path.read_text(), "/ocsp")) == 2
        # A cache revalidating what it holds (RFC 5019 §6.2 ETag): 304, same headers.
        current = _ask(server.http_url, der, get=True)
        with httpx.Client(trust_env=False, timeout=10) as client:
            url = f"{server.http_url}/ocsp/" + urllib.parse.quote(
                base64.b64encode(der).decode(), safe="")
            same = client.get(url, headers={"if-none-match": current.headers["etag"]})
            old = client.get(url, headers={"if-none-match": f'"{"0" * 40}"'})
        assert same.status_code == 304 and same.content == b""
        assert same.headers["etag"] == current.headers["etag"]
        assert same.headers["expires"] == current.headers["expires"]
        assert old.status_code == 200 and old.content == current.content
        final = _scrape(server.http_url)
        assert final[("enroll_ocsp_signatures_total", (("ca", "issuing"),))] == 1

        # openssl's client agrees (POST, the revoked one and the still-good one).
        for cert, expected in ((good, "revoked"), (bad, "good")):
            pem = tmp_path / f"{expected}.pem"
            pem.write_bytes(cert.certificate.public_bytes(PEM))
            (tmp_path / "issuer.pem").write_bytes(issuer.public_bytes(PEM))
            out = subprocess.run(
                ["openssl", "ocsp", "-issuer", str(tmp_path / "issuer.pem"), "-cert",
                 str(pem), "-url", f"{server.http_url}/ocsp", "-CAfile",
                 str(server.endpoints["root_ca"])], capture_output=True, text=True,
                timeout=30, check=True)
            assert "Response verify OK" in out.stderr
            assert f"{pem}: {expected}" in out.stdout
    finally:
        ctx.db.dispose()
