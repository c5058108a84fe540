"""Soak: all three protocols at once against one `enroll serve` for a long time.

    python bench/soak.py [--duration 600] [--concurrency 32] [--workers 2] \
        [--db postgres|sqlite] [--pg-url URL] [--json out.json]

The concurrency is split over SCEP PKCSReq, EST simpleenroll (Basic, keep-alive) and
ACME (newOrder, real http-01 validation against a responder on loopback, finalize,
download), each virtual user looping until the time is up, with the clients of
bench/loadclient/. Every certificate received is checked (key, names, chain) and then
looked up in the store. Printed: per protocol issuances, errors, issuances/s and
p50/p95/p99; the server's resident memory (its whole process tree) sampled every 10 s.

Passes (exit 0) only with zero errors, every received certificate in the store with no
duplicate serial, and flat memory: the last sample at most 25 % above the first one
taken after the first minute (warm-up: caches, pools and connection counts settle).

The bench accounts place thousands of orders each, far past the per-account ACME limits
an operator would set for real clients, so those limits are lifted in this server's
config (the limit's own behaviour is tested in the suite, tests/doors/test_throttles.py).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from loadclient import acme, est, scep, servers  # noqa: E402
from loadclient.certcheck import Checked  # noqa: E402
from loadclient.measure import percentile, tree_pids  # noqa: E402

SAMPLE_EVERY = 10.0
WARMUP_S = 60.0
FLAT = 1.25


def rss_kib(root: int) -> int:
    total = 0
    for pid in tree_pids(root):
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total


class Lane:
    """One protocol's virtual users and what they produced."""

    def __init__(self, name: str, users: list[Any], make_job: Callable[[], Any],
                 send: Callable[[Any, Any], Awaitable[Any]]) -> None:
        self.name, self.users, self.make_job, self.send = name, users, make_job, send
        self.latencies: list[float] = []
        self.errors: list[str] = []
        self.artifacts: list[Any] = []

    async def run(self, deadline: float) -> None:
        async def user(u: Any) -> None:
            while time.monotonic() < deadline:
                job = await asyncio.to_thread(self.make_job)
                began = time.perf_counter()
                try:
                    self.artifacts.append(await self.send(u, job))
                except Exception as exc:  # noqa: BLE001 - every failure is counted
                    self.errors.append(f"{type(exc).__name__}: {str(exc)[:200]}")
                    continue
                self.latencies.append(time.perf_counter() - began)

        await asyncio.gather(*(user(u) for u in self.users))


def stored_serials(server: servers.Server, db: str, pg_url: str) -> list[str]:
    from sqlalchemy import create_engine, text

    from enroll.store.db import normalise_url

    url = normalise_url(pg_url) if db == "postgres" else \
        f"sqlite:///{server.work / 'data' / 'enroll.db'}"
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return [str(r[0]).lower() for r in conn.execute(text(
                "SELECT serial FROM certificates"))]
    finally:
        engine.dispose()


async def soak(args: argparse.Namespace) -> dict[str, Any]:
    dns_server, responder = acme.DnsServer(), acme.Http01Responder()
    await dns_server.start()
    await responder.start()
    env = {"ENROLL_ACME_RESOLVER": f"127.0.0.1:{dns_server.port}",
           "ENROLL_ACME_HTTP01_PORT": str(responder.port), "ENROLL_ACME_ALLOW_LOOPBACK": "1"}
    server = await asyncio.to_thread(servers.start_enroll, workers=args.workers, db=args.db,
                                     pg_url=args.pg_url, extra_env=env,
                                     config_extra=servers.ACME_LIMITS_LIFTED)
    info = server.info
    per = [args.concurrency // 3 + (1 if i < args.concurrency % 3 else 0) for i in range(3)]
    devices = await asyncio.to_thread(lambda: [scep.make_device() for _ in range(8)])
    ra, scep_trust = await scep.get_ca(info["scep"]["url"], info["ca_chain_url"])
    est_target = est.Target(info["est"]["url"], info["est"]["username"],
                            info["est"]["password"], info["tls_ca_bundle"])
    est_trust = await est.load_trust(est_target)
    acme_target = acme.Target(info["acme"]["directory"], info["tls_ca_bundle"],
                              info["ca_chain_url"], responder)
    acme_trust = await acme.load_trust(acme_target)
    scep_sessions = scep.open_sessions(per[0])
    est_sessions = est.open_sessions(est_target, per[1], "keepalive")
    accounts = await acme.open_accounts(acme_target, per[2])
    lanes = [
        Lane("scep", scep_sessions,
             lambda: scep.make_jobs(1, ra, info["scep"]["challenge"], devices)[0],
             scep.send_to(info["scep"]["url"])),
        Lane("est", est_sessions, lambda: est.make_jobs(1)[0], est.send_to(est_target)),
        Lane("acme", accounts, lambda: acme.make_jobs(1)[0], acme.issue_with(acme_target)),
    ]
    samples: list[tuple[float, int]] = []
    started = time.monotonic()
    deadline = started + args.duration

    async def sample() -> None:
        while time.monotonic() < deadline:
            samples.append((time.monotonic() - started, rss_kib(server.pid)))
            await asyncio.sleep(SAMPLE_EVERY)

    try:
        await asyncio.gather(sample(), *(lane.run(deadline) for lane in lanes))
        wall = time.monotonic() - started
        samples.append((wall, rss_kib(server.pid)))
        serials = set(await asyncio.to_thread(stored_serials, server, args.db, args.pg_url))
    finally:
        for s in scep_sessions + est_sessions:
            await s.close()
        await acme.close_accounts(accounts)
        await asyncio.to_thread(server.stop)
        await responder.close()
        dns_server.close()
    checks: dict[str, Checked] = {
        "scep": scep.check(lanes[0].artifacts, ra=ra, trust=scep_trust),
        "est": est.check(lanes[1].artifacts, trust=est_trust),
        "acme": acme.check(lanes[2].artifacts, trust=acme_trust),
    }
    rows = []
    received: list[str] = []
    for lane in lanes:
        checked = checks[lane.name]
        lat = sorted(lane.latencies)
        received += [format(c.serial_number, "x") for c in checked.good]
        rows.append({"protocol": lane.name, "users": len(lane.users), "ok": len(checked.good),
                     "errors": len(lane.errors) + len(checked.bad),
                     "first_errors": (lane.errors + checked.bad)[:3],
                     "per_s": len(checked.good) / wall, "p50_ms": percentile(lat, 50) * 1000,
                     "p95_ms": percentile(lat, 95) * 1000, "p99_ms": percentile(lat, 99) * 1000})
    warm = next((kib for t, kib in samples if t >= min(WARMUP_S, wall / 2)), samples[0][1])
    last = samples[-1][1]
    missing = [s for s in received if s not in serials]
    return {"duration_s": wall, "concurrency": args.concurrency, "workers": args.workers,
            "db": args.db, "rows": rows, "rss_kib": samples, "rss_warm_kib": warm,
            "rss_last_kib": last, "memory_flat": last <= warm * FLAT,
            "received": len(received), "missing_from_store": len(missing),
            "duplicate_serials": len(received) - len(set(received))}


def report(result: dict[str, Any]) -> str:
    lines = [f"soak: {result['duration_s']:.0f} s, c={result['concurrency']}, "
             f"workers={result['workers']}, db={result['db']}",
             f"{'protocol':8} {'users':>5} {'ok':>7} {'errors':>6} {'per_s':>7} "
             f"{'p50_ms':>7} {'p95_ms':>7} {'p99_ms':>7}"]
    for r in result["rows"]:
        lines.append(f"{r['protocol']:8} {r['users']:>5} {r['ok']:>7} {r['errors']:>6} "
                     f"{r['per_s']:>7.1f} {r['p50_ms']:>7.1f} {r['p95_ms']:>7.1f} "
                     f"{r['p99_ms']:>7.1f}")
        for e in r["first_errors"]:
            lines.append(f"    {e}")
    lines.append(f"memory (server tree RSS): after warm-up {result['rss_warm_kib'] / 1024:.0f} "
                 f"MiB, at the end {result['rss_last_kib'] / 1024:.0f} MiB, "
                 f"{'flat' if result['memory_flat'] else 'GROWING'}")
    lines.append(f"store: {result['received']} certificates received, "
                 f"{result['missing_from_store']} missing from the store, "
                 f"{result['duplicate_serials']} duplicate serials")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=600.0)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--db", choices=("sqlite", "postgres"), default="postgres")
    parser.add_argument("--pg-url", default=servers.DEFAULT_PG,
                        help="a database the soak may empty first (default: bench)")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    result = asyncio.run(soak(args))
    print(report(result))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    ok = (all(r["errors"] == 0 for r in result["rows"]) and result["memory_flat"]
          and result["missing_from_store"] == 0 and result["duplicate_serials"] == 0)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
