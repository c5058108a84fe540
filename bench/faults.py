"""Fault runs, the long versions of tests/faults/: `enroll serve` on a private PostgreSQL
(behind the fault proxy) under N clients for minutes while a fault repeats.

    python bench/faults.py restart --duration 300 --clients 50 --every 30 --outage 3
    python bench/faults.py cut --duration 300 --clients 50 --every 30 --outage 5
    python bench/faults.py latency --duration 120 --clients 50 --latency-ms 50
    python bench/faults.py none --duration 60 --clients 32 --workers 2 --json out.json

Faults: ``restart`` (``pg_ctl restart -m fast``, then down for ``--outage`` seconds),
``cut`` (the proxy resets every connection and refuses new ones for ``--outage``
seconds), ``latency`` (``--latency-ms`` each way, all the run), ``none``. Clients
alternate EST simpleenroll (Basic auth, TLS) and SCEP PKCSReq/CertPoll, and retry each
enrolment until it is issued (tests/faults/faultload.py). At the end the store is
audited: every certificate a client received is stored, valid and revocable (all are
revoked, the CRL must list them), no serial twice; requests left ``approved`` are
counted (the recovery pass of issue 10 resolves those). Exit status 1 on any protocol
violation (a 500, a 503 without Retry-After, a hang) or loss.

The private PostgreSQL 15 (tests/faults/privatepg.py) runs as the ``postgres`` OS user
when started as root; the machine's own PostgreSQL is never touched.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests" / "faults"), str(ROOT / "tests"), str(ROOT / "bench")]

from faultload import Target, audit, run_load  # noqa: E402
from faultproxy import FaultProxy  # noqa: E402
from loadclient.servers import start_enroll  # noqa: E402
from privatepg import PrivatePostgres  # noqa: E402


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("fault", choices=["restart", "cut", "latency", "none"])
    parser.add_argument("--duration", type=float, default=120.0, help="seconds of load")
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--workers", type=int, default=1, help="enroll serve --workers")
    parser.add_argument("--every", type=float, default=30.0, help="seconds between faults")
    parser.add_argument("--outage", type=float, default=3.0, help="seconds each fault lasts")
    parser.add_argument("--latency-ms", type=float, default=50.0)
    parser.add_argument("--json", type=Path, help="write the figures here too")
    args = parser.parse_args(argv)

    pg = PrivatePostgres()
    pg.start()
    proxy = FaultProxy(pg.port)
    server = None
    try:
        pg.create_database("bench")
        server = start_enroll(workers=args.workers, db="postgres",
                              pg_url=pg.url("bench", port=proxy.port),
                              extra_env={"ENROLL_LOG_LEVEL": "info",
                                         "ENROLL_LOG_REQUESTS": "1"})
        faults = 0
        end = time.monotonic() + args.duration

        def repeat() -> None:
            nonlocal faults
            while time.monotonic() + args.every < end:
                time.sleep(args.every)
                faults += 1
                if args.fault == "restart":
                    pg.restart()
                    pg.stop()
                    time.sleep(args.outage)
                    pg.start()
                elif args.fault == "cut":
                    proxy.refuse(args.outage)
                    proxy.cut()
                    time.sleep(args.outage)

        if args.fault == "latency":
            proxy.latency = args.latency_ms / 1000
        started = time.monotonic()
        tally = asyncio.run(run_load(
            Target.from_endpoints(server.info), args.clients, duration=args.duration,
            fault=repeat if args.fault in ("restart", "cut") else None,
            give_up_after=max(60.0, 4 * args.outage)))
        elapsed = time.monotonic() - started
        proxy.latency = 0.0
        result = audit(server.work / "data", pg.url("bench"), tally)
        log = (server.work / "server.log").read_text(errors="replace")
        figures: dict[str, Any] = {
            "fault": args.fault, "faults": faults, "clients": args.clients,
            "workers": args.workers, "seconds": round(elapsed, 1),
            "issued": len(tally.received),
            "issued_per_s": round(len(tally.received) / elapsed, 1),
            "answers": dict(tally.answers), "refusals": tally.failures_seen,
            "violations": len(tally.violations), "first_violations": tally.violations[:10],
            "gave_up_pending": len(tally.gave_up), "stuck_requests": len(result.stuck),
            "recovered": result.recovered,
            "stored": result.stored_certificates, "revoked": result.revoked,
            "server_500_lines": log.count("status=500"),
            "p50_ms": round(1000 * _percentile(tally.latencies, 0.50), 1),
            "p99_ms": round(1000 * _percentile(tally.latencies, 0.99), 1),
            "mean_ms": round(1000 * statistics.fmean(tally.latencies), 1)
            if tally.latencies else 0.0,
        }
        print(json.dumps(figures, indent=2))
        if args.json:
            args.json.write_text(json.dumps(figures, indent=2) + "\n")
        return 1 if tally.violations or figures["server_500_lines"] or result.stuck else 0
    finally:
        if server is not None:
            server.stop()
        proxy.close()
        pg.destroy()


if __name__ == "__main__":
    sys.exit(main())
