"""A served engine for the deploy tests: `enroll serve` started under any command prefix
(the unit sandbox), and one EST enrollment against a running server."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from cryptography.x509.oid import NameOID
from harness import child_env, free_port

from enroll.testing import make_csr
from enroll.testing.est_client import certs_from, csr_body

HEADERS = {"content-type": "application/pkcs10", "content-transfer-encoding": "base64"}
ENROLL = str(Path(sys.executable).with_name("enroll"))
"""The installed console script (what the unit's ExecStart= runs)."""


@dataclass
class Served:
    process: subprocess.Popen[bytes]
    endpoints: dict[str, Any]
    log_path: Path

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=5)


def serve(prefix: list[str], data_dir: Path, env: dict[str, str], *args: str,
          timeout: float = 60.0) -> Served:
    """`prefix` + ``enroll serve`` on free loopback ports, once /health answers 200."""
    data_dir.mkdir(parents=True, exist_ok=True)
    log_path = data_dir.parent / f"{data_dir.name}-serve.log"
    endpoints_file = data_dir / "endpoints.json"
    endpoints_file.unlink(missing_ok=True)
    command = [*prefix, ENROLL, "serve", "--http-port", str(free_port()),
               "--https-port", str(free_port()), *args]
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                                env=child_env(**env))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"enroll serve exited: {log_path.read_text()[-4000:]}")
        try:
            endpoints = json.loads(endpoints_file.read_text())
            r = httpx.get(f"{endpoints['http_url']}/health", timeout=2, trust_env=False)
            if r.status_code == 200:
                return Served(proc, endpoints, log_path)
        except (OSError, ValueError, httpx.HTTPError):
            pass
        time.sleep(0.2)
    proc.kill()
    raise RuntimeError(f"enroll serve did not start: {log_path.read_text()[-4000:]}")


def est_enroll(endpoints: dict[str, Any], cn: str = "deploy-device") -> httpx.Response:
    """One EST simpleenroll with the generated Basic user; asserts a certificate came."""
    est = endpoints["est"]
    with httpx.Client(verify=endpoints["tls_ca_bundle"], trust_env=False,
                      timeout=30) as client:
        r = client.post(f"{est['url']}/simpleenroll", headers=HEADERS,
                        auth=(est["username"], est["password"]),
                        content=csr_body(make_csr(cn=cn, dns=[])))
    assert r.status_code == 200, r.text
    subject = certs_from(r.content)[0].subject
    assert subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == cn
    return r
