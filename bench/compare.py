"""enroll against its peer: same run, same load client, figures and ratio side by side.

    python bench/compare.py acme --mode validate,skip --concurrency 1,8 --requests 200 \
        [--workers 1,2] [--db sqlite,postgres] [--json out.json]
    python bench/compare.py scep --concurrency 1,8 --requests 200
    python bench/compare.py est --mode keepalive,newconn --concurrency 1,8 --requests 200

Peers, started here on loopback beside `enroll serve`: pebble (Debian `pebble`) for ACME,
micromdm's scepserver (Debian `scep`) for SCEP. EST's peer (globalsign estserver) is not
packaged: its figures from PERFORMANCE.md are printed as a labelled reference instead.

One asyncio + aiohttp client drives every server (bench/loadclient/): keys, CSRs and
messages are made and ACME accounts registered before the clock starts; one keep-alive
session per virtual user; every certificate is checked after the clock stops (public key
is the CSR's, names as asked, chains to the CA the server published). Measured in the
timed phase only: issuances/s (of certificates that passed the check), p50/p95/p99
latency per issuance, errors, server CPU per issuance (the server's process tree from
/proc), and cores busy for the server, this client, and PostgreSQL (`--db postgres`).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import functools
import json
import os
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from loadclient import acme, est, scep, servers
from loadclient.certcheck import Checked
from loadclient.measure import CpuMeter, run_users, summarise

# PERFORMANCE.md, 2026-12-01 (globalsign estserver built from source; not run here).
EST_REFERENCE: dict[tuple[str, int], dict[str, Any]] = {
    ("keepalive", 8): {"per_s": 3371.0, "server_cpu_ms_per_issuance": 0.3},
    ("keepalive", 1): {"per_s": 1876.0},
    ("newconn", 1): {"per_s": 148.0},
}
EST_REFERENCE_NAME = "estserver (PERFORMANCE.md ref., not run)"
PEERS = {"acme": "pebble", "scep": "scepserver", "est": EST_REFERENCE_NAME}
MODES = {"acme": ("validate", "skip"), "scep": ("pkcsreq",), "est": est.MODES}
SCEP_PEER_CHALLENGE = "bench-scepserver-challenge"  # noqa: S105 - a throw-away peer


class Run:
    """One invocation: the options and the rows measured so far."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.rows: list[dict[str, Any]] = []

    def levels(self) -> list[int]:
        return [int(c) for c in self.args.concurrency.split(",")]

    def enroll_variants(self) -> list[tuple[int, str]]:
        return [(int(w), db) for db in self.args.db.split(",")
                for w in self.args.workers.split(",")]

    def wants(self, who: str) -> bool:
        return who in self.args.servers.split(",")

    def record(self, row: dict[str, Any]) -> None:
        self.rows.append(row)
        print(f"  {row['server']:<10} {row['mode']:<9} c={row['c']:<3} w={row['workers']} "
              f"{row['db']:<8} {row['ok']:>5} ok {row['errors']:>3} err "
              f"{row['per_s']:>8.1f}/s p99 {row['p99_ms']:.1f} ms  "
              f"cpu {row['server_cpu_ms_per_issuance']:.2f} ms/iss", file=sys.stderr,
              flush=True)


async def measure(run: Run, server: servers.Server, mode: str, c: int, users: Sequence[Any],
                  make_jobs: Callable[[int], list[Any]], one: Any,
                  check: Callable[[list[Any]], Checked],
                  workers: int | str = "-", db: str = "-") -> None:
    """Warm up, then the timed phase, then the check of every certificate."""
    warmup = run.args.warmup if run.args.warmup is not None else 2 * c
    if warmup:
        await run_users(users, make_jobs(warmup), one, None)
    jobs = make_jobs(run.args.requests)
    phase = await run_users(users, jobs, one, CpuMeter(server.pid, server.pg_database))
    checked = check(phase.artifacts)
    run.record({"protocol": run.args.protocol, "server": server.name, "mode": mode, "c": c,
                "workers": workers, "db": db, "requests": len(jobs)}
               | summarise(phase, checked))


# -- ACME -------------------------------------------------------------------------------

async def run_acme(run: Run) -> None:
    dns_server, responder = acme.DnsServer(), acme.Http01Responder()
    await dns_server.start()
    await responder.start()
    try:
        for mode in run.args.mode.split(","):
            skip = mode == "skip"
            if run.wants("peer"):
                server = await asyncio.to_thread(servers.start_pebble, skip_validation=skip,
                                                 dns_port=dns_server.port,
                                                 http01_port=responder.port)
                target = acme.Target(server.info["directory"], server.info["tls_ca"],
                                     server.info["roots_url"], responder)
                await acme_levels(run, server, target, mode)
            if run.wants("enroll"):
                for workers, db in run.enroll_variants():
                    env = {"ENROLL_ACME_RESOLVER": f"127.0.0.1:{dns_server.port}",
                           "ENROLL_ACME_HTTP01_PORT": str(responder.port),
                           "ENROLL_ACME_ALLOW_LOOPBACK": "1"}
                    if skip:
                        env["ENROLL_ACME_SKIP_VALIDATION"] = "true"
                    server = await asyncio.to_thread(
                        servers.start_enroll, workers=workers, db=db, pg_url=run.args.pg_url,
                        extra_env=env, config_extra=servers.ACME_LIMITS_LIFTED)
                    target = acme.Target(server.info["acme"]["directory"],
                                         server.info["tls_ca_bundle"],
                                         server.info["ca_chain_url"], responder)
                    await acme_levels(run, server, target, mode, workers, db)
    finally:
        await responder.close()
        dns_server.close()


async def acme_levels(run: Run, server: servers.Server, target: acme.Target, mode: str,
                      workers: int | str = "-", db: str = "-") -> None:
    try:
        trust = await acme.load_trust(target)
        for c in run.levels():
            accounts = await acme.open_accounts(target, c)
            fetches = target.responder.fetches
            try:
                await measure(run, server, mode, c, accounts, acme.make_jobs,
                              acme.issue_with(target),
                              functools.partial(acme.check, trust=trust), workers, db)
                row = run.rows[-1]
                issued = row["requests"] + (run.args.warmup if run.args.warmup is not None
                                            else 2 * c)
                row["http01_fetches_per_issuance"] = \
                    (target.responder.fetches - fetches) / issued
            finally:
                await acme.close_accounts(accounts)
    finally:
        await asyncio.to_thread(server.stop)


# -- SCEP -------------------------------------------------------------------------------

async def run_scep(run: Run) -> None:
    devices = await asyncio.to_thread(lambda: [scep.make_device()
                                               for _ in range(scep.KEY_POOL)])
    if run.wants("peer"):
        server = await asyncio.to_thread(servers.start_scepserver,
                                         challenge=SCEP_PEER_CHALLENGE)
        await scep_levels(run, server, server.info["url"], SCEP_PEER_CHALLENGE, devices)
    if run.wants("enroll"):
        for workers, db in run.enroll_variants():
            server = await asyncio.to_thread(servers.start_enroll, workers=workers, db=db,
                                             pg_url=run.args.pg_url)
            # enroll's GetCACert carries the RA and the RSA issuing CA, not the EC root:
            # the CA chain it publishes at /ca/<name>/chain.pem adds the trust anchor.
            await scep_levels(run, server, server.info["scep"]["url"],
                              server.info["scep"]["challenge"], devices, workers, db,
                              chain_url=server.info["ca_chain_url"])


async def scep_levels(run: Run, server: servers.Server, url: str, challenge: str,
                      devices: list[scep.Device], workers: int | str = "-",
                      db: str = "-", chain_url: str | None = None) -> None:
    try:
        ra, trust = await scep.get_ca(url, chain_url)
        for c in run.levels():
            sessions = scep.open_sessions(c)
            try:
                await measure(run, server, "pkcsreq", c, sessions,
                              lambda n: scep.make_jobs(n, ra, challenge, devices),
                              scep.send_to(url),
                              functools.partial(scep.check, ra=ra, trust=trust), workers, db)
            finally:
                for session in sessions:
                    await session.close()
    finally:
        await asyncio.to_thread(server.stop)


# -- EST --------------------------------------------------------------------------------

async def run_est(run: Run) -> None:
    if run.wants("peer"):
        for mode in run.args.mode.split(","):
            for c in run.levels():
                ref = EST_REFERENCE.get((mode, c))
                if ref is not None:
                    run.rows.append({"protocol": "est", "server": EST_REFERENCE_NAME,
                                     "mode": mode, "c": c, "workers": "-", "db": "-",
                                     "reference": True} | ref)
    if run.wants("enroll"):
        for workers, db in run.enroll_variants():
            server = await asyncio.to_thread(servers.start_enroll, workers=workers, db=db,
                                             pg_url=run.args.pg_url)
            info = server.info["est"]
            target = est.Target(info["url"], info["username"], info["password"],
                                server.info["tls_ca_bundle"])
            try:
                trust = await est.load_trust(target)
                for mode in run.args.mode.split(","):
                    for c in run.levels():
                        sessions = est.open_sessions(target, c, mode)
                        try:
                            await measure(run, server, mode, c, sessions, est.make_jobs,
                                          est.send_to(target),
                                          functools.partial(est.check, trust=trust),
                                          workers, db)
                        finally:
                            for session in sessions:
                                await session.close()
            finally:
                await asyncio.to_thread(server.stop)


# -- output -----------------------------------------------------------------------------

def _f(value: Any, digits: int = 1) -> str:
    return "—" if value is None else f"{value:,.{digits}f}"


def _errors(row: dict[str, Any]) -> str:
    dup = row.get("duplicate_serials", 0)
    return f"{row['errors']} (+{dup} duplicate serials)" if dup else str(row["errors"])


def ratios(rows: list[dict[str, Any]]) -> None:
    """`vs_peer` on enroll rows (the peer row with the same mode and c); `vs_1_worker`
    on rows with more workers (same mode, c, db)."""
    for row in rows:
        if row["server"] != "enroll":
            continue
        peer = next((p for p in rows if p["server"] == PEERS[row["protocol"]]
                     and p["mode"] == row["mode"] and p["c"] == row["c"]), None)
        if peer is not None and peer.get("per_s"):
            row["vs_peer"] = row["per_s"] / peer["per_s"]
        one = next((p for p in rows if p["server"] == "enroll" and p["workers"] == 1
                    and p["mode"] == row["mode"] and p["c"] == row["c"]
                    and p["db"] == row["db"]), None)
        if one is not None and row["workers"] != 1 and one.get("per_s"):
            row["vs_1_worker"] = row["per_s"] / one["per_s"]


def table(rows: list[dict[str, Any]]) -> str:
    head = ["server", "mode", "c", "workers", "db", "ok", "errors", "issuances/s",
            "p50 ms", "p95 ms", "p99 ms", "server CPU ms/iss",
            "cores busy: server / client / db / whole machine", "enroll/peer", "vs 1 worker"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        ref = r.get("reference", False)
        cores = "—" if ref else (f"{r['server_cores']:.2f} / {r['client_cores']:.2f} / "
                                 + (f"{r['db_cores']:.2f}" if "db_cores" in r else "—")
                                 + f" / {r['machine_cores']:.2f}")
        cells = [r["server"], r["mode"], str(r["c"]), str(r["workers"]), r["db"],
                 "—" if ref else str(r["ok"]), "—" if ref else _errors(r),
                 _f(r.get("per_s")), _f(r.get("p50_ms")), _f(r.get("p95_ms")),
                 _f(r.get("p99_ms")), _f(r.get("server_cpu_ms_per_issuance"), 2), cores,
                 f"{r['vs_peer']:.2f}×" if "vs_peer" in r else "",
                 f"{r['vs_1_worker']:.2f}×" if "vs_1_worker" in r else ""]
        lines.append("| " + " | ".join(cells) + " |")
    notes = [f"- {r['server']} {r['mode']} c={r['c']} w={r['workers']} {r['db']}: "
             f"{r['errors']} errors, first: {r['first_errors']}"
             for r in rows if r.get("errors")]
    return "\n".join(lines + ([""] + notes if notes else []))


def _commit() -> str:
    try:
        done = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, cwd=Path(__file__).parent, check=False, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return done.stdout.strip() or "unknown"


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("protocol", choices=["acme", "scep", "est"])
    parser.add_argument("--mode", help="acme: validate,skip; est: keepalive,newconn; "
                                       "scep: pkcsreq (default: all)")
    parser.add_argument("--concurrency", default="1,8", help="virtual users, e.g. 1,8,32")
    parser.add_argument("--requests", type=int, default=200,
                        help="issuances in each timed phase")
    parser.add_argument("--warmup", type=int, help="untimed issuances first (default 2×c)")
    parser.add_argument("--workers", default="1", help="enroll workers, e.g. 1,2")
    parser.add_argument("--db", default="sqlite", help="enroll database: sqlite,postgres")
    parser.add_argument("--pg-url", default=servers.DEFAULT_PG,
                        help="scratch PostgreSQL database (its public schema is dropped "
                             "and recreated for every server start)")
    parser.add_argument("--servers", default="enroll,peer", help="enroll, peer, or both")
    parser.add_argument("--json", type=Path, help="write the raw figures here")
    args = parser.parse_args(argv)
    modes = MODES[args.protocol]
    args.mode = args.mode or ",".join(modes)
    for mode in args.mode.split(","):
        if mode not in modes:
            parser.error(f"{args.protocol} modes are {', '.join(modes)}")
    for db in args.db.split(","):
        if db not in ("sqlite", "postgres"):
            parser.error("--db: sqlite, postgres")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    run = Run(args)
    load_before = os.getloadavg()
    began = dt.datetime.now(dt.UTC)
    asyncio.run({"acme": run_acme, "scep": run_scep, "est": run_est}[args.protocol](run))
    ratios(run.rows)
    load_after = os.getloadavg()
    print(f"\n### {args.protocol.upper()} — {began:%Y-%m-%d %H:%M} UTC, commit {_commit()}, "
          f"{os.cpu_count()} CPUs, load average {load_before[0]:.1f} before / "
          f"{load_after[0]:.1f} after\n")
    print(table(run.rows))
    if args.json:
        args.json.write_text(json.dumps({
            "protocol": args.protocol, "started": began.isoformat(), "commit": _commit(),
            "cpus": os.cpu_count(), "loadavg_before": load_before,
            "loadavg_after": load_after, "argv": sys.argv[1:], "rows": run.rows}, indent=2))
    failed = any(r.get("errors") or (not r.get("reference") and not r.get("ok"))
                 for r in run.rows)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
