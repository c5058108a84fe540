"""F1, F5, F6: a real ``enroll serve`` on a private PostgreSQL while the database is
restarted, slowed down or cut off, under 50 clients (EST simpleenroll with Basic auth,
SCEP PKCSReq). During the fault a client may be refused, with a protocol answer only
(EST 503 + Retry-After, a SCEP FAILURE or PENDING), never a hang or a 500; it then
succeeds on retry, and nothing is lost (`faultload.audit`).

The long versions (minutes, more clients) are bench/faults.py.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from faultload import Tally, Target, audit, run_load
from faultproxy import FaultProxy
from privatepg import PrivatePostgres

pytestmark = pytest.mark.slow

CLIENTS = 50


def _serve(server_factory: Any, data_dir: Path, url: str) -> Any:
    return server_factory(data_dir, extra_env={"ENROLL_DATABASE_URL": url,
                                               "ENROLL_LOG_REQUESTS": "1"})


def _check(server: Any, url: str, tally: Tally, *, expect_refusals: bool) -> None:
    """What every fault test asserts once the clients are done; `url` reaches the
    database directly (not through the proxy)."""
    assert not tally.violations, "\n".join(tally.violations[:20]) + "\n" + tally.summary()
    protocols = {proto for proto, _ in tally.received}
    assert protocols == {"est", "scep"}, tally.summary()
    if expect_refusals:
        # The fault was seen (else the test proves nothing about it).
        assert tally.failures_seen > 0, tally.summary()
    result = audit(server.data_dir, url, tally)
    assert result.revoked == len(tally.received)
    # Requests the outage left `approved` (the database went away between storing the
    # request and storing its certificate) were signed and stored by the recovery pass
    # `audit` ran; none is left, and each was a refusal some client saw.
    assert result.stuck == [], result.stuck
    assert result.recovered <= tally.failures_seen, (result.recovered, tally.summary())
    print(tally.summary(), f"stored={result.stored_certificates} recovered={result.recovered}")
    log = server.log_path.read_text()
    assert "status=500" not in log, [line for line in log.splitlines() if "status=500" in line]


async def test_f1_postgresql_restarted_during_a_50_client_run(
        tmp_path: Path, private_pg: PrivatePostgres, pg_database: str,
        server_factory: Any) -> None:
    url = private_pg.url(pg_database)
    server = _serve(server_factory, tmp_path / "data", url)

    def restart() -> None:
        private_pg.restart()  # pg_ctl restart -m fast: every connection terminated
        time.sleep(2)
        # And a longer outage: down for 3 s, clients are refused meanwhile.
        private_pg.stop()
        time.sleep(3)
        private_pg.start()

    tally = await run_load(Target.from_endpoints(server.endpoints), CLIENTS, duration=10,
                           fault=restart, fault_after=2, give_up_after=25)
    _check(server, url, tally, expect_refusals=True)


async def test_f6_network_cut_between_worker_and_postgresql(
        tmp_path: Path, private_pg: PrivatePostgres, pg_database: str,
        fault_proxy: FaultProxy, server_factory: Any) -> None:
    url = private_pg.url(pg_database, port=fault_proxy.port)
    server = _serve(server_factory, tmp_path / "data", url)

    def cut() -> None:
        fault_proxy.refuse(5)
        assert fault_proxy.cut() > 0  # enroll's connections were open
        time.sleep(5)

    tally = await run_load(Target.from_endpoints(server.endpoints), CLIENTS, duration=10,
                           fault=cut, fault_after=2, give_up_after=25)
    assert fault_proxy.refused > 0
    _check(server, private_pg.url(pg_database), tally, expect_refusals=True)


async def test_f5_database_latency_50ms_each_way(
        tmp_path: Path, private_pg: PrivatePostgres, pg_database: str,
        fault_proxy: FaultProxy, server_factory: Any) -> None:
    url = private_pg.url(pg_database, port=fault_proxy.port)
    server = _serve(server_factory, tmp_path / "data", url)
    fault_proxy.latency = 0.05
    started = time.monotonic()
    tally = await run_load(Target.from_endpoints(server.endpoints), CLIENTS, duration=8,
                           give_up_after=25)
    elapsed = time.monotonic() - started
    _check(server, private_pg.url(pg_database), tally, expect_refusals=False)
    # Slow, not failing: every enrolment got its certificate without a refusal, and the
    # run ended within its bound (8 s of load plus the enrolments in flight).
    assert tally.failures_seen == 0, tally.summary()
    assert elapsed < 8 + 25
    # The latency was really there: no answer came back faster than one round trip.
    assert min(tally.latencies) >= 0.1, min(tally.latencies)
