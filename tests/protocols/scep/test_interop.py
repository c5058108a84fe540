"""Interop with real clients against a real `enroll serve` (embedded default): micromdm's
scepclient (Debian package `scep`), and curl + openssl for GetCACaps/GetCACert.

scepclient 2.1 always sends single DES with SHA-1, which the default endpoint refuses, so
the scepclient tests switch on exactly those two (`des`, `sha1`) through the
environment, as docs/getting-started.md tells an operator to."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

pytestmark = [pytest.mark.interop, pytest.mark.slow]
SCEPCLIENT_ALGORITHMS = {
    "ENROLL_SCEP__ENDPOINTS__DEFAULT__ALGORITHMS": "aes128,aes256,sha256,sha512,des,sha1"}


@pytest.fixture
def legacy_server(server_factory: Any, tmp_path: Path) -> Any:
    """The embedded default with what scepclient 2.1 needs switched on."""
    return server_factory(tmp_path / "data", SCEPCLIENT_ALGORITHMS)


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items()
            if k not in ("SSL_CERT_FILE", "CURL_CA_BUNDLE", "REQUESTS_CA_BUNDLE")}


def _run(binary: str, url: str, workdir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    workdir.mkdir(exist_ok=True)
    return subprocess.run([binary, "-server-url", url, "-private-key",
                           str(workdir / "key.pem"), "-cn", "interop-device", *args],
                          capture_output=True, text=True, timeout=60, env=_env(), check=False)


def _stored(server: Any, cert: x509.Certificate) -> dict[str, Any]:
    out = server.enroll("certs", "show", format(cert.serial_number, "x"), "--json")
    assert out.returncode == 0, out.stderr
    return dict(json.loads(out.stdout))


def _count(server: Any) -> int:
    out = server.enroll("certs", "list", "--json")
    assert out.returncode == 0, out.stderr
    return len([c for c in json.loads(out.stdout) if c["protocol"] == "scep"
                and not c["requester"].startswith("system:")])


def test_scepclient_is_refused_with_badalg_by_the_default_endpoint(
        enroll_server: Any, scepclient: str, tmp_path: Path) -> None:
    scep = enroll_server.endpoints["scep"]
    refused = _run(scepclient, scep["url"], tmp_path / "device", "-challenge", scep["challenge"])
    assert refused.returncode != 0
    assert "failInfo: badAlg" in refused.stdout + refused.stderr
    assert not (tmp_path / "device" / "client.pem").exists()
    assert _count(enroll_server) == 0
    # The operator's log names the switch (scepclient does not print failInfoText).
    assert 'add "sha1" to scep.endpoints.default.algorithms' in \
        enroll_server.log_path.read_text()


def test_scepclient_enrolls_renews_and_wrong_challenge_fails(
        legacy_server: Any, scepclient: str, tmp_path: Path) -> None:
    enroll_server = legacy_server
    scep = enroll_server.endpoints["scep"]
    assert scep["url"] == f"{enroll_server.http_url}/scep"
    device = tmp_path / "device"
    enrolled = _run(scepclient, scep["url"], device, "-challenge", scep["challenge"])
    assert enrolled.returncode == 0, enrolled.stdout + enrolled.stderr
    first = x509.load_pem_x509_certificate((device / "client.pem").read_bytes())
    assert first.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value == \
        "interop-device"
    assert _stored(enroll_server, first)["protocol"] == "scep"
    _chains_to_getcacert(scep["url"], device / "client.pem", tmp_path,
                         Path(enroll_server.endpoints["root_ca"]))

    # scepclient sends RenewalReq, signed with client.pem, when that file exists.
    renewed = _run(scepclient, scep["url"], device, "-certificate", str(device / "client.pem"))
    assert renewed.returncode == 0, renewed.stdout + renewed.stderr
    second = x509.load_pem_x509_certificate((device / "client.pem").read_bytes())
    assert second.serial_number != first.serial_number
    assert _stored(enroll_server, second)["replaces"] == format(first.serial_number, "x")

    # Pinning the RA by fingerprint (what NDES-style clients do) works too.
    pinned = _run(scepclient, scep["url"], tmp_path / "pinned", "-challenge", scep["challenge"],
                  "-ca-fingerprint", scep["ra_fingerprint"])
    assert pinned.returncode == 0, pinned.stdout + pinned.stderr

    before = _count(enroll_server)
    wrong = _run(scepclient, scep["url"], tmp_path / "intruder", "-challenge", "not-it")
    assert wrong.returncode != 0
    assert "failInfo: badRequest" in wrong.stdout + wrong.stderr
    assert not (tmp_path / "intruder" / "client.pem").exists()
    assert _count(enroll_server) == before == 3


def _chains_to_getcacert(url: str, cert: Path, tmp_path: Path, root: Path) -> None:
    """GetCACert read by curl and openssl carries the RA and then the RSA issuing CA
    (scepclient, enveloping to every certificate there, did not fail on it), and the
    certificate scepclient got verifies against that CA (and on to the root)."""
    curl, openssl = shutil.which("curl"), shutil.which("openssl")
    assert curl and openssl, "curl and openssl are needed"
    p7, bundle = tmp_path / "getcacert.p7", tmp_path / "getcacert.pem"
    subprocess.run([curl, "-sf", "-o", str(p7), f"{url}?operation=GetCACert"], timeout=30,
                   env=_env(), check=True)
    subprocess.run([openssl, "pkcs7", "-inform", "DER", "-in", str(p7), "-print_certs",
                    "-out", str(bundle)], timeout=30, env=_env(), check=True)
    certs = x509.load_pem_x509_certificates(bundle.read_bytes())
    assert [c.subject.rfc4514_string() for c in certs] == [
        "O=enroll,CN=enroll SCEP RA default", "CN=enroll SCEP Issuing CA,O=enroll"]
    ca_pem = tmp_path / "scep-ca.pem"
    ca_pem.write_bytes(certs[1].public_bytes(serialization.Encoding.PEM))
    for args in (["-partial_chain", "-CAfile", str(ca_pem)],
                 ["-CAfile", str(root), "-untrusted", str(ca_pem)]):
        verified = subprocess.run([openssl, "verify", *args, str(cert)], capture_output=True,
                                  text=True, timeout=30, env=_env(), check=False)
        assert verified.returncode == 0 and verified.stdout.strip().endswith("OK"), \
            verified.stdout + verified.stderr


def test_scepclient_with_a_one_time_challenge_from_the_cli(
        legacy_server: Any, scepclient: str, tmp_path: Path) -> None:
    enroll_server = legacy_server
    out = enroll_server.enroll("scep", "challenge", "new", "--endpoint", "default",
                               "--expires", "1h")
    assert out.returncode == 0, out.stderr
    challenge = out.stdout.strip()
    url = enroll_server.endpoints["scep"]["url"]
    ok = _run(scepclient, url, tmp_path / "a", "-challenge", challenge)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    reused = _run(scepclient, url, tmp_path / "b", "-challenge", challenge)
    assert reused.returncode != 0 and "badRequest" in reused.stdout + reused.stderr
    missing = enroll_server.enroll("scep", "challenge", "new", "--endpoint", "nope")
    assert missing.returncode == 2 and "nope" in missing.stderr


def test_curl_and_openssl_read_getcacaps_and_getcacert(enroll_server: Any,
                                                       tmp_path: Path) -> None:
    curl, openssl = shutil.which("curl"), shutil.which("openssl")
    if not curl or not openssl:
        pytest.skip("curl/openssl not installed")
    url = enroll_server.endpoints["scep"]["url"]
    caps = subprocess.run([curl, "-sf", f"{url}?operation=GetCACaps"], capture_output=True,
                          text=True, timeout=30, env=_env(), check=True).stdout.split()
    assert caps == ["AES", "POSTPKIOperation", "Renewal", "SHA-256", "SHA-512",
                    "SCEPStandard"]
    p7 = tmp_path / "ca.p7"
    subprocess.run([curl, "-sf", "-o", str(p7), f"{url}?operation=GetCACert"], timeout=30,
                   env=_env(), check=True)
    printed = subprocess.run([openssl, "pkcs7", "-inform", "DER", "-in", str(p7),
                              "-print_certs", "-noout"], capture_output=True, text=True,
                             timeout=30, env=_env(), check=True).stdout
    assert "enroll SCEP RA default" in printed
