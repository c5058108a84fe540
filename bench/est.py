"""EST simpleenroll benchmark over real HTTPS against `enroll serve`.

    python bench/est.py                          # starts enroll serve in a temp data dir
    python bench/est.py --endpoints enroll-data/endpoints.json   # a running server
    python bench/est.py -n 3000 -c 1 -c 8 -c 32 --mode keepalive --mode newconn

For each mode (``keepalive``: one TLS connection per client, reused; ``newconn``: a new
TLS connection, full handshake, per request) and concurrency, prints issuances/s,
p50/p95/p99 latency in ms, and, when the server was started here, the server's CPU
milliseconds per issuance. CSRs (P-256) are made before the clock starts; the client is
a minimal asyncio HTTP/1.1 client so it costs as little CPU as a Python client can.
Every answer must be 200 with a certificate, or the run fails.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.parse
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from enroll.testing import make_csr, make_key  # noqa: E402


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(pct / 100 * (len(ordered) - 1))))]


def make_bodies(n: int) -> list[bytes]:
    key = make_key()  # one key, distinct names: each request is a new transaction
    return [base64.encodebytes(make_csr(key, cn=f"bench-{os.getpid()}-{time.time_ns()}-{i}")
                               .public_bytes(serialization.Encoding.DER)) for i in range(n)]


class Target:
    def __init__(self, url: str, user: str, password: str, ca: str) -> None:
        parts = urllib.parse.urlsplit(url)
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 443
        self.path = f"{parts.path}/simpleenroll"
        self.auth = base64.b64encode(f"{user}:{password}".encode()).decode()
        self.ssl = ssl.create_default_context(cafile=ca)

    def request(self, body: bytes, keep_alive: bool) -> bytes:
        return (f"POST {self.path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
                f"Authorization: Basic {self.auth}\r\n"
                f"Content-Type: application/pkcs10\r\nContent-Length: {len(body)}\r\n"
                f"Connection: {'keep-alive' if keep_alive else 'close'}\r\n\r\n"
                ).encode() + body


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    body = await reader.readexactly(length) if length else b""
    return status, body


async def _worker(target: Target, bodies: list[bytes], keep_alive: bool,
                  latencies: list[float], failures: list[str]) -> None:
    conn: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
    while bodies:
        body = bodies.pop()
        started = time.perf_counter()
        if conn is None:
            conn = await asyncio.open_connection(target.host, target.port, ssl=target.ssl,
                                                 server_hostname=target.host)
        reader, writer = conn
        writer.write(target.request(body, keep_alive))
        status, answer = await _read_response(reader)
        latencies.append(time.perf_counter() - started)
        if status != 200 or not answer:
            failures.append(f"{status}: {answer[:80]!r}")
        if not keep_alive:
            writer.close()
            await writer.wait_closed()
            conn = None
    if conn is not None:
        conn[1].close()


async def run_level(target: Target, bodies: list[bytes], concurrency: int,
                    keep_alive: bool) -> tuple[float, list[float], list[str]]:
    latencies: list[float] = []
    failures: list[str] = []
    queue = list(bodies)
    started = time.perf_counter()
    await asyncio.gather(*(_worker(target, queue, keep_alive, latencies, failures)
                           for _ in range(concurrency)))
    return time.perf_counter() - started, latencies, failures


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def start_server(data_dir: Path) -> tuple[subprocess.Popen[bytes], dict[str, Any]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ENROLL_")}
    env.update({"ENROLL_DATA_DIR": str(data_dir), "ENROLL_LOG_LEVEL": "warning"})
    proc = subprocess.Popen([sys.executable, "-m", "enroll.cli.main", "serve", "--http-port",
                             "0", "--https-port", "0"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    endpoints = data_dir / "endpoints.json"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if endpoints.exists():
            try:
                info: dict[str, Any] = json.loads(endpoints.read_text())
                return proc, info
            except ValueError:
                pass
        time.sleep(0.2)
    proc.kill()
    raise SystemExit("enroll serve did not start")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--endpoints", type=Path, help="endpoints.json of a running server")
    parser.add_argument("-n", type=int, default=2000, help="requests per keep-alive level")
    parser.add_argument("--newconn-n", type=int, default=600,
                        help="requests per new-connection level")
    parser.add_argument("-c", type=int, action="append", help="concurrency (repeatable)")
    parser.add_argument("--mode", action="append", choices=["keepalive", "newconn"])
    args = parser.parse_args()
    levels = args.c or [1, 8, 32]
    modes = args.mode or ["keepalive", "newconn"]

    proc = None
    tmp = None
    if args.endpoints:
        info = json.loads(args.endpoints.read_text())
    else:
        tmp = tempfile.TemporaryDirectory(prefix="enroll-bench-est-")
        proc, info = start_server(Path(tmp.name) / "data")
        time.sleep(1.0)
    est = info["est"]
    target = Target(est["url"], est["username"], est["password"], info["tls_ca_bundle"])
    print(f"target {est['url']}  (python {sys.version.split()[0]}, "
          f"{os.cpu_count()} CPUs, server started here: {proc is not None})")
    print(f"{'mode':10} {'c':>3} {'n':>5} {'issuances/s':>12} {'p50 ms':>8} {'p95 ms':>8} "
          f"{'p99 ms':>8} {'server CPU ms/iss':>18}")
    try:
        asyncio.run(run_level(target, make_bodies(50), 4, True))  # warm-up
        for mode in modes:
            keep_alive = mode == "keepalive"
            n = args.n if keep_alive else args.newconn_n
            for c in levels:
                bodies = make_bodies(n)
                cpu0 = cpu_seconds(proc.pid) if proc else 0.0
                elapsed, lat, failures = asyncio.run(run_level(target, bodies, c, keep_alive))
                cpu = (cpu_seconds(proc.pid) - cpu0) / n * 1000 if proc else float("nan")
                if failures:
                    raise SystemExit(f"{len(failures)} failures, first: {failures[0]}")
                print(f"{mode:10} {c:>3} {n:>5} {n / elapsed:>12.0f} "
                      f"{percentile(lat, 50) * 1000:>8.1f} {percentile(lat, 95) * 1000:>8.1f} "
                      f"{percentile(lat, 99) * 1000:>8.1f} {cpu:>18.2f}", flush=True)
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(timeout=15)
        if tmp is not None:
            tmp.cleanup()


if __name__ == "__main__":
    main()
