"""Core pipeline benchmark: CSR in, stored certificate out (no HTTP).

    python bench/core.py                       # SQLite, EC P-256 and RSA-2048 CAs
    python bench/core.py --postgres postgresql://postgres@127.0.0.1:5432/test
    python bench/core.py -n 2000 -c 1 -c 4

Prints, per (database, CA key, concurrency): issuances/s and p50/p95/p99 latency, and
the cost of one bare certificate signature with the same CA key for comparison.
"""

from __future__ import annotations

import argparse
import datetime as dt
import secrets
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from cryptography import x509

from enroll import config as config_mod
from enroll.context import build_context
from enroll.crypto.keys import generate_key
from enroll.testing import TEST_PASSPHRASE, make_csr, make_key, request


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(pct / 100 * (len(ordered) - 1))))]


def bare_signature_us(key_type: str, rounds: int = 300) -> float:
    ca_key = generate_key(key_type)
    leaf = make_key().public_key()
    name = x509.Name.from_rfc4514_string("CN=bench")
    now = dt.datetime.now(dt.UTC)
    builder = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(leaf)
               .serial_number(1).not_valid_before(now)
               .not_valid_after(now + dt.timedelta(days=1)))
    from cryptography.hazmat.primitives import hashes

    start = time.perf_counter()
    for _ in range(rounds):
        builder.sign(ca_key, hashes.SHA256())
    return (time.perf_counter() - start) / rounds * 1e6


@contextmanager
def pg_schema(url: str) -> Iterator[str]:
    import sqlalchemy

    from enroll.store.db import normalise_url

    schema = f"bench_{secrets.token_hex(4)}"
    admin = sqlalchemy.create_engine(normalise_url(url), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
    sep = "&" if "?" in url else "?"
    try:
        yield f"{url}{sep}options=-csearch_path%3D{schema}"
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP SCHEMA "{schema}" CASCADE')
        admin.dispose()


def run(db_url: str, data_dir: Path, key_type: str, n: int, concurrency: int) -> dict[str, float]:
    raw = config_mod.default_raw_config()
    raw["cas"]["issuing"]["key_type"] = key_type
    raw.update({"data_dir": str(data_dir), "database_url": db_url,
                "ca_passphrase": TEST_PASSPHRASE})
    ctx = build_context(config_mod.from_raw(raw))
    csrs = [make_csr(make_key(), cn=f"d{i}.example.com", dns=[f"d{i}.example.com"])
            for i in range(min(n, 200))]
    for csr in csrs[:20]:  # warm-up: pools, statement cache
        ctx.authority.submit(request(csr, "server"))
    latencies: list[float] = []
    lock = threading.Lock()
    per_worker = n // concurrency

    def worker(w: int) -> None:
        local = []
        for i in range(per_worker):
            csr = csrs[(w * per_worker + i) % len(csrs)]
            t0 = time.perf_counter()
            ctx.authority.submit(request(csr, "server"))
            local.append(time.perf_counter() - t0)
        with lock:
            latencies.extend(local)

    threads = [threading.Thread(target=worker, args=(w,)) for w in range(concurrency)]
    start = time.perf_counter()
    cpu_start = time.process_time()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - start
    cpu = time.process_time() - cpu_start
    ctx.db.dispose()
    return {"rate": len(latencies) / elapsed, "cpu_ms": cpu / len(latencies) * 1000,
            "p50": percentile(latencies, 50) * 1000,
            "p95": percentile(latencies, 95) * 1000, "p99": percentile(latencies, 99) * 1000}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", type=int, default=1000, help="issuances per run")
    parser.add_argument("-c", "--concurrency", type=int, action="append",
                        help="threads (repeatable; default 1 and 4)")
    parser.add_argument("--postgres", help="also run on this PostgreSQL URL")
    parser.add_argument("--key-type", action="append",
                        help="issuing CA key type (default ec-p256 and rsa-2048)")
    args = parser.parse_args()
    key_types = args.key_type or ["ec-p256", "rsa-2048"]
    concurrency = args.concurrency or [1, 4]
    print(f"{'db':10} {'ca key':9} {'c':>3} {'issuances/s':>12} {'p50 ms':>8} {'p95 ms':>8} "
          f"{'p99 ms':>8} {'cpu ms/iss':>10} {'bare sign us':>13}")
    for key_type in key_types:
        sign_us = bare_signature_us(key_type)
        for c in concurrency:
            with tempfile.TemporaryDirectory() as tmp:
                r = run(f"sqlite:///{tmp}/enroll.db", Path(tmp), key_type, args.n, c)
                print(f"{'sqlite':10} {key_type:9} {c:>3} {r['rate']:>12.0f} {r['p50']:>8.2f} "
                      f"{r['p95']:>8.2f} {r['p99']:>8.2f} {r['cpu_ms']:>10.2f} {sign_us:>13.0f}",
                      flush=True)
            if args.postgres:
                with tempfile.TemporaryDirectory() as tmp, pg_schema(args.postgres) as url:
                    r = run(url, Path(tmp), key_type, args.n, c)
                    print(f"{'postgresql':10} {key_type:9} {c:>3} {r['rate']:>12.0f} "
                          f"{r['p50']:>8.2f} {r['p95']:>8.2f} {r['p99']:>8.2f} "
                          f"{r['cpu_ms']:>10.2f} {sign_us:>13.0f}",
                          flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
