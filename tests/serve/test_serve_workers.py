"""Several `enroll serve` workers sharing one PostgreSQL database behave as one server."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp

from enroll import config as config_mod
from enroll.context import build_context
from enroll.testing import make_csr, request

pytestmark = [pytest.mark.postgres, pytest.mark.slow]


def _ocsp_status(http_url: str, cert: x509.Certificate, issuer: x509.Certificate) -> str:
    req = ocsp.OCSPRequestBuilder().add_certificate(cert, issuer, hashes.SHA256()).build()
    der = req.public_bytes(serialization.Encoding.DER)
    # Alternate GET and POST so both workers and both forms are exercised.
    with httpx.Client(trust_env=False, timeout=10) as client:
        r1 = client.post(f"{http_url}/ocsp", content=der,
                         headers={"content-type": "application/ocsp-request"})
        r2 = client.get(f"{http_url}/ocsp/{base64.b64encode(der).decode()}")
    statuses = {ocsp.load_der_ocsp_response(r.content).certificate_status.name
                for r in (r1, r2)}
    assert len(statuses) == 1, statuses
    return statuses.pop()


def test_two_workers_on_postgresql_share_certificates_and_revocations(
        tmp_path: Path, pg_url: str, server_factory: Any) -> None:
    server = server_factory(tmp_path / "data", extra_env={"ENROLL_DATABASE_URL": pg_url,
                                                          "ENROLL_LOG_REQUESTS": "1"},
                            args=("--workers", "2"))
    cfg = config_mod.load(None, {"ENROLL_DATABASE_URL": pg_url},
                          data_dir=tmp_path / "data")
    ctx = build_context(cfg)
    issued = ctx.authority.submit(request(make_csr(cn="w.example.com",
                                                   dns=["w.example.com"]), "server"))
    issuer = ctx.authority.chain("issuing")[0]
    with httpx.Client(trust_env=False, timeout=10) as client:
        for _ in range(20):
            r = client.get(f"{server.http_url}/health")
            assert r.status_code == 200
    for _ in range(3):
        assert _ocsp_status(server.http_url, issued.certificate, issuer) == "GOOD"  # type: ignore[union-attr]
    done = server.enroll("certs", "revoke", issued.serial_hex, "--reason",  # type: ignore[union-attr]
                         "key_compromise")
    assert done.returncode == 0, done.stderr
    for _ in range(3):
        assert _ocsp_status(server.http_url, issued.certificate, issuer) == "REVOKED"  # type: ignore[union-attr]
    crl = x509.load_der_x509_crl(httpx.get(f"{server.http_url}/crl/issuing.crl",
                                           trust_env=False).content)
    assert crl.get_revoked_certificate_by_serial_number(
        issued.certificate.serial_number) is not None  # type: ignore[union-attr]
    log = server.log_path.read_text()
    workers = {line.split("worker=")[1].split()[0] for line in log.splitlines()
               if "worker=" in line}
    assert len(workers) == 2, f"expected both workers to answer, saw {workers}"
    ctx.db.dispose()


async def test_two_workers_on_sqlite_share_the_writer_and_the_connections(
        tmp_path: Path, server_factory: Any) -> None:
    """The embedded default with `--workers 2`: connections reach both workers
    (`SO_REUSEPORT`), their writes queue on the one lock file, nothing fails."""
    import asyncio

    from enroll.testing.est_client import certs_from, csr_body

    server = server_factory(tmp_path / "data", extra_env={"ENROLL_LOG_REQUESTS": "1"},
                            args=("--workers", "2"))
    est = server.endpoints["est"]
    auth = (est["username"], est["password"])
    headers = {"content-type": "application/pkcs10", "content-transfer-encoding": "base64"}

    async def enroll(i: int) -> x509.Certificate:
        # A new connection per request, so the kernel spreads them over the workers.
        async with httpx.AsyncClient(verify=server.tls_ca, trust_env=False,
                                     timeout=30) as client:
            r = await client.post(f"{est['url']}/simpleenroll", auth=auth, headers=headers,
                                  content=csr_body(make_csr(cn=f"w{i}", dns=[])))
            assert r.status_code == 200, r.text
            return certs_from(r.content)[0]

    certs = await asyncio.gather(*(enroll(i) for i in range(24)))
    assert len({c.serial_number for c in certs}) == 24
    log = server.log_path.read_text()
    workers = {line.split("worker=")[1].split()[0] for line in log.splitlines()
               if "simpleenroll" in line and "status=200" in line and "worker=" in line}
    assert len(workers) == 2, f"expected both workers to enroll, saw {workers}"
    assert "database is locked" not in log and "status=500" not in log
    assert (tmp_path / "data" / "enroll.db-writer.lock").exists()
