"""Two `enroll serve` workers on one PostgreSQL database serve the same SCEP RA, and both
switch to a new RA generation stored while they run, without a restart."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509

from enroll import config as config_mod
from enroll.context import build_context

pytestmark = [pytest.mark.postgres, pytest.mark.slow]


def _ras(url: str, times: int) -> set[x509.Certificate]:
    from enroll.protocols.scep import signeddata

    seen = set()
    for _ in range(times):  # a fresh connection each time: both workers answer
        with httpx.Client(trust_env=False, timeout=10) as client:
            r = client.get(url, params={"operation": "GetCACert"})
        assert r.status_code == 200, r.text
        seen.add(signeddata.degenerate_contents(r.content)[0][0])
    return seen


def test_two_workers_serve_one_ra_and_switch_together(
        tmp_path: Path, pg_url: str, server_factory: Any) -> None:
    from enroll.protocols.scep import settings
    from enroll.protocols.scep.pkimessage import PKIStatus
    from enroll.protocols.scep.ra import RAKeyring

    from enroll.testing.scep_client import ScepClient, csr_with_challenge

    server = server_factory(tmp_path / "data", extra_env={"ENROLL_DATABASE_URL": pg_url,
                                                          "ENROLL_LOG_REQUESTS": "1"},
                            args=("--workers", "2"))
    scep = server.endpoints["scep"]
    (first,) = _ras(scep["url"], 12)

    # Another process (here: this test) stores the next generation, current at once.
    cfg = config_mod.load(None, {"ENROLL_DATABASE_URL": pg_url}, data_dir=tmp_path / "data")
    ctx = build_context(cfg)
    endpoint = settings.parse(ctx.config)[0]
    keyring = RAKeyring(ctx.frontend, endpoint, endpoint.ca)
    now = dt.datetime.now(dt.UTC)
    assert keyring._create(2, now, now)  # noqa: SLF001 - what the rollover does when due
    (second,) = _ras(scep["url"], 12)
    assert second != first and second == keyring.snapshot().current.certificate

    # A device that read GetCACert before the switch still enrols: the old RA opens.
    client = ScepClient(first)
    message, _ = client.pkcs_req(csr_with_challenge(client.key, "late", scep["challenge"]))
    with httpx.Client(trust_env=False, timeout=10) as http:
        r = http.post(f"{scep['url']}?operation=PKIOperation", content=message,
                      headers={"content-type": "application/x-pki-message"})
    assert client.read(r.content).status is PKIStatus.SUCCESS

    workers = {line.split("worker=")[1].split()[0] for line in
               server.log_path.read_text().splitlines() if "worker=" in line}
    assert len(workers) == 2, f"expected both workers to answer, saw {workers}"
    ctx.db.dispose()
