"""`enroll serve` runs the recovery pass at start-up, before its workers: a request the
previous run left `approved` (its only worker SIGKILLed while signing) is issued by the
time the restarted server answers, and the client's retry gets that certificate."""

from __future__ import annotations

import datetime as dt
import os
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from enroll import config as config_mod
from enroll.context import build_context
from enroll.model import RequestStatus
from enroll.testing import make_csr
from enroll.testing.est_client import certs_from, csr_body

pytestmark = [pytest.mark.slow]
FAULTS = Path(__file__).resolve().parent
HEADERS = {"content-type": "application/pkcs10", "content-transfer-encoding": "base64"}


def post(server: Any, body: bytes) -> httpx.Response:
    est = server.endpoints["est"]
    with httpx.Client(verify=server.tls_ca, trust_env=False, timeout=20) as client:
        return client.post(f"{est['url']}/simpleenroll", headers=HEADERS, content=body,
                           auth=(est["username"], est["password"]))


def test_a_request_left_approved_by_the_last_run_is_issued_at_start_up(
        tmp_path: Path, server_factory: Callable[..., Any]) -> None:
    data = tmp_path / "data"
    trigger = tmp_path / "kill-next-signer"
    # Only the start-up pass can run here: the workers' first pass is due within a day.
    env = {"ENROLL_RECOVERY_INTERVAL": "1d", "ENROLL_PLUGINS": "fault_plugin",
           "PYTHONPATH": os.pathsep.join([str(FAULTS), os.environ.get("PYTHONPATH", "")]),
           "FAULT_KILL_FILE": str(trigger)}
    server = server_factory(data, extra_env=env)
    body = csr_body(make_csr(cn="left-over", dns=[]))
    trigger.touch()
    with pytest.raises(httpx.TransportError):
        post(server, body)
    assert server.process.wait(timeout=30) == -signal.SIGKILL
    ctx = build_context(config_mod.load(None, {}, data_dir=data), create=False)
    try:
        [left] = ctx.authority.list_requests(RequestStatus.APPROVED)
        with ctx.db.write() as tx:  # an hour later: well past the grace period
            tx.run("UPDATE requests SET updated_at = ? WHERE id = ?",
                   (tx.when(ctx.clock.now() - dt.timedelta(hours=1)), left.id))
        restarted = server_factory(data, extra_env=env)
        record = ctx.authority.request(left.id)
        assert record is not None and record.status is RequestStatus.ISSUED
        stored = ctx.authority.certificate(record.certificate_serial or "")
        assert stored is not None
        r = post(restarted, body)  # the client's retry of the same request
        assert r.status_code == 200, r.text
        assert certs_from(r.content)[0] == stored.certificate
        assert "recovering request" in restarted.log_path.read_text()
    finally:
        ctx.db.dispose()
