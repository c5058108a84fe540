"""`enroll serve`'s HTTPS listener names the client CAs it accepts in its TLS
CertificateRequest (RFC 5246 §7.4.4, RFC 8446 §4.2.4): a device with several
identities can pick the one the listener trusts."""

from __future__ import annotations

import ssl
import subprocess
import sys
import urllib.parse
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from harness import child_env

from enroll.asgi import client_ca_names


def _acceptable_names(server: Any, *tls: str) -> list[str]:
    netloc = urllib.parse.urlsplit(server.https_url).netloc
    done = subprocess.run(["openssl", "s_client", "-connect", netloc, *tls],
                          input="", capture_output=True, text=True, timeout=30, check=False)
    out = done.stdout
    assert "Acceptable client certificate CA names" in out, out + done.stderr
    block = out.split("Acceptable client certificate CA names", 1)[1].splitlines()[1:]
    names = []
    for line in block:
        if not line.strip() or line.startswith(("Requested", "Client Certificate", "Shared",
                                                "Peer", "Server Temp", "---")):
            break
        names.append(line.strip())
    return names


def _subjects(pem: Path) -> list[str]:
    return [c.subject.rfc4514_string() for c in x509.load_pem_x509_certificates(
        pem.read_bytes())]


def _init(data_dir: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "enroll.cli.main", "--data-dir",
                           str(data_dir), "init"], env=child_env(), capture_output=True,
                          text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("version", ["-tls1_2", "-tls1_3"])
def test_the_listener_names_its_issuing_and_external_client_cas(
        server_factory: Any, tmp_path: Path, require_tools: None, version: str) -> None:
    work = tmp_path / "maker"
    work.mkdir()
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-nodes", "-keyout", "root.key", "-subj",
                    "/O=Acme Devices/CN=Acme Manufacturer Root", "-days", "2",
                    "-addext", "basicConstraints=critical,CA:TRUE", "-out", "root.pem"],
                   cwd=work, check=True, capture_output=True)
    data_dir = tmp_path / "data"
    _init(data_dir)
    with (data_dir / "enroll.toml").open("a") as toml:
        toml.write(f'\n[est.endpoints.factory]\nprofile = "device"\nauth = ["client-cert"]\n'
                   f'client_cert_cas = ["{work / "root.pem"}"]\n')
    server = server_factory(data_dir)
    names = _acceptable_names(server, version)
    ours = _subjects(Path(server.endpoints["root_ca"]))
    assert ours, "the engine's root CA"
    text = "\n".join(names)
    assert "CN = Acme Manufacturer Root" in text, names
    for subject in ours:  # the engine's CAs, issuing and root
        assert subject.split("CN=", 1)[1].split(",")[0] in text, (subject, names)
    assert len(names) == len(set(names))


def test_only_ca_certificates_are_named_and_a_foreign_context_is_left_alone() -> None:
    import datetime as dt

    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    def cert(cn: str, ca: bool) -> x509.Certificate:
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
        now = dt.datetime.now(dt.UTC)
        return (x509.CertificateBuilder().subject_name(name).issuer_name(name)
                .public_key(key.public_key()).serial_number(1).not_valid_before(now)
                .not_valid_after(now + dt.timedelta(days=1))
                .add_extension(x509.BasicConstraints(ca=ca, path_length=None), True)
                .sign(key, hashes.SHA256()))

    root, proxy = cert("root", True), cert("proxy", False)
    assert client_ca_names.ca_certificates([root, proxy, root]) == [root]
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.verify_mode = ssl.CERT_OPTIONAL
    assert client_ca_names.advertise(context, [root, proxy]) == 1
    assert client_ca_names.advertise(object(), [root]) == 0  # type: ignore[arg-type]
