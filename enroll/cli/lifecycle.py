"""``enroll lifecycle run``: one pass of the lifecycle job now (`enroll.lifecycle`), as
the scheduler runs it every `enroll.lifecycle.INTERVAL` seconds in one worker.

    enroll lifecycle run [--json]     # expiring / expired / migration deadline notices

Safe while ``enroll serve`` runs: each notice is given at most once, whoever runs the
job, so this only brings the next run forward (from cron, or to try ``[notify]``).
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from enroll.cli.commands import Opener, _out
from enroll.lifecycle import Lifecycle


def register(sub: argparse._SubParsersAction[Any]) -> None:
    lifecycle = sub.add_parser("lifecycle", help="lifecycle events (expiry, migration "
                               "deadlines)").add_subparsers(dest="lifecycle_command")
    p = lifecycle.add_parser("run", help="give the notices due now (each at most once)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_lifecycle_run)


def cmd_lifecycle_run(args: argparse.Namespace, opener: Opener) -> int:
    ctx = opener.context()
    summary = Lifecycle(ctx.db, ctx.pm, ctx.config, ctx.clock).run()
    counts = {"expiring": summary.expiring, "expired": summary.expired,
              "migration_deadlines": summary.deadlines, "complete": summary.complete}
    if args.json:
        _out(json.dumps(counts))
    else:
        _out(f"{summary.expiring} expiring, {summary.expired} expired, "
             f"{summary.deadlines} migration deadline notices"
             + ("" if summary.complete else " (more remain: run again)"))
    return 0
