"""Inventory queries on a big store: every `enroll inventory` filter, each state, the
searches, sorted second pages, and the `enroll certs list` filters.

    python bench/growth.py generate --db sqlite:///.data/growth.db --certificates 1000000
    python bench/inventory_queries.py --db sqlite:///.data/growth.db
    python bench/inventory_queries.py --db postgresql://postgres@127.0.0.1:5432/growth

The store is bench/growth.py's (profiles ``device``: 365 days, default window;
``server``: 90 days, ``renew_before = "33%"``). Each case runs the CLI's own command
function (query and rendering, ``--limit 100``; arguments parsed once, outside the
timing) once uncounted, then `--rounds` times;
it prints the median and p95 in ms (target < 100 ms each). Not part of the test suite.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import statistics
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import growth  # noqa: E402  (bench/growth.py: the store and its configuration)

from enroll.cli import commands  # noqa: E402
from enroll.cli.main import build_parser  # noqa: E402
from enroll.context import AppContext  # noqa: E402


def run(ctx: AppContext, argv: Sequence[str] | argparse.Namespace) -> str:
    """The command's output; `argv` parsed already (a Namespace) is not parsed again,
    so the timings are the query and its rendering."""
    args = argv if isinstance(argv, argparse.Namespace) else build_parser().parse_args(
        list(argv))
    opener = commands.Opener(args, {})
    opener._context = ctx
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        args.func(args, opener)
    return out.getvalue()


def cursor_of(ctx: AppContext, argv: Sequence[str]) -> str:
    """The `next` cursor of the first page of `argv` (JSON)."""
    import json

    doc = json.loads(run(ctx, [*argv, "--json"]))
    return str(doc["next"])


def samples(ctx: AppContext) -> dict[str, str]:
    """Real values of the store to search for."""
    with ctx.db.read() as tx:
        row = tx.one("SELECT identity, name, device_id, serial FROM identities "
                     "WHERE device_id IS NOT NULL ORDER BY identity LIMIT 1 OFFSET 5000")
        old = tx.scalar("SELECT serial FROM certificates WHERE identity = ? "
                        "ORDER BY created_at LIMIT 1", (row["identity"],) if row else ("",))
    if row is None:
        raise SystemExit("no identities with a device id: generate the store with "
                         "bench/growth.py first")
    return {"identity": row["identity"], "prefix": str(row["name"])[:10],
            "device_id": row["device_id"], "serial": old or row["serial"]}


def cases(ctx: AppContext) -> list[tuple[str, list[str]]]:
    s = samples(ctx)
    inv = ["inventory"]
    out: list[tuple[str, list[str]]] = [
        ("inventory", inv),
        ("inventory --protocol acme", [*inv, "--protocol", "acme"]),
        ("inventory --protocol core (3 %)", [*inv, "--protocol", "core"]),
        ("inventory --profile server", [*inv, "--profile", "server"]),
        ("inventory --ca issuing-iot", [*inv, "--ca", "issuing-iot"]),
        ("inventory --endpoint mdm", [*inv, "--endpoint", "mdm"]),
        ("inventory --expiring-within 30d", [*inv, "--expiring-within", "30d"]),
    ]
    for state in ("ok", "due", "overdue", "expired", "revoked", "migrated"):
        out.append((f"inventory --state {state}", [*inv, "--state", state]))
    out += [
        ("inventory --state due --profile server", [*inv, "--state", "due", "--profile",
                                                     "server"]),
        ("inventory --state overdue --protocol scep", [*inv, "--state", "overdue",
                                                        "--protocol", "scep"]),
        (f"inventory --search {s['prefix']} (prefix)", [*inv, "--search", s["prefix"]]),
        ("inventory --search <device id>", [*inv, "--search", s["device_id"]]),
        ("inventory --search <serial of an old certificate>", [*inv, "--search",
                                                               s["serial"]]),
        ("inventory --search <identity>", [*inv, "--search", s["identity"]]),
        ("inventory --search '*svc-0001*' (wildcard)", [*inv, "--search", "*svc-0001*"]),
        ("inventory --search '*.example.net' (wildcard, the servers)",
         [*inv, "--search", "*.example.net"]),
    ]
    for sort, desc in (("not_after", False), ("last_issued", True), ("identity", False)):
        first = [*inv, "--sort", sort, *(["--desc"] if desc else [])]
        out.append((f"inventory --sort {sort}{' --desc' if desc else ''}, page 2 (cursor)",
                    [*first, "--after", cursor_of(ctx, first)]))
    out.append(("inventory --sort last_issued --desc --offset 100 (page 2)",
                [*inv, "--sort", "last_issued", "--desc", "--offset", "100"]))
    state_first = [*inv, "--state", "due"]
    out.append(("inventory --state due, page 2 (cursor)",
                [*state_first, "--after", cursor_of(ctx, state_first)]))
    certs = ["certs", "list"]
    out += [
        ("certs list --protocol acme", [*certs, "--protocol", "acme"]),
        ("certs list --protocol core (3 %)", [*certs, "--protocol", "core"]),
        ("certs list --profile server", [*certs, "--profile", "server"]),
        ("certs list --endpoint mdm", [*certs, "--endpoint", "mdm"]),
        ("certs list --identity <identity>", [*certs, "--identity", s["identity"]]),
        ("certs list --expiring-within 30d", [*certs, "--expiring-within", "30d"]),
        ("certs list --status revoked --protocol scep", [*certs, "--status", "revoked",
                                                         "--protocol", "scep"]),
    ]
    for state in ("ok", "due", "overdue", "expired", "revoked", "migrated"):
        out.append((f"certs list --state {state}", [*certs, "--state", state]))
    out += [
        ("certs list --state due --profile server", [*certs, "--state", "due", "--profile",
                                                     "server"]),
        (f"certs list --search {s['prefix']} (prefix)", [*certs, "--search", s["prefix"]]),
        ("certs list --search <device id>", [*certs, "--search", s["device_id"]]),
        ("certs list --search <serial>", [*certs, "--search", s["serial"]]),
        ("certs list --search <identity>", [*certs, "--search", s["identity"]]),
        ("certs list --search '*svc-0001*' (wildcard)", [*certs, "--search", "*svc-0001*"]),
    ]
    for sort, desc in (("not_after", False), ("issued", True), ("serial", False)):
        first = [*certs, "--sort", sort, *(["--desc"] if desc else [])]
        out.append((f"certs list --sort {sort}{' --desc' if desc else ''}, page 2 (cursor)",
                    [*first, "--after", certs_cursor_of(ctx, first)]))
    out.append(("certs list --offset 100 (page 2)", [*certs, "--offset", "100"]))
    due = [*certs, "--state", "due"]
    out.append(("certs list --state due, page 2 (cursor)",
                [*due, "--after", certs_cursor_of(ctx, due)]))
    return out


def certs_cursor_of(ctx: AppContext, argv: Sequence[str]) -> str:
    """The cursor the table of `enroll certs list` prints last (``more: --after X``)."""
    return run(ctx, argv).splitlines()[-1].split()[-1]


def percentile(values: Sequence[float], pct: float) -> float:
    return growth.percentile(values, pct)


def measure(db_url: str, rounds: int, out: Any = print) -> list[tuple[str, float, float, int]]:
    results = []
    with growth.open_store(db_url) as ctx:
        with ctx.db.read() as tx:
            n_certs = int(tx.scalar("SELECT count(*) FROM certificates"))
            n_ids = int(tx.scalar("SELECT count(*) FROM identities"))
        out(f"store: {n_certs:,} certificates, {n_ids:,} identities "
            f"({'SQLite' if ctx.db.is_sqlite else 'PostgreSQL'})")
        for label, argv in cases(ctx):
            parsed = build_parser().parse_args(argv)
            text = run(ctx, parsed)  # the first (cold) run is not counted
            rows = max(0, len(text.splitlines()) - 2)
            times = growth.timed(lambda a=parsed: run(ctx, a), rounds)  # type: ignore[misc]
            results.append((label, statistics.median(times), percentile(times, 95), rows))
    out(f"| query (--limit 100; median / p95 of {rounds}) | rows | median | p95 | < 100 ms |")
    out("|---|---|---|---|---|")
    for label, med, p95, rows in results:
        out(f"| `{label}` | {min(rows, 100)} | {med:.1f} ms | {p95:.1f} ms | "
            f"{'yes' if p95 < 100 else '**no**'} |")
    if hasattr(os, "getloadavg"):
        out("load average at the end: {:.1f} {:.1f} {:.1f} ({} cores)".format(
            *os.getloadavg(), os.cpu_count()))
    return results


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", "--database-url", dest="db",
                        default=os.environ.get("ENROLL_TEST_DATABASE_URL"),
                        help="the store bench/growth.py generated")
    parser.add_argument("--rounds", type=int, default=9)
    args = parser.parse_args(argv)
    if not args.db:
        parser.error("--db (or ENROLL_TEST_DATABASE_URL) is required")
    measure(args.db, args.rounds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
