"""SCEP PKCSReq load client: issuances/s and p50/p95/p99 latency at several concurrencies.

    python bench/scep.py --url http://127.0.0.1:8080/scep --challenge <secret> \
        [--concurrency 1,8,32] [--requests 300] [--server-pid PID] [--cipher aes128_cbc]

Built on asn1crypto + cryptography (`enroll.protocols.scep.client`). Messages are built
before the clock starts (the client shares the machine's CPU with the server); a pool of
client keys is reused with a fresh subject and transactionID per request, so every
request is a new issuance. Each answer's pkiStatus is checked (signature verified against the RA); a
sample is fully decrypted after the run, and duplicate serials are counted. Works
against any RFC 8894 server, e.g. micromdm's scepserver for comparison.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import sys
import threading
import time
from pathlib import Path

import httpx
from cryptography import x509

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from enroll.protocols.scep import signeddata  # noqa: E402
from enroll.protocols.scep.client import ScepClient, csr_with_challenge  # noqa: E402
from enroll.protocols.scep.pkimessage import PKIStatus, parse_certrep  # noqa: E402

KEYS = 16
# Go's net/http (scepclient, MDMs) sets TCP_NODELAY; without it httpx's separate header
# and body writes meet delayed ACKs and every keep-alive request waits ~40 ms.
NODELAY = [(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)]


def http_client() -> httpx.Client:
    return httpx.Client(trust_env=False, timeout=60,
                        transport=httpx.HTTPTransport(socket_options=NODELAY))


def fetch_ra(http: httpx.Client, url: str) -> x509.Certificate:
    r = http.get(url, params={"operation": "GetCACert"})
    r.raise_for_status()
    if "ca-ra-cert" in r.headers.get("content-type", ""):
        certs, _ = signeddata.degenerate_contents(r.content)
        leaves = [c for c in certs if not _is_ca(c)]
        return (leaves or certs)[0]
    return x509.load_der_x509_certificate(r.content)


def _is_ca(cert: x509.Certificate) -> bool:
    try:
        return bool(cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except x509.ExtensionNotFound:
        return False


def cpu_seconds(pid: int | None) -> float | None:
    if pid is None:
        return None
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = sum(int(v) for v in fields[11:15])  # utime stime cutime cstime
    return ticks / os.sysconf("SC_CLK_TCK")


def run_level(url: str, ra: x509.Certificate, clients: list[ScepClient], challenge: str,
              concurrency: int, total: int, pid: int | None) -> dict[str, float]:
    messages = []
    for i in range(total):
        c = clients[i % len(clients)]
        # A fresh subject per request: some servers (scepserver) refuse a second
        # certificate for a subject that already has a valid one.
        csr = csr_with_challenge(c.key, f"bench-{os.urandom(6).hex()}", challenge)
        messages.append((c, c.pkcs_req(csr, os.urandom(10).hex())[0]))
    latencies: list[float] = []
    failures: list[str] = []
    answers: list[tuple[ScepClient, bytes]] = []
    lock = threading.Lock()
    cursor = iter(range(total))

    def worker() -> None:
        with http_client() as http:
            while True:
                with lock:
                    index = next(cursor, None)
                if index is None:
                    return
                client, message = messages[index]
                start = time.perf_counter()
                try:
                    r = http.post(url, params={"operation": "PKIOperation"}, content=message,
                                  headers={"content-type": "application/x-pki-message"})
                    elapsed = time.perf_counter() - start
                    rep = parse_certrep(r.content, ra) if r.status_code == 200 else None
                except Exception as exc:  # noqa: BLE001 - count and go on
                    with lock:
                        failures.append(type(exc).__name__)
                    continue
                with lock:
                    latencies.append(elapsed)
                    if rep is None or rep.status is not PKIStatus.SUCCESS:
                        failures.append(f"http {r.status_code}" if rep is None else
                                        f"{rep.status.name} {rep.fail_info} {rep.fail_text}")
                    else:
                        answers.append((client, r.content))

    cpu0 = cpu_seconds(pid)
    began = time.perf_counter()
    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - began
    cpu1 = cpu_seconds(pid)
    serials = []
    for client, body in answers[:: max(1, len(answers) // 20)]:  # decrypt a sample
        cert = client.read(body).certificate
        assert cert is not None
        serials.append(cert.serial_number)
    ok = len(answers)
    lat = sorted(latencies) or [0.0]

    def pct(p: float) -> float:
        return lat[min(len(lat) - 1, int(p * len(lat)))] * 1000

    result = {"concurrency": concurrency, "requests": total, "ok": ok,
              "failures": len(failures), "per_s": ok / wall, "p50": pct(0.50),
              "p95": pct(0.95), "p99": pct(0.99), "mean": statistics.fmean(lat) * 1000,
              "dup_serials": len(serials) - len(set(serials))}
    if cpu0 is not None and cpu1 is not None and ok:
        result["cpu_ms"] = (cpu1 - cpu0) * 1000 / ok
    if failures:
        print(f"  first failures: {failures[:3]}", file=sys.stderr)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", required=True, help="SCEP URL, e.g. http://127.0.0.1:8080/scep")
    parser.add_argument("--challenge", required=True)
    parser.add_argument("--concurrency", default="1,8,32")
    parser.add_argument("--requests", type=int, default=300, help="requests per level")
    parser.add_argument("--server-pid", type=int, help="measure this process's CPU time")
    parser.add_argument("--cipher", default="aes128_cbc",
                        choices=["aes128_cbc", "aes256_cbc", "tripledes_3key", "des"])
    parser.add_argument("--digest", default="sha256", choices=["sha1", "sha256", "sha512"])
    parser.add_argument("--warmup", type=int, default=20)
    args = parser.parse_args(argv)

    with http_client() as http:
        ra = fetch_ra(http, args.url)
    clients = [ScepClient(ra, cipher=args.cipher, digest=args.digest) for _ in range(KEYS)]
    if args.warmup:
        run_level(args.url, ra, clients, args.challenge, 2, args.warmup, None)
    print(f"{'c':>3} {'req':>5} {'ok':>5} {'fail':>4} {'dup':>3} {'iss/s':>8} {'p50 ms':>7} "
          f"{'p95 ms':>7} {'p99 ms':>7} {'cpu ms/iss':>10}")
    for level in (int(v) for v in args.concurrency.split(",")):
        r = run_level(args.url, ra, clients, args.challenge, level, args.requests,
                      args.server_pid)
        cpu = f"{r['cpu_ms']:10.2f}" if "cpu_ms" in r else f"{'-':>10}"
        print(f"{r['concurrency']:>3} {r['requests']:>5} {r['ok']:>5} {r['failures']:>4} "
              f"{r['dup_serials']:>3} {r['per_s']:>8.1f} {r['p50']:>7.1f} {r['p95']:>7.1f} "
              f"{r['p99']:>7.1f} {cpu}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
