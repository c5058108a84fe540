"""lego (Debian package) against a real `enroll serve` over HTTPS, validated for real on
loopback: http-01 obtain, renew and revoke; tls-alpn-01 obtain."""

from __future__ import annotations

import sqlite3
import subprocess
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from harness import child_env, require_binary

pytestmark = [pytest.mark.interop, pytest.mark.slow]


def _lego(server: Any, tmp: Path, *args: str) -> str:
    env = child_env(LEGO_CA_CERTIFICATES=server.tls_ca)
    result = subprocess.run(
        [require_binary("lego"), "--server", server.endpoints["acme"]["directory"],
         "--email", "ops@example.com", "--accept-tos", "--path", str(tmp / "lego"), *args],
        env=env, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stdout + result.stderr[-4000:]
    return result.stderr


def _cert(tmp: Path, name: str) -> x509.Certificate:
    return x509.load_pem_x509_certificates(
        (tmp / "lego" / "certificates" / f"{name}.crt").read_bytes())[0]


def _db_rows(server: Any, sql: str) -> list[Any]:
    with sqlite3.connect(server.data_dir / "enroll.db") as conn:
        return conn.execute(sql).fetchall()


def test_lego_http01_obtains_renews_and_revokes(acme_server: Any, tmp_path: Path) -> None:
    http = ("--http", "--http.port", f"127.0.0.1:{acme_server.http01_port}")
    _lego(acme_server, tmp_path, "--domains", "www.test.example", *http, "run")
    first = _cert(tmp_path, "www.test.example")
    san = first.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["www.test.example"]

    _lego(acme_server, tmp_path, "--domains", "www.test.example", *http,
          "renew", "--days", "365", "--no-random-sleep")
    renewed = _cert(tmp_path, "www.test.example")
    assert renewed.serial_number != first.serial_number

    _lego(acme_server, tmp_path, "--domains", "www.test.example", "revoke", "--reason", "4")
    rows = _db_rows(acme_server, "select serial, status, protocol, requester from certificates")
    status = {int(serial, 16): (st, proto, req) for serial, st, proto, req in rows}
    assert status[renewed.serial_number][0] == "revoked"
    assert status[first.serial_number][0] == "valid"
    assert status[first.serial_number][1] == "acme"
    assert "/acme/acct/" in status[first.serial_number][2]


def test_lego_tls_alpn01_obtains(acme_server: Any, tmp_path: Path) -> None:
    _lego(acme_server, tmp_path, "--domains", "alpn.test.example", "--tls",
          "--tls.port", f"127.0.0.1:{acme_server.tlsalpn01_port}", "run")
    cert = _cert(tmp_path, "alpn.test.example")
    assert cert.extensions.get_extension_for_class(
        x509.SubjectAlternativeName).value.get_values_for_type(x509.DNSName) == [
        "alpn.test.example"]
    rows = _db_rows(acme_server, "select type, status from acme_challenges "
                    "where status = 'valid'")
    assert rows == [("tls-alpn-01", "valid")]
