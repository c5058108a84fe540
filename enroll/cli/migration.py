"""``enroll migration``: how far each profile's migration policy has come (read from the
inventory by `enroll.migration_report`).

    enroll migration status [--profile X | --endpoint PROTOCOL/LABEL] [--json]
    enroll migration stragglers --profile X | --endpoint scep/mdm [--csv | --json]
"""

from __future__ import annotations

import argparse
import csv
import io
import json
from typing import Any

from enroll import migration_report
from enroll.cli.commands import Opener, _out
from enroll.cli.tables import render


def register(sub: argparse._SubParsersAction[Any]) -> None:
    migration = sub.add_parser("migration", help="migration policies: progress and "
                               "stragglers").add_subparsers(dest="migration_command")
    p = migration.add_parser("status", help="per profile and door: identities on the old "
                             "and the target door, share migrated, projected completion")
    only = p.add_mutually_exclusive_group()
    only.add_argument("--profile", help="only this profile")
    only.add_argument("--endpoint", metavar="PROTOCOL/LABEL",
                      help="only this source endpoint's policy (scep/mdm)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_migration_status)
    p = migration.add_parser("stragglers", help="live identities still on an old door, "
                             "soonest expiry first")
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--profile")
    which.add_argument("--endpoint", metavar="PROTOCOL/LABEL",
                       help="a source endpoint with a migration policy (scep/mdm)")
    p.add_argument("--limit", type=int, default=None)
    fmt = p.add_mutually_exclusive_group()
    fmt.add_argument("--csv", action="store_true")
    fmt.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_migration_stragglers)


def cmd_migration_status(args: argparse.Namespace, opener: Opener) -> int:
    ctx = opener.context()
    now = ctx.clock.now()
    only_endpoint = getattr(args, "endpoint", None)
    policies = ctx.authority.endpoint_migrations
    with ctx.db.read() as tx:
        found = [] if only_endpoint else migration_report.status(
            tx, ctx.authority.profiles, now, args.profile)
        by_endpoint = [] if args.profile else migration_report.endpoint_status(
            tx, policies, now, only_endpoint)
    if args.json:
        _out(json.dumps({"at": now.isoformat(timespec="seconds"),
                         "profiles": [migration_report.status_json(s) for s in found],
                         "endpoints": [migration_report.endpoint_status_json(s)
                                       for s in by_endpoint]},
                        indent=2))
        return 0
    if not found and not by_endpoint:
        _out("(no profile or endpoint has a migration policy)")
    blocks = []
    for s in found:
        j = migration_report.status_json(s)
        m = j["migration"]
        share = "-" if j["share_migrated"] is None else f"{j['share_migrated']}%"
        doors = [dict(d, target="yes" if d["target"] else "") for d in j["doors"]]
        blocks.append("\n".join([
            f"profile {s.profile}: to {_target(m)} after {m['after']} (mode {m['mode']})",
            render(doors, ["protocol", "endpoint", "identities", "target"], False),
            f"on target {j['on_target']} of {j['identities']} ({share}); "
            f"migrated {j['migrated']}, renewed early {j['renewed_early']}",
            f"stragglers {j['stragglers']}; first expires {j['first_straggler_expiry'] or '-'}"
            f"; projected completion {j['projected_completion'] or '-'}"]))
    for e in by_endpoint:
        j = migration_report.endpoint_status_json(e)
        m = j["migration"]
        blocks.append("\n".join([
            f"endpoint {e.protocol}/{e.endpoint}: to {_target(m)} after {m['after']} "
            f"(mode {m['mode']}, any profile)",
            f"stragglers {j['stragglers']}; first expires {j['first_straggler_expiry'] or '-'}"
            f"; projected completion {j['projected_completion'] or '-'}; "
            f"migrated {j['migrated']}"]))
    if blocks:
        _out("\n\n".join(blocks))
    return 0


def _target(m: dict[str, Any]) -> str:
    return str(m["to"]) + (f" ({m['endpoint']})" if m["endpoint"] else "")


def cmd_migration_stragglers(args: argparse.Namespace, opener: Opener) -> int:
    ctx = opener.context()
    with ctx.db.read() as tx:
        if getattr(args, "endpoint", None):
            found = migration_report.endpoint_stragglers(
                tx, ctx.authority.endpoint_migrations, args.endpoint, ctx.clock.now(),
                args.limit)
        else:
            found = migration_report.stragglers(tx, ctx.authority.profiles, args.profile,
                                                ctx.clock.now(), args.limit)
        rows = [migration_report.straggler_json(s) for s in found]
    if args.csv:
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=migration_report.STRAGGLER_COLUMNS,
                                lineterminator="\n")
        writer.writeheader()
        writer.writerows({k: _cell(v) for k, v in r.items()} for r in rows)
        _out(out.getvalue())
    else:
        _out(render(rows, migration_report.STRAGGLER_COLUMNS, args.json))
    return 0


def _cell(value: Any) -> str:
    """A CSV cell a spreadsheet will not run: a device id is the client's text, and one
    starting with ``=``, ``+``, ``-`` or ``@`` would be a formula (OWASP CSV injection)."""
    text = "" if value is None else str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text
