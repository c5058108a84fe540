"""Device certificates from a manufacturer *intermediate* (root configured as the
endpoint's ``client_cert_cas``, the device sending leaf + intermediate) authenticate EST
over a real `enroll serve` listener; the verified chain reaches the endpoint's check."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

from harness import child_env

CA_EXT = "basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\n"
LEAF_EXT = "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n"


def sh(cmd: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", "-o", "pipefail", "-c", cmd], cwd=cwd, env=child_env(),
                          capture_output=True, text=True, timeout=60, check=False)


def ok(cmd: str, cwd: Path) -> str:
    done = sh(cmd, cwd)
    assert done.returncode == 0, f"{cmd}\n{done.stdout}\n{done.stderr}"
    return done.stdout


def _maker(w: Path, name: str) -> None:
    """`name`-root.pem, an intermediate under it, and a device leaf under that; the
    device's `name`-chain.pem is leaf then intermediate, as a device sends it."""
    (w / "ca.ext").write_text(CA_EXT)
    (w / "leaf.ext").write_text(LEAF_EXT)
    ec = "-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes"
    ok(f"openssl req -x509 {ec} -keyout {name}-root.key -subj '/O={name}/CN={name} Root' "
       f"-days 2 -addext basicConstraints=critical,CA:TRUE "
       f"-addext keyUsage=critical,keyCertSign,cRLSign -out {name}-root.pem", w)
    ok(f"openssl req -new {ec} -keyout {name}-int.key -subj '/O={name}/CN={name} Devices' "
       f"-out {name}-int.csr", w)
    ok(f"openssl x509 -req -in {name}-int.csr -CA {name}-root.pem -CAkey {name}-root.key "
       f"-CAcreateserial -days 2 -extfile ca.ext -out {name}-int.pem", w)
    ok(f"openssl req -new {ec} -keyout {name}-leaf.key -subj /CN=sn-0042 "
       f"-out {name}-leaf.csr", w)
    ok(f"openssl x509 -req -in {name}-leaf.csr -CA {name}-int.pem -CAkey {name}-int.key "
       f"-CAcreateserial -days 2 -extfile leaf.ext -out {name}-leaf.pem", w)
    ok(f"cat {name}-leaf.pem {name}-int.pem > {name}-chain.pem", w)


def _curl(server: Any, w: Path, path: str, cert: str, key: str) -> subprocess.CompletedProcess[str]:
    return sh(f"curl -sS -o out.txt -w '%{{http_code}}' --cacert {server.tls_ca} "
              f"--cert {cert} --key {key} -H 'Content-Type: application/pkcs10' "
              f"--data-binary @req.b64 {server.https_url}{path}/simpleenroll", w)


def test_a_device_certificate_from_a_manufacturer_intermediate_enrolls(
        server_factory: Any, tmp_path: Path, require_tools: None) -> None:
    w = tmp_path / "w"
    w.mkdir()
    _maker(w, "acme")
    _maker(w, "rogue")
    data_dir = tmp_path / "data"
    init = subprocess.run([sys.executable, "-m", "enroll.cli.main", "--data-dir",
                           str(data_dir), "init"], env=child_env(), capture_output=True,
                          text=True, timeout=120, check=False)
    assert init.returncode == 0, init.stderr
    with (data_dir / "enroll.toml").open("a") as toml:
        toml.write(f'\n[est.endpoints.factory]\nprofile = "device"\nauth = ["client-cert"]\n'
                   f'client_cert_cas = ["{w / "acme-root.pem"}"]\n')
    server = server_factory(data_dir)
    ok("openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout op.key "
       "-subj /CN=sn-0042 -outform DER | openssl base64 > req.b64", w)
    factory = "/.well-known/est/factory"

    # leaf + intermediate, root trusted by the endpoint: enrolled.
    done = _curl(server, w, factory, "acme-chain.pem", "acme-leaf.key")
    assert done.stdout == "200", (done.stdout, done.stderr, (w / "out.txt").read_text())
    ok("openssl base64 -d -in out.txt | openssl pkcs7 -inform DER -print_certs -out op.pem", w)
    assert "CN = sn-0042" in ok("openssl x509 -in op.pem -noout -subject", w)

    # The same chain on an endpoint whose anchors do not include the manufacturer:
    # the TLS layer accepts it (the listener trusts every endpoint's anchors), EST
    # refuses it.
    done = _curl(server, w, "/.well-known/est", "acme-chain.pem", "acme-leaf.key")
    assert done.stdout == "401", (done.stdout, done.stderr)

    # A leaf from an intermediate no configured root vouches for never gets in: the
    # TLS handshake itself fails (no path to a trusted CA), so no HTTP status at all.
    done = _curl(server, w, factory, "rogue-chain.pem", "rogue-leaf.key")
    assert done.returncode != 0 and done.stdout in ("", "000"), (done.stdout, done.stderr)

    # The acme leaf without its intermediate: no path either.
    done = _curl(server, w, factory, "acme-leaf.pem", "acme-leaf.key")
    assert done.returncode != 0 and done.stdout in ("", "000"), (done.stdout, done.stderr)
    listed = server.enroll("certs", "list")
    assert listed.returncode == 0, listed.stderr
