"""``enroll migration``: how far each profile's migration policy has come (read from the
inventory by `enroll.migration_report`).

    enroll migration status [--profile X] [--json]
    enroll migration stragglers --profile X [--csv | --json]   # for the MDM team
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
    p.add_argument("--profile", help="only this profile")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_migration_status)
    p = migration.add_parser("stragglers", help="live identities still on an old door, "
                             "soonest expiry first")
    p.add_argument("--profile", required=True)
    p.add_argument("--limit", type=int, default=None)
    fmt = p.add_mutually_exclusive_group()
    fmt.add_argument("--csv", action="store_true")
    fmt.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_migration_stragglers)


def cmd_migration_status(args: argparse.Namespace, opener: Opener) -> int:
    ctx = opener.context()
    now = ctx.clock.now()
    with ctx.db.read() as tx:
        found = migration_report.status(tx, ctx.authority.profiles, now, args.profile)
    if args.json:
        _out(json.dumps({"at": now.isoformat(timespec="seconds"),
                         "profiles": [migration_report.status_json(s) for s in found]},
                        indent=2))
        return 0
    if not found:
        _out("(no profile has a migration policy)")
    blocks = []
    for s in found:
        j = migration_report.status_json(s)
        m = j["migration"]
        target = m["to"] + (f" ({m['endpoint']})" if m["endpoint"] else "")
        share = "-" if j["share_migrated"] is None else f"{j['share_migrated']}%"
        doors = [dict(d, target="yes" if d["target"] else "") for d in j["doors"]]
        blocks.append("\n".join([
            f"profile {s.profile}: to {target} after {m['after']} (mode {m['mode']})",
            render(doors, ["protocol", "endpoint", "identities", "target"], False),
            f"on target {j['on_target']} of {j['identities']} ({share}); "
            f"migrated {j['migrated']}, renewed early {j['renewed_early']}",
            f"stragglers {j['stragglers']}; first expires {j['first_straggler_expiry'] or '-'}"
            f"; projected completion {j['projected_completion'] or '-'}"]))
    if blocks:
        _out("\n\n".join(blocks))
    return 0


def cmd_migration_stragglers(args: argparse.Namespace, opener: Opener) -> int:
    ctx = opener.context()
    with ctx.db.read() as tx:
        rows = [migration_report.straggler_json(s) for s in migration_report.stragglers(
            tx, ctx.authority.profiles, args.profile, ctx.clock.now(), args.limit)]
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
