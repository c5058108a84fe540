"""The embedded default: `enroll serve` in a fresh data dir, as a first user meets it."""

from __future__ import annotations

import json
import ssl
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from cryptography import x509

from enroll.context import AppContext
from enroll.crypto.sealing import is_sealed
from enroll.store import queries


def _https(server: Any) -> httpx.Client:
    """A client trusting only the listener's CA bundle from endpoints.json."""
    return httpx.Client(verify=ssl.create_default_context(cafile=server.tls_ca),
                        trust_env=False, timeout=10)


def test_serve_writes_endpoints_json_and_serves_ca_crl_and_health(enroll_server: Any) -> None:
    info = json.loads((enroll_server.data_dir / "endpoints.json").read_text())
    assert info == enroll_server.endpoints
    for key in ("http_url", "https_url", "tls_ca_bundle", "root_ca", "crl_url", "ocsp_url"):
        assert info[key], key
    assert info["http_url"].startswith("http://127.0.0.1:")
    assert info["https_url"].startswith("https://127.0.0.1:")
    assert info["ocsp_url"] == f"{info['http_url']}/ocsp"
    for key in ("tls_ca_bundle", "root_ca"):
        assert Path(info[key]).is_absolute() and Path(info[key]).is_file()
    root = x509.load_pem_x509_certificate(Path(info["root_ca"]).read_bytes())
    with httpx.Client(trust_env=False, timeout=10) as http:
        pem = http.get(f"{info['http_url']}/ca/issuing.pem")
        assert pem.status_code == 200
        issuing = x509.load_pem_x509_certificate(pem.content)
        der = http.get(f"{info['http_url']}/ca/root.der")
        assert x509.load_der_x509_certificate(der.content) == root
        chain = x509.load_pem_x509_certificates(
            http.get(f"{info['http_url']}/ca/issuing/chain.pem").content)
        assert chain == [issuing, root]
        issuing.verify_directly_issued_by(root)
        crl = x509.load_der_x509_crl(http.get(info["crl_url"]).content)
        assert crl.issuer == issuing.subject
        assert crl.is_signature_valid(issuing.public_key())  # type: ignore[arg-type]
        assert http.get(f"{info['http_url']}/ca/nosuch.pem").status_code == 404
    with _https(enroll_server) as https:
        health = https.get(f"{info['https_url']}/health")
        assert health.status_code == 200 and health.json() == {"status": "ok"}
        # The listener's certificate was issued by our own CA for localhost/127.0.0.1.
        assert https.get(f"{info['https_url'].replace('127.0.0.1', 'localhost')}/health"
                         ).status_code == 200
    banner = enroll_server.log_path.read_text()
    assert info["http_url"] in banner and "endpoints.json" in banner


def test_data_dir_keeps_secrets_private_and_ca_keys_encrypted(
        enroll_server: Any, open_data_dir: Callable[..., AppContext]) -> None:
    data = enroll_server.data_dir
    for secret in (data / "ca-passphrase", data / "tls" / "server.key"):
        assert stat.S_IMODE(secret.stat().st_mode) == 0o600, secret
    assert (data / "enroll.toml").is_file()
    ctx = open_data_dir(data)
    with ctx.db.read() as conn:
        stored = queries.list_cas(conn)
    assert {ca.name for ca in stored} == {"root", "issuing", "scep"}
    for ca in stored:
        assert is_sealed(ca.key_blob)
    passphrase = (data / "ca-passphrase").read_bytes().strip()
    db_bytes = (data / "enroll.db").read_bytes()
    assert b"BEGIN PRIVATE KEY" not in db_bytes and passphrase not in db_bytes


def test_restart_on_the_same_data_dir_reuses_the_cas(
        tmp_path: Path, server_factory: Callable[..., Any]) -> None:
    data = tmp_path / "data"
    first = server_factory(data)
    with httpx.Client(trust_env=False, timeout=10) as http:
        before = {n: http.get(f"{first.http_url}/ca/{n}.der").content
                  for n in ("root", "issuing")}
    tls_before = (data / "tls" / "server.pem").read_bytes()
    first.process.terminate()
    first.process.wait(timeout=15)
    second = server_factory(data)
    with httpx.Client(trust_env=False, timeout=10) as http:
        after = {n: http.get(f"{second.http_url}/ca/{n}.der").content
                 for n in ("root", "issuing")}
    assert after == before
    assert (data / "tls" / "server.pem").read_bytes() == tls_before
    assert Path(second.endpoints["root_ca"]).read_bytes() == \
        Path(first.endpoints["root_ca"]).read_bytes()
    with _https(second) as https:
        assert https.get(f"{second.https_url}/health").status_code == 200
