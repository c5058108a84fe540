"""uacme (Debian package, http-01 through its hook into a webroot) against a real
`enroll serve` over HTTPS: register, obtain, renew, roll the account key over, revoke
and deactivate the account, validated for real on loopback."""

from __future__ import annotations

import sqlite3
import subprocess
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from harness import child_env, require_binary, with_system_ca

pytestmark = [pytest.mark.interop, pytest.mark.slow]

HOOK = "/usr/share/uacme/uacme.sh"
def _uacme(server: Any, tmp: Path, webroot: Path, *args: str) -> str:
    env = child_env(UACME_CHALLENGE_PATH=str(webroot / ".well-known" / "acme-challenge"))
    result = subprocess.run(with_system_ca(server.tls_ca, [
        require_binary("uacme"), "-v", "-y", "-c", str(tmp / "uacme"),
        "-a", server.endpoints["acme"]["directory"], "-h", HOOK, *args]),
        env=env, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stdout + result.stderr[-4000:]
    return result.stderr


def _statuses(server: Any) -> dict[str, str]:
    with sqlite3.connect(server.data_dir / "enroll.db") as conn:
        return dict(conn.execute("select serial, status from certificates").fetchall())


def _accounts(server: Any) -> list[tuple[str, str, str]]:
    with sqlite3.connect(server.data_dir / "enroll.db") as conn:
        return conn.execute("select id, thumbprint, status from acme_accounts").fetchall()


def test_uacme_obtains_renews_rolls_key_revokes_and_deactivates(
        acme_server: Any, webroot: Path, tmp_path: Path) -> None:
    _uacme(acme_server, tmp_path, webroot, "new", "ops@example.com")
    _uacme(acme_server, tmp_path, webroot, "issue", "u.test.example")
    live = tmp_path / "uacme" / "u.test.example"
    first = x509.load_pem_x509_certificates((live / "cert.pem").read_bytes())[0]
    assert first.extensions.get_extension_for_class(
        x509.SubjectAlternativeName).value.get_values_for_type(x509.DNSName) == [
        "u.test.example"]

    _uacme(acme_server, tmp_path, webroot, "-f", "issue", "u.test.example")
    renewed = x509.load_pem_x509_certificates((live / "cert.pem").read_bytes())[0]
    assert renewed.serial_number != first.serial_number

    before = _accounts(acme_server)
    _uacme(acme_server, tmp_path, webroot, "newkey")
    after = _accounts(acme_server)
    assert len(before) == len(after) == 1 and before[0][0] == after[0][0]
    assert before[0][1] != after[0][1]  # same account, new key (RFC 8555 §7.3.5)
    # the rolled-over key signs the revocation: the account still owns its certificates
    _uacme(acme_server, tmp_path, webroot, "-r", "4", "revoke", str(live / "cert.pem"))
    statuses = _statuses(acme_server)
    assert statuses[format(renewed.serial_number, "x")] == "revoked"
    assert statuses[format(first.serial_number, "x")] == "valid"

    _uacme(acme_server, tmp_path, webroot, "deactivate")
    assert _accounts(acme_server)[0][2] == "deactivated"
