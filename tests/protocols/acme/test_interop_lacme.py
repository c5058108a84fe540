"""lacme (Debian package, its own http-01 webserver component on the validator's port)
against a real `enroll serve` over HTTPS: register, obtain, force-renew and revoke,
validated for real on loopback. lacme has no account deactivation command."""

from __future__ import annotations

import sqlite3
import subprocess
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from harness import child_env, require_binary, with_system_ca

pytestmark = [pytest.mark.interop, pytest.mark.slow]


def _config(server: Any, tmp: Path) -> Path:
    """lacme.conf, lacme-accountd.conf and lacme-certs.conf under `tmp`. ``CAfile``
    checks the issued chain against enroll's issuing root. Empty ``user``/``group``: no
    privilege drop, so the client can reach the test's root-only directory (a real
    install keeps the _lacme-* users)."""
    (tmp / "lacme-accountd.conf").write_text(
        f"privkey = file:{tmp / 'account.key'}\nquiet = Yes\n")
    (tmp / "lacme-certs.conf").write_text(
        "[lacme]\n"
        f"certificate-key = {tmp / 'srv.key'}\n"
        f"certificate = {tmp / 'srv.crt'}\n"
        f"certificate-chain = {tmp / 'srv.chain.crt'}\n"
        "subject = /CN=la.test.example\n"
        "subjectAltName = DNS:la.test.example\n"
        f"CAfile = {server.endpoints['root_ca']}\n")
    config = tmp / "lacme.conf"
    config.write_text(
        f"config-certs = {tmp / 'lacme-certs.conf'}\n"
        "[client]\n"
        f"server = {server.endpoints['acme']['directory']}\n"
        "user =\ngroup =\n"
        "[webserver]\n"
        f"listen = 127.0.0.1:{server.http01_port}\n"
        "user =\ngroup =\n"
        "[accountd]\n"
        f"config = {tmp / 'lacme-accountd.conf'}\n")
    return config


def _lacme(server: Any, config: Path, *args: str) -> str:
    # lacme has no CA option and wipes its environment: the TLS root goes in the system
    # bundle, which Debian's LWP::Protocol::https reads
    result = subprocess.run(with_system_ca(server.tls_ca, [
        require_binary("lacme"), f"--config={config}", *args]),
        env=child_env(), capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stdout + result.stderr[-4000:]
    return result.stdout + result.stderr


def _statuses(server: Any) -> dict[str, str]:
    with sqlite3.connect(server.data_dir / "enroll.db") as conn:
        return dict(conn.execute("select serial, status from certificates").fetchall())


def test_lacme_registers_obtains_renews_and_revokes(acme_server: Any,
                                                    tmp_path: Path) -> None:
    subprocess.run([require_binary("openssl"), "genpkey", "-algorithm", "RSA", "-out",
                    str(tmp_path / "account.key")], check=True, capture_output=True)
    subprocess.run([require_binary("openssl"), "genpkey", "-algorithm", "EC", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-out", str(tmp_path / "srv.key")],
                   check=True, capture_output=True)
    config = _config(acme_server, tmp_path)
    _lacme(acme_server, config, "account", "--register", "--tos-agreed",
           "mailto:ops@example.com")
    _lacme(acme_server, config, "newOrder")
    first = x509.load_pem_x509_certificate((tmp_path / "srv.crt").read_bytes())
    assert first.extensions.get_extension_for_class(
        x509.SubjectAlternativeName).value.get_values_for_type(x509.DNSName) == [
        "la.test.example"]

    _lacme(acme_server, config, "newOrder", "--force")
    renewed = x509.load_pem_x509_certificate((tmp_path / "srv.crt").read_bytes())
    assert renewed.serial_number != first.serial_number

    _lacme(acme_server, config, "revokeCert", str(tmp_path / "srv.crt"))
    statuses = _statuses(acme_server)
    assert statuses[format(renewed.serial_number, "x")] == "revoked"
    assert statuses[format(first.serial_number, "x")] == "valid"
