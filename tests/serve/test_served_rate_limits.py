"""The EST lockout holds across `enroll serve --workers 2`: failures counted by either
worker lock the address out on both (the counts live in the database)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from enroll.testing import make_csr
from enroll.testing.est_client import csr_body

HEADERS = {"content-type": "application/pkcs10", "content-transfer-encoding": "base64"}


def test_est_lockout_is_shared_by_two_served_workers(tmp_path: Path,
                                                     server_factory: Any) -> None:
    server = server_factory(tmp_path / "data", extra_env={"ENROLL_LOG_REQUESTS": "1"},
                            args=("--workers", "2"))
    est = server.endpoints["est"]

    def post(password: str) -> httpx.Response:
        # A new connection per request: the kernel spreads them over both workers.
        with httpx.Client(verify=server.tls_ca, trust_env=False, timeout=30) as client:
            return client.post(f"{est['url']}/simpleenroll", headers=HEADERS,
                               auth=(est["username"], password),
                               content=csr_body(make_csr(cn="locked", dns=[])))

    statuses = [post("wrong password").status_code for _ in range(10)]
    assert statuses == [401] * 10
    r = post(est["password"])  # the right password, from a locked-out address
    assert r.status_code == 429, r.text
    assert 1 <= int(r.headers["retry-after"]) <= 900
    # Were the counts per process, the ten failures (spread over both workers: all ten
    # reach one worker with probability 2**-9) would leave each worker under its limit
    # and this request would be a 401 or a 200.
    log = server.log_path.read_text()
    assert "status=429" in log and "status=500" not in log
