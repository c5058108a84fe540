"""An operator makes an EAB key with a name policy (`enroll acme eab new`), and lego
binds an account with it on an endpoint that requires EAB."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
from harness import child_env, free_port, require_binary, validator_env

pytestmark = [pytest.mark.interop, pytest.mark.slow]


def test_lego_with_eab_key_and_name_policy(tmp_path: Path, local_dns: Any,
                                           server_factory: Any) -> None:
    http01 = free_port()
    env = validator_env(local_dns, http01) | {"ENROLL_ACME__ENDPOINTS__CORP__EAB_REQUIRED": "1"}
    server = server_factory(tmp_path / "data", extra_env=env)
    directory = server.endpoints["acme"]["directory"]
    assert directory.endswith("/acme/corp/directory")
    made = server.enroll("acme", "eab", "new", "--endpoint", "corp",
                         "--allow", "dns:*.corp.example")
    assert made.returncode == 0, made.stderr
    fields = dict(line.split(": ", 1) for line in made.stdout.strip().splitlines())
    assert "hmac" not in server.enroll("acme", "eab", "list").stdout

    def lego(name: str, *extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [require_binary("lego"), "--server", directory, "--email", "ops@corp.example",
             "--accept-tos", "--path", str(tmp_path / "lego"), *extra, "--domains", name,
             "--http", "--http.port", f"127.0.0.1:{http01}", "run"],
            env=child_env(LEGO_CA_CERTIFICATES=server.tls_ca), capture_output=True,
            text=True, timeout=120, check=False)

    refused = lego("www.corp.example")
    # lego reads meta.externalAccountRequired from the directory and stops itself.
    assert refused.returncode != 0 and "External Account Binding" in refused.stderr
    eab = ("--eab", "--kid", fields["kid"], "--hmac", fields["hmac"])
    ok = lego("www.corp.example", *eab)
    assert ok.returncode == 0, ok.stderr[-3000:]
    assert (tmp_path / "lego" / "certificates" / "www.corp.example.crt").exists()
    outside = lego("www.other.example", *eab)
    assert outside.returncode != 0 and "rejectedIdentifier" in outside.stderr
    listed = server.enroll("acme", "eab", "list").stdout
    assert fields["kid"] in listed and "dns:*.corp.example" in listed
