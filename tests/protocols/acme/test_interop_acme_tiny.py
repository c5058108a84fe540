"""acme-tiny (Debian package, http-01 into a webroot) against a real `enroll serve` over
HTTPS: register and obtain from a CSR, then obtain again (acme-tiny's renewal is a rerun),
validated for real on loopback. acme-tiny has no revoke or deactivate command."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from harness import child_env, require_binary

pytestmark = [pytest.mark.interop, pytest.mark.slow]


def _openssl(*args: str) -> None:
    subprocess.run([require_binary("openssl"), *args], check=True, capture_output=True,
                   timeout=30)


def _acme_tiny(server: Any, tmp: Path, webroot: Path) -> x509.Certificate:
    # acme-tiny uses urllib's default context: SSL_CERT_FILE names enroll's root. Its
    # self-check fetches http://<name>:80/ through the system resolver, hence
    # --disable-check (enroll's validator does the real check).
    result = subprocess.run(
        [require_binary("acme-tiny"), "--account-key", str(tmp / "account.key"),
         "--csr", str(tmp / "domain.csr"),
         "--acme-dir", str(webroot / ".well-known" / "acme-challenge"),
         "--directory-url", server.endpoints["acme"]["directory"],
         "--contact", "mailto:ops@example.com", "--disable-check"],
        env=child_env(SSL_CERT_FILE=server.tls_ca), capture_output=True, text=True,
        timeout=60, check=False)
    assert result.returncode == 0, result.stdout + result.stderr[-4000:]
    chain = x509.load_pem_x509_certificates(result.stdout.encode())
    assert len(chain) >= 2  # leaf and issuer
    return chain[0]


def test_acme_tiny_obtains_and_reruns(acme_server: Any, webroot: Path,
                                      tmp_path: Path) -> None:
    _openssl("genrsa", "-out", str(tmp_path / "account.key"), "2048")
    _openssl("req", "-new", "-newkey", "rsa:2048", "-nodes", "-keyout",
             str(tmp_path / "domain.key"), "-subj", "/CN=tiny.test.example",
             "-addext", "subjectAltName=DNS:tiny.test.example",
             "-out", str(tmp_path / "domain.csr"))
    first = _acme_tiny(acme_server, tmp_path, webroot)
    assert first.extensions.get_extension_for_class(
        x509.SubjectAlternativeName).value.get_values_for_type(x509.DNSName) == [
        "tiny.test.example"]
    second = _acme_tiny(acme_server, tmp_path, webroot)
    assert second.serial_number != first.serial_number
