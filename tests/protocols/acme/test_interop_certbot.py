"""certbot (Debian package, standalone http-01) against a real `enroll serve` over HTTPS:
register, obtain, renew, revoke and unregister, validated for real on loopback."""

from __future__ import annotations

import sqlite3
import subprocess
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from harness import child_env, require_binary

pytestmark = [pytest.mark.interop, pytest.mark.slow]


def _certbot(server: Any, tmp: Path, *args: str) -> str:
    env = child_env(REQUESTS_CA_BUNDLE=server.tls_ca)
    result = subprocess.run(
        [require_binary("certbot"), "--non-interactive", "--server",
         server.endpoints["acme"]["directory"], "--config-dir", str(tmp / "cfg"),
         "--work-dir", str(tmp / "work"), "--logs-dir", str(tmp / "logs"), *args],
        env=env, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stdout + result.stderr[-4000:]
    return result.stdout + result.stderr


def _statuses(server: Any) -> dict[str, str]:
    with sqlite3.connect(server.data_dir / "enroll.db") as conn:
        return dict(conn.execute("select serial, status from certificates").fetchall())


def test_certbot_registers_obtains_renews_revokes_and_unregisters(
        acme_server: Any, tmp_path: Path) -> None:
    _certbot(acme_server, tmp_path, "register", "--agree-tos", "-m", "ops@example.com")
    port = str(acme_server.http01_port)
    _certbot(acme_server, tmp_path, "certonly", "--standalone", "--http-01-port", port,
             "--http-01-address", "127.0.0.1", "-d", "bot.test.example")
    live = tmp_path / "cfg" / "live" / "bot.test.example"
    first = x509.load_pem_x509_certificate((live / "cert.pem").read_bytes())
    assert first.extensions.get_extension_for_class(
        x509.SubjectAlternativeName).value.get_values_for_type(x509.DNSName) == [
        "bot.test.example"]

    _certbot(acme_server, tmp_path, "renew", "--force-renewal", "--no-random-sleep-on-renew",
             "--http-01-port", port, "--http-01-address", "127.0.0.1")
    renewed = x509.load_pem_x509_certificate((live / "cert.pem").read_bytes())
    assert renewed.serial_number != first.serial_number

    _certbot(acme_server, tmp_path, "revoke", "--cert-path", str(live / "cert.pem"),
             "--reason", "superseded", "--no-delete-after-revoke")
    statuses = _statuses(acme_server)
    assert statuses[format(renewed.serial_number, "x")] == "revoked"
    assert statuses[format(first.serial_number, "x")] == "valid"

    _certbot(acme_server, tmp_path, "unregister")
    with sqlite3.connect(acme_server.data_dir / "enroll.db") as conn:
        assert conn.execute("select status from acme_accounts").fetchall() == [("deactivated",)]
