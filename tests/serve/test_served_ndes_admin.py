"""A real `enroll serve` with a Jamf Pro challenge page, tested as a Jamf admin would:
`enroll est hash-password` for the user, then curl with Basic auth over HTTPS; the
challenge read out of the UTF-16 page enrols a device over SCEP once."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import hashes
from enroll.protocols.scep import signeddata
from enroll.protocols.scep.failinfo import FailInfo
from enroll.protocols.scep.pkimessage import PKIStatus
from harness import child_env, require_binary

from enroll.testing.scep_client import ScepClient, csr_with_challenge

pytestmark = pytest.mark.slow
PASSWORD = "jamf-admin-password-for-tests"  # noqa: S105 - test value
CHALLENGE = re.compile(r"challenge password is: <B> ([A-Z0-9]{16,32}) </B>")


def _curl(*args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([require_binary("curl"), "-sS", *args], capture_output=True,
                          timeout=30, check=False)


def _enroll(server: Any, challenge: str, cn: str) -> Any:
    scep = server.endpoints["scep"]["url"]
    with httpx.Client(trust_env=False, timeout=30) as http:
        r = http.get(scep, params={"operation": "GetCACert"})
        certs, _ = signeddata.degenerate_contents(r.content)
        ra = next(c for c in certs if c.fingerprint(hashes.SHA256()).hex()
                  == server.endpoints["scep"]["ra_fingerprint"])
        client = ScepClient(ra)
        message, _ = client.pkcs_req(csr_with_challenge(client.key, cn, challenge))
        answer = http.post(f"{scep}?operation=PKIOperation", content=message,
                           headers={"content-type": "application/x-pki-message"})
        return client.read(answer.content)


def test_jamf_admin_fetches_a_challenge_with_curl(tmp_path: Path,
                                                  server_factory: Any) -> None:
    hashed = subprocess.run([sys.executable, "-m", "enroll.cli.main", "est",
                             "hash-password"], input=PASSWORD + "\n", capture_output=True,
                            text=True, timeout=60, env=child_env(), check=True).stdout.strip()
    users = tmp_path / "mscep-users"
    users.write_text(f"jamf:{hashed}\n")
    users.chmod(0o600)
    server = server_factory(tmp_path / "data", extra_env={
        "ENROLL_SCEP__ENDPOINTS__DEFAULT__DYNAMIC_CHALLENGE__USERS_FILE": str(users)})
    page = f"{server.https_url}/certsrv/mscep_admin/"
    ok = _curl("--cacert", server.tls_ca, "-u", f"jamf:{PASSWORD}", "-o", "-",
               "-w", "\n%{http_code} %{content_type}", page)
    body, _, status = ok.stdout.rpartition(b"\n")
    assert status == b"200 text/html; charset=utf-16", ok.stderr
    found = CHALLENGE.search(body.decode("utf-16"))
    assert found is not None
    challenge = found.group(1)
    assert _enroll(server, challenge, "jamf-mac").status is PKIStatus.SUCCESS
    assert _enroll(server, challenge, "jamf-mac-2").certrep.fail_info is FailInfo.BAD_REQUEST

    wrong = _curl("--cacert", server.tls_ca, "-u", "jamf:wrong", "-o", "/dev/null",
                  "-D", "-", "-w", "%{http_code}", page)
    assert wrong.stdout.endswith(b"401")
    assert b'www-authenticate: basic realm="enroll-mscep-admin"' in wrong.stdout.lower()
    plain = _curl("-u", f"jamf:{PASSWORD}", "-o", "/dev/null", "-w", "%{http_code}",
                  f"{server.http_url}/certsrv/mscep_admin/")
    assert plain.stdout == b"403"
