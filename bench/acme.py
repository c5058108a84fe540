"""ACME full-flow load client: issuances/s and p50/p95/p99 at several concurrencies.

    python bench/acme.py [--concurrency 1,8,32] [--requests 100] [--modes validate,skip]
                         [--pg postgresql://postgres@127.0.0.1:5432/postgres --workers 2]
                         [--pebble]

One issuance = newOrder -> authz -> challenge -> (validation) -> finalize -> poll ->
certificate download, every request JWS-signed with ES256 by `enroll.protocols.acme.client`.
Each concurrent worker registers one account before the clock starts. The script starts
everything itself on loopback: `enroll serve` (embedded default, fresh data dir), a tiny
DNS server answering A 127.0.0.1, and an http-01 responder; with ``--pebble`` the Debian
``pebble`` runs against the same client, responder and DNS for a ratio in the same run.

Modes: ``validate`` = real http-01 over loopback; ``skip`` = enroll's test-only
``acme.skip_validation`` (pebble: PEBBLE_VA_ALWAYS_VALID=1).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import dns.message
import dns.rdatatype
import dns.rrset
import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from enroll.protocols.acme.client import AcmeClient, Http01Responder  # noqa: E402

NODELAY = [(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)]


class Dns:
    """A UDP DNS server on loopback: A 127.0.0.1 for every name."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.stop = threading.Event()
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self) -> None:
        while not self.stop.is_set():
            try:
                data, peer = self.sock.recvfrom(4096)
                query = dns.message.from_wire(data)
            except (OSError, dns.exception.DNSException):
                continue
            reply = dns.message.make_response(query)
            for q in query.question:
                if q.rdtype == dns.rdatatype.A:
                    reply.answer.append(dns.rrset.from_text(q.name, 5, "IN", "A", "127.0.0.1"))
            self.sock.sendto(reply.to_wire(), peer)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def tree_cpu(pid: int) -> float:
    """CPU seconds of `pid` and its live descendants (workers)."""
    total, tick = 0.0, os.sysconf("SC_CLK_TCK")
    pids = {pid}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(stat[1]) in pids or int(entry.name) == pid:
                pids.add(int(entry.name))
    for p in pids:
        try:
            stat = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += sum(int(v) for v in stat[11:13]) / tick
    return total


class Server:
    def __init__(self, proc: subprocess.Popen[bytes], directory: str, ca: str,
                 cleanup: Any = None) -> None:
        self.proc, self.directory, self.ca, self.cleanup = proc, directory, ca, cleanup

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        if self.cleanup:
            self.cleanup()


def clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(("ENROLL_", "PEBBLE_"))
            and k not in ("SSL_CERT_FILE", "CURL_CA_BUNDLE", "REQUESTS_CA_BUNDLE")}


def start_enroll(mode: str, dns_port: int, http01_port: int, pg: str | None,
                 workers: int) -> Server:
    data = Path(tempfile.mkdtemp(prefix="acme-bench-"))
    env = clean_env() | {
        "ENROLL_DATA_DIR": str(data), "ENROLL_ACME_RESOLVER": f"127.0.0.1:{dns_port}",
        "ENROLL_ACME_HTTP01_PORT": str(http01_port), "ENROLL_ACME_ALLOW_LOOPBACK": "1",
        "ENROLL_LOG_LEVEL": "warning"}
    if mode == "skip":
        env["ENROLL_ACME_SKIP_VALIDATION"] = "1"
    cleanup = None
    if pg:
        import psycopg

        name = "acme_bench_" + secrets.token_hex(4)
        with psycopg.connect(pg, autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")
        env["ENROLL_DATABASE_URL"] = pg.rsplit("/", 1)[0] + "/" + name

        def cleanup() -> None:
            with psycopg.connect(pg, autocommit=True) as conn:
                conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    proc = subprocess.Popen(
        [sys.executable, "-m", "enroll.cli.main", "serve", "--http-port", str(free_port()),
         "--https-port", str(free_port()), "--workers", str(workers)],
        env=env, stdout=subprocess.DEVNULL, stderr=open(data / "serve.log", "wb"))  # noqa: SIM115
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            endpoints = json.loads((data / "endpoints.json").read_text())
            r = httpx.get(endpoints["acme"]["directory"], verify=endpoints["tls_ca_bundle"],
                          trust_env=False, timeout=2)
            if r.status_code == 200:
                time.sleep(0.5 if workers > 1 else 0)
                return Server(proc, endpoints["acme"]["directory"],
                              endpoints["tls_ca_bundle"], cleanup)
        except (OSError, ValueError, KeyError, httpx.HTTPError):
            pass
        time.sleep(0.2)
    proc.kill()
    raise RuntimeError((data / "serve.log").read_text()[-2000:])


def start_pebble(mode: str, dns_port: int, http01_port: int) -> Server:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    work = Path(tempfile.mkdtemp(prefix="pebble-bench-"))
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.UTC)
    import ipaddress

    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(hours=1))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([
                x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .sign(key, hashes.SHA256()))
    (work / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (work / "key.pem").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    port = free_port()
    (work / "config.json").write_text(json.dumps({"pebble": {
        "listenAddress": f"127.0.0.1:{port}",
        "managementListenAddress": f"127.0.0.1:{free_port()}",
        "certificate": str(work / "cert.pem"), "privateKey": str(work / "key.pem"),
        "httpPort": http01_port, "tlsPort": free_port(), "ocspResponderURL": "",
        "externalAccountBindingRequired": False}}))
    env = clean_env() | {"PEBBLE_VA_NOSLEEP": "1", "PEBBLE_WFE_NONCEREJECT": "0",
                         "PEBBLE_AUTHZREUSE": "0"}
    if mode == "skip":
        env["PEBBLE_VA_ALWAYS_VALID"] = "1"
    proc = subprocess.Popen(["pebble", "-config", str(work / "config.json"), "-strict=false",
                             "-dnsserver", f"127.0.0.1:{dns_port}"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    directory = f"https://127.0.0.1:{port}/dir"
    for _ in range(100):
        try:
            httpx.get(directory, verify=str(work / "cert.pem"), trust_env=False, timeout=1)
            return Server(proc, directory, str(work / "cert.pem"))
        except httpx.HTTPError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("pebble did not start")


async def run_level(server: Server, responder: Http01Responder, concurrency: int,
                    total: int) -> dict[str, float]:
    limits = httpx.Limits(max_connections=concurrency + 4)
    sent = [0]

    async def count(_request: httpx.Request) -> None:
        sent[0] += 1

    transport = httpx.AsyncHTTPTransport(verify=server.ca, limits=limits,
                                         socket_options=NODELAY)
    async with httpx.AsyncClient(verify=server.ca, trust_env=False, timeout=60, limits=limits,
                                 event_hooks={"request": [count]}, transport=transport) as http:
        clients = [AcmeClient(http, server.directory) for _ in range(concurrency)]
        for c in clients:
            await c.register()
        latencies: list[float] = []
        failures: list[str] = []
        queue = list(range(total))

        async def worker(client: AcmeClient) -> None:
            while queue:
                i = queue.pop()
                started = time.perf_counter()
                try:
                    await client.issue([f"b{i}-{secrets.token_hex(3)}.bench.example"],
                                       responder)
                    latencies.append(time.perf_counter() - started)
                except Exception as exc:  # noqa: BLE001 - count and report failures
                    failures.append(f"{type(exc).__name__}: {str(exc)[:160]}")

        sent[0] = 0
        cpu0 = tree_cpu(server.proc.pid)
        t0 = time.perf_counter()
        await asyncio.gather(*(worker(c) for c in clients))
        wall = time.perf_counter() - t0
        cpu = tree_cpu(server.proc.pid) - cpu0
    latencies.sort()

    def pct(p: float) -> float:
        return latencies[min(len(latencies) - 1, int(p * len(latencies)))] * 1000

    return {"c": concurrency, "ok": len(latencies), "failed": len(failures),
            "per_s": len(latencies) / wall, "p50": pct(0.50), "p95": pct(0.95),
            "p99": pct(0.99), "cpu_ms": cpu * 1000 / max(1, len(latencies)),
            "req": sent[0] / max(1, len(latencies)),
            "first_failure": failures[0] if failures else ""}


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--concurrency", default="1,8,32")
    parser.add_argument("--requests", type=int, default=100)
    parser.add_argument("--modes", default="validate,skip")
    parser.add_argument("--pg", help="PostgreSQL admin URL; a scratch database is made")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--pebble", action="store_true")
    parser.add_argument("--no-enroll", action="store_true")
    args = parser.parse_args()
    dns_server = Dns()
    responder = Http01Responder()
    await responder.start()
    levels = [int(c) for c in args.concurrency.split(",")]
    targets = []
    for mode in args.modes.split(","):
        if not args.no_enroll:
            label = f"enroll {'pg' if args.pg else 'sqlite'} w{args.workers}"
            targets.append((label, mode, lambda m=mode: start_enroll(
                m, dns_server.port, responder.port, args.pg, args.workers)))
        if args.pebble:
            targets.append(("pebble", mode, lambda m=mode: start_pebble(
                m, dns_server.port, responder.port)))
    print(f"{'server':<18} {'mode':<9} {'c':>3} {'ok':>5} {'fail':>4} {'iss/s':>7} "
          f"{'p50ms':>7} {'p95ms':>7} {'p99ms':>7} {'cpu ms/iss':>10} {'req/iss':>7}")
    for label, mode, start in targets:
        server = start()
        try:
            for c in levels:
                total = max(args.requests, 2 * c)
                r = await asyncio.wait_for(run_level(server, responder, c, total), 180)
                print(f"{label:<18} {mode:<9} {r['c']:>3} {r['ok']:>5} {r['failed']:>4} "
                      f"{r['per_s']:>7.1f} {r['p50']:>7.1f} {r['p95']:>7.1f} {r['p99']:>7.1f} "
                      f"{r['cpu_ms']:>10.1f} {r['req']:>7.1f}  {r['first_failure']}",
                      flush=True)
        except TimeoutError:
            print(f"{label:<18} {mode:<9} timed out (deadlock?)", flush=True)
        finally:
            server.stop()
    await responder.close()


if __name__ == "__main__":
    asyncio.run(main())
