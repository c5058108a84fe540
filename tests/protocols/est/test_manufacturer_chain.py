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


# -- the chain walk itself (what the listener hands over, re-checked per endpoint) -----

def _ca(cn: str, issuer: Any = None, *, ca: bool = True, days: int = 2) -> Any:
    import datetime as dt

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    issuer_cert, issuer_key = issuer if issuer else (None, key)
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name)
            .issuer_name(issuer_cert.subject if issuer_cert else name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=3))
            .not_valid_after(now + dt.timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), True)
            .sign(issuer_key, hashes.SHA256()))
    return cert, key


def _authenticator(anchor: Any) -> Any:
    import datetime as dt
    from types import SimpleNamespace

    from enroll.protocols.est.auth import Authenticator

    endpoint = SimpleNamespace(anchors=(anchor,), ca="issuing")
    lookup = SimpleNamespace(lookup=lambda cert: None)
    clock = SimpleNamespace(now=lambda: dt.datetime.now(dt.UTC))
    return Authenticator(endpoint, lookup, None, clock)  # type: ignore[arg-type]


def test_the_chain_walk_accepts_ca_links_only() -> None:
    import pytest

    from enroll.errors import Unauthorized

    root = _ca("root")
    inter = _ca("devices", root)
    leaf = _ca("sn-1", inter, ca=False)
    auth = _authenticator(root[0])
    assert auth.certificate(leaf[0], chain=(inter[0], root[0])).record is None
    with pytest.raises(Unauthorized):  # the intermediate withheld
        auth.certificate(leaf[0])
    # A non-CA certificate of the manufacturer signing devices is no link.
    not_ca = _ca("not-a-ca", root, ca=False)
    forged = _ca("sn-2", not_ca, ca=False)
    with pytest.raises(Unauthorized, match="not from a CA"):
        auth.certificate(forged[0], chain=(not_ca[0],))
    # An intermediate under another root is no link to this endpoint's anchor.
    other = _ca("devices", _ca("other root"))
    stranger = _ca("sn-3", other, ca=False)
    with pytest.raises(Unauthorized, match="not from a CA"):
        auth.certificate(stranger[0], chain=(other[0], inter[0]))
    # An expired intermediate breaks the path.
    old = _ca("old devices", root, days=-1)
    orphan = _ca("sn-4", old, ca=False)
    with pytest.raises(Unauthorized, match="validity"):
        auth.certificate(orphan[0], chain=(old[0],))
