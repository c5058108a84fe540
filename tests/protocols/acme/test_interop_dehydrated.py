"""dehydrated (Debian package, http-01 into a webroot) against a real `enroll serve` over
HTTPS: register, obtain, force-renew, revoke and deactivate the account, validated for
real on loopback."""

from __future__ import annotations

import sqlite3
import subprocess
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from harness import child_env, require_binary

pytestmark = [pytest.mark.interop, pytest.mark.slow]


def _dehydrated(server: Any, tmp: Path, *args: str) -> str:
    config = tmp / "dehydrated.conf"
    if not config.exists():
        (tmp / "dh").mkdir()
        # dehydrated calls curl(1); CURL_OPTS hands it enroll's root explicitly
        config.write_text(
            f'CA="{server.endpoints["acme"]["directory"]}"\n'
            f'BASEDIR="{tmp / "dh"}"\n'
            f'WELLKNOWN="{tmp / "webroot" / ".well-known" / "acme-challenge"}"\n'
            f'CURL_OPTS="--cacert {server.tls_ca}"\n'
            'CONTACT_EMAIL="ops@example.com"\n'
            # the defaults (RSA-4096 account and domain keys) cost seconds to generate
            'KEY_ALGO="prime256v1"\nKEYSIZE="2048"\n')
    result = subprocess.run(
        [require_binary("dehydrated"), "--config", str(config), *args],
        env=child_env(), capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stdout + result.stderr[-4000:]
    return result.stdout + result.stderr


def _statuses(server: Any) -> dict[str, str]:
    with sqlite3.connect(server.data_dir / "enroll.db") as conn:
        return dict(conn.execute("select serial, status from certificates").fetchall())


def test_dehydrated_registers_obtains_renews_revokes_and_deactivates(
        acme_server: Any, webroot: Path, tmp_path: Path) -> None:
    _dehydrated(acme_server, tmp_path, "--register", "--accept-terms")
    _dehydrated(acme_server, tmp_path, "--cron", "--domain", "dh.test.example")
    live = tmp_path / "dh" / "certs" / "dh.test.example"
    first = x509.load_pem_x509_certificate((live / "cert.pem").read_bytes())
    assert first.extensions.get_extension_for_class(
        x509.SubjectAlternativeName).value.get_values_for_type(x509.DNSName) == [
        "dh.test.example"]

    _dehydrated(acme_server, tmp_path, "--cron", "--force", "--domain", "dh.test.example")
    renewed = x509.load_pem_x509_certificate((live / "cert.pem").read_bytes())
    assert renewed.serial_number != first.serial_number

    _dehydrated(acme_server, tmp_path, "--revoke", str(live / "cert.pem"))
    statuses = _statuses(acme_server)
    assert statuses[format(renewed.serial_number, "x")] == "revoked"
    assert statuses[format(first.serial_number, "x")] == "valid"

    _dehydrated(acme_server, tmp_path, "--deactivate")
    with sqlite3.connect(acme_server.data_dir / "enroll.db") as conn:
        assert conn.execute("select status from acme_accounts").fetchall() == [("deactivated",)]
