"""Two `enroll serve` workers on one PostgreSQL answer as one ACME server: a nonce from
one worker is accepted by the other, validation results written by one are read by the
other, and lego obtains a certificate."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest
from harness import child_env, require_binary, validator_env

from enroll.testing.acme_client import AcmeClient, Http01Responder

pytestmark = [pytest.mark.postgres, pytest.mark.slow]


async def test_two_workers_share_nonces_orders_and_validation(
        tmp_path: Path, pg_url: str, local_dns: Any, server_factory: Any) -> None:
    responder = Http01Responder()
    await responder.start()
    env = validator_env(local_dns, responder.port) | {"ENROLL_DATABASE_URL": pg_url,
                                                     "ENROLL_LOG_REQUESTS": "1"}
    server = server_factory(tmp_path / "data", extra_env=env, args=("--workers", "2"))
    directory = server.endpoints["acme"]["directory"]
    # No keep-alive: every request is a new connection, spread over both workers.
    limits = httpx.Limits(max_keepalive_connections=0)
    try:
        async with httpx.AsyncClient(verify=server.tls_ca, trust_env=False, limits=limits,
                                     timeout=30) as http:
            acme = AcmeClient(http, directory)
            await acme.register()
            for i in range(4):
                await acme.issue([f"w{i}.test.example"], responder)
    finally:
        await responder.close()
    log = server.log_path.read_text()
    workers = {line.split("worker=")[1].split()[0] for line in log.splitlines()
               if "path=/acme/" in line and "worker=" in line}
    assert len(workers) == 2, workers

    # The responder is closed: lego answers http-01 on the port the validator targets.
    result = subprocess.run(
        [require_binary("lego"), "--server", directory, "--email", "ops@example.com",
         "--accept-tos",
         "--path", str(tmp_path / "lego"), "--domains", "lego.test.example", "--http",
         "--http.port", f"127.0.0.1:{responder.port}", "run"],
        env=child_env(LEGO_CA_CERTIFICATES=server.tls_ca), capture_output=True, text=True,
        timeout=120, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    assert (tmp_path / "lego" / "certificates" / "lego.test.example.crt").exists()
    assert "status=500" not in server.log_path.read_text()
