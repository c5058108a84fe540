"""F2 and F8: workers of a real `enroll serve --workers 2` on loopback die in the middle
of issuances (``kill -9`` from outside; a SIGKILL from inside, as the OOM killer sends
it, while a request is being signed). Nothing is lost: every certificate a client
received is in the store, no serial twice, no request left ``approved`` once recovery
ran, and the parent restarted the worker; SIGTERM then stops everything cleanly."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509

from enroll import config as config_mod
from enroll.context import AppContext, build_context
from enroll.model import RequestStatus
from enroll.store import queries
from enroll.testing import make_csr
from enroll.testing.est_client import certs_from, csr_body

pytestmark = [pytest.mark.slow]
FAULTS = Path(__file__).resolve().parent
HEADERS = {"content-type": "application/pkcs10", "content-transfer-encoding": "base64"}
FAST_RECOVERY = {"ENROLL_RECOVERY_GRACE": "5s", "ENROLL_RECOVERY_INTERVAL": "1s"}


def workers(server: Any) -> set[int]:
    """The pids of the serve parent's worker processes (not its resource tracker)."""
    pid = server.process.pid
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except FileNotFoundError:
        return set()
    found = set()
    for child in map(int, children):
        try:
            cmdline = Path(f"/proc/{child}/cmdline").read_bytes()
        except FileNotFoundError:
            continue
        if b"spawn_main" in cmdline:
            found.add(child)
    return found


def wait_for(what: str, check: Callable[[], bool], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


def enroll_until_issued(server: Any, csr: x509.CertificateSigningRequest,
                        deadline: float) -> x509.Certificate:
    """One EST client: the same request again after a dropped connection (its worker
    died) or a 202 (pending: its signer died and recovery has not run yet)."""
    est = server.endpoints["est"]
    while True:
        try:
            with httpx.Client(verify=server.tls_ca, trust_env=False, timeout=20) as client:
                r = client.post(f"{est['url']}/simpleenroll", headers=HEADERS,
                                auth=(est["username"], est["password"]), content=csr_body(csr))
            if r.status_code == 200:
                return certs_from(r.content)[0]
            assert r.status_code == 202, (r.status_code, r.text)
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            raise AssertionError("no certificate before the deadline")
        time.sleep(0.5)


def open_store(data_dir: Path, db_url: str) -> AppContext:
    cfg = config_mod.load(None, {"ENROLL_DATABASE_URL": db_url}, data_dir=data_dir)
    return build_context(cfg, create=False)


def check_nothing_lost(ctx: AppContext, received: list[x509.Certificate]) -> None:
    assert len({c.serial_number for c in received}) == len(received)
    for cert in received:
        record = ctx.authority.lookup(cert)
        assert record is not None, f"certificate {cert.serial_number:x} not in the store"
    # Recovery finishes whatever a dead worker left approved (grace 5 s, every 1 s).
    wait_for("recovery of approved requests",
             lambda: not ctx.authority.list_requests(RequestStatus.APPROVED))
    with ctx.db.read() as tx:
        issued = tx.scalar("SELECT count(*) FROM requests WHERE status = 'issued'")
        linked = tx.scalar("SELECT count(DISTINCT certificate_serial) FROM requests "
                           "WHERE status = 'issued'")
        assert issued == linked == queries.count_certificates(tx) - _own(tx)


def _own(tx: Any) -> int:
    """enroll's own certificates (the HTTPS listener's), issued without a client."""
    return int(tx.scalar("SELECT count(*) FROM certificates WHERE requester LIKE ? AND "
                         "request_id IS NULL AND protocol != 'ca'", ("system:%",)))


def stop_cleanly(server: Any, pids: set[int]) -> None:
    server.process.send_signal(signal.SIGTERM)
    assert server.process.wait(timeout=30) == 0
    assert not [p for p in pids if Path(f"/proc/{p}").exists()]


def test_f2_kill_9_of_a_worker_during_issuances_loses_nothing(
        tmp_path: Path, db_url: str, server_factory: Callable[..., Any]) -> None:
    data = tmp_path / "data"
    server = server_factory(data, extra_env={"ENROLL_DATABASE_URL": db_url, **FAST_RECOVERY},
                            args=("--workers", "2"))
    wait_for("two workers", lambda: len(workers(server)) == 2)
    before = workers(server)
    csrs = [make_csr(cn=f"f2-{i}", dns=[]) for i in range(32)]
    done = threading.Event()
    deadline = time.monotonic() + 120
    count = [0]
    lock = threading.Lock()

    def client(csr: x509.CertificateSigningRequest) -> x509.Certificate:
        cert = enroll_until_issued(server, csr, deadline)
        with lock:
            count[0] += 1
            if count[0] == 8:
                done.set()
        return cert

    with ThreadPoolExecutor(8) as pool:
        futures = [pool.submit(client, csr) for csr in csrs]
        assert done.wait(60), "the first issuances did not happen"
        victim = sorted(before)[0]
        os.kill(victim, signal.SIGKILL)  # mid-run: other requests are in flight
        received = [f.result() for f in futures]
    wait_for("the worker restarted", lambda: len(workers(server)) == 2
             and victim not in workers(server))
    log = server.log_path.read_text()
    assert f"(pid {victim}) died (signal SIGKILL)" in log and "restarted (pid" in log
    ctx = open_store(data, db_url)
    try:
        check_nothing_lost(ctx, received)
    finally:
        ctx.db.dispose()
    # The restarted worker serves.
    assert enroll_until_issued(server, make_csr(cn="after", dns=[]), time.monotonic() + 30)
    stop_cleanly(server, workers(server))


def test_f8_a_worker_killed_while_signing_is_restarted_and_its_request_recovered(
        tmp_path: Path, db_url: str, server_factory: Callable[..., Any]) -> None:
    data = tmp_path / "data"
    trigger = tmp_path / "kill-next-signer"
    env = {"ENROLL_DATABASE_URL": db_url, **FAST_RECOVERY, "ENROLL_PLUGINS": "fault_plugin",
           "PYTHONPATH": os.pathsep.join([str(FAULTS), os.environ.get("PYTHONPATH", "")]),
           "FAULT_KILL_FILE": str(trigger)}
    server = server_factory(data, extra_env=env, args=("--workers", "2"))
    wait_for("two workers", lambda: len(workers(server)) == 2)
    before = workers(server)
    first = enroll_until_issued(server, make_csr(cn="f8-before", dns=[]),
                                time.monotonic() + 30)
    trigger.touch()
    csr = make_csr(cn="f8-killed", dns=[])
    received = enroll_until_issued(server, csr, time.monotonic() + 90)
    assert not trigger.exists()  # a worker did die on it
    wait_for("the worker restarted", lambda: len(workers(server)) == 2
             and workers(server) != before)
    log = server.log_path.read_text()
    assert "died (signal SIGKILL)" in log and "restarted (pid" in log
    ctx = open_store(data, db_url)
    try:
        check_nothing_lost(ctx, [first, received])
        record = ctx.authority.lookup(received)
        assert record is not None
        with ctx.db.read() as tx:
            types = [e.type for e in queries.list_audit(tx, request_id=record.request_id)]
        # Its worker died signing it; recovery (the pass, or the retry) finished it.
        assert types == ["request.approved", "request.recovering", "certificate.issued"]
    finally:
        ctx.db.dispose()
    stop_cleanly(server, workers(server))
