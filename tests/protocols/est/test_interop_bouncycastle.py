"""Bouncy Castle's EST client (org.bouncycastle.est from Debian `libbcpkix-java`, with
`libbcprov-java`, `libbcutil-java` and `default-jdk-headless`) against a real
`enroll serve` HTTPS listener.

BcEst.java, next to this file, is compiled into tmp with javac and run once; it prints a
line per step, each checked here against what enroll stored: /cacerts, /csrattrs (204),
/simpleenroll with HTTP Basic, /simplereenroll with the issued certificate as the TLS
client certificate (and refused for another subject), /serverkeygen (BC reads the
multipart answer and the key matches the certificate), and a wrong password (401).
enroll's TLS CA (endpoints.json ``tls_ca_bundle``) is the only trust anchor."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
from harness import child_env, require_binary

pytestmark = [pytest.mark.interop, pytest.mark.slow]
HERE = Path(__file__).parent
JARS = ("bcpkix", "bcprov", "bcutil")


def _classpath() -> str:
    """The Debian jars, required like an interop binary (fail under
    ENROLL_REQUIRE_INTEROP=1, else skip)."""
    paths = [Path("/usr/share/java") / f"{name}.jar" for name in JARS]
    missing = [p.name for p in paths if not p.exists()]
    if missing:
        if os.environ.get("ENROLL_REQUIRE_INTEROP") == "1":
            pytest.fail(f"Bouncy Castle jars {missing} are required (ENROLL_REQUIRE_INTEROP=1)")
        pytest.skip(f"Bouncy Castle jars {missing} not installed")
    return ":".join(str(p) for p in paths)


def _certs(server: Any) -> dict[str, dict[str, Any]]:
    out = server.enroll("certs", "list", "--json")
    assert out.returncode == 0, out.stderr
    return {r["serial"]: r for r in json.loads(out.stdout) if r["protocol"] == "est"}


def test_bouncycastle_est_client(enroll_server: Any, tmp_path: Path) -> None:
    javac, java = require_binary("javac"), require_binary("java")
    classpath = _classpath()
    classes = tmp_path / "classes"
    compiled = subprocess.run([javac, "-nowarn", "-cp", classpath, "-d", str(classes),
                               str(HERE / "BcEst.java")], capture_output=True, text=True,
                              timeout=120, env=child_env(), check=False)
    assert compiled.returncode == 0, compiled.stderr

    est = enroll_server.endpoints["est"]
    host_port = enroll_server.https_url.removeprefix("https://")
    ran = subprocess.run([java, "-cp", f"{classes}:{classpath}", "BcEst", host_port,
                          enroll_server.tls_ca, est["username"], est["password"]],
                         capture_output=True, text=True, timeout=120, env=child_env(),
                         check=False)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    steps = dict(line.split(" ", 1) for line in ran.stdout.splitlines())

    assert steps["cacerts"] == "2 O=enroll,CN=enroll_Root_CA O=enroll,CN=enroll_Issuing_CA"
    assert steps["csrattrs"] == "false"  # 204: the default profile asks for nothing
    stored = _certs(enroll_server)
    first, renewed = stored[steps["simpleenroll"]], stored[steps["simplereenroll"]]
    assert first["subject"] == renewed["subject"] == "CN=bc-device"
    assert renewed["replaces"] == first["serial"]
    assert steps["reenroll-other-subject"] in ("400", "403")
    keyless_serial, key_type = steps["serverkeygen"].split()
    assert stored[keyless_serial]["subject"] == "CN=bc-keyless"
    assert key_type in ("RSA", "EC")
    assert steps["wrong-password"] == "401"
    assert len(stored) == 3
