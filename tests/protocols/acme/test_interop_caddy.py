"""Caddy (Debian package) with its built-in ACME client against a real `enroll serve`
over HTTPS: a site obtains its certificate from enroll, once by http-01 and once by
tls-alpn-01, on the loopback ports the validator uses, with enroll's TLS root trusted
through ``acme_ca_root``; the certificate Caddy then serves chains to enroll's root."""

from __future__ import annotations

import socket
import sqlite3
import ssl
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from harness import child_env, require_binary

pytestmark = [pytest.mark.interop, pytest.mark.slow]


def _caddyfile(server: Any, tmp: Path, name: str, disable: str) -> Path:
    """Caddy's HTTP port is the validator's http-01 port and its HTTPS port the
    tls-alpn-01 one; `disable` turns off one challenge so each run proves the other."""
    path = tmp / "Caddyfile"
    path.write_text(
        "{\n"
        "\tadmin off\n"
        "\tskip_install_trust\n"
        "\tocsp_stapling off\n"
        f"\tstorage file_system {tmp / 'caddy'}\n"
        f"\thttp_port {server.http01_port}\n"
        f"\thttps_port {server.tlsalpn01_port}\n"
        "\temail ops@example.com\n"
        f"\tacme_ca {server.endpoints['acme']['directory']}\n"
        f"\tacme_ca_root {server.tls_ca}\n"
        "}\n"
        f"https://{name} {{\n"
        "\tbind 127.0.0.1\n"
        f"\ttls {{\n\t\tissuer acme {{\n\t\t\t{disable}\n\t\t}}\n\t}}\n"
        "\trespond \"hello from caddy\"\n"
        "}\n")
    return path


def _served_certificate(server: Any, name: str, timeout: float = 30.0) -> x509.Certificate:
    """The leaf Caddy presents for `name`, verified against enroll's issuing root, once
    Caddy has obtained it (a bounded wait: Caddy obtains in the background)."""
    context = ssl.create_default_context(cafile=server.endpoints["root_ca"])
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection(("127.0.0.1", server.tlsalpn01_port), timeout=2) as raw, \
                    context.wrap_socket(raw, server_hostname=name) as tls:
                der = tls.getpeercert(binary_form=True)
                assert der is not None
                return x509.load_der_x509_certificate(der)
        except (OSError, ssl.SSLError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.3)


@pytest.mark.parametrize(("name", "disable", "challenge"), [
    ("caddy.test.example", "disable_tlsalpn_challenge", "http-01"),
    ("alpn.caddy.test.example", "disable_http_challenge", "tls-alpn-01"),
])
def test_caddy_site_obtains_its_certificate(acme_server: Any, tmp_path: Path, name: str,
                                            disable: str, challenge: str) -> None:
    caddyfile = _caddyfile(acme_server, tmp_path, name, disable)
    log = (tmp_path / "caddy.log").open("wb")
    caddy = subprocess.Popen(
        [require_binary("caddy"), "run", "--config", str(caddyfile), "--adapter", "caddyfile"],
        env=child_env(HOME=str(tmp_path), XDG_DATA_HOME=str(tmp_path / "data"),
                      XDG_CONFIG_HOME=str(tmp_path / "config")),
        stdout=log, stderr=subprocess.STDOUT)
    try:
        cert = _served_certificate(acme_server, name)
    except (OSError, ssl.SSLError):
        pytest.fail((tmp_path / "caddy.log").read_text()[-4000:])
    finally:
        caddy.terminate()
        caddy.wait(timeout=10)
        log.close()
    assert cert.extensions.get_extension_for_class(
        x509.SubjectAlternativeName).value.get_values_for_type(x509.DNSName) == [name]
    with sqlite3.connect(acme_server.data_dir / "enroll.db") as conn:
        rows = conn.execute("select type from acme_challenges where status = 'valid'").fetchall()
        serials = [s for (s,) in conn.execute("select serial from certificates")]
    assert rows == [(challenge,)]
    assert format(cert.serial_number, "x") in serials
