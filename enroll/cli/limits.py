"""``enroll limits``: the shared rate-limit counters (`enroll.rate_limits`) for operators.

    enroll limits list [--json]          # who is being counted, busiest first
    enroll limits clear KEY              # lift a lockout (KEY as `list` prints it)
"""

from __future__ import annotations

import argparse
import datetime as dt
from typing import Any

from enroll.cli.commands import Opener, _out
from enroll.cli.tables import render
from enroll.errors import NotFound
from enroll.rate_limits import RateLimits
from enroll.store import queries


def register(sub: argparse._SubParsersAction[Any]) -> None:
    limits = sub.add_parser("limits", help="rate-limit counters").add_subparsers(
        dest="limits_command")
    p = limits.add_parser("list", help="list live counters (busiest first)")
    p.add_argument("--limit", type=int, default=1000)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_limits_list)
    p = limits.add_parser("clear", help="forget one counter (lift a lockout)")
    p.add_argument("key", metavar="KEY", help="the key as `enroll limits list` prints it")
    p.add_argument("--actor", default="operator")
    p.set_defaults(func=cmd_limits_clear)


def cmd_limits_list(args: argparse.Namespace, opener: Opener) -> int:
    ctx = opener.context()
    rows = [dict(r, until=dt.datetime.fromtimestamp(r["until"], dt.UTC)
                 .isoformat(timespec="seconds"))
            for r in RateLimits(ctx.db, ctx.clock).counters(args.limit)]
    _out(render(rows, ["key", "events", "until"], args.json))
    return 0


def cmd_limits_clear(args: argparse.Namespace, opener: Opener) -> int:
    ctx = opener.context()
    removed = RateLimits(ctx.db, ctx.clock).clear_key(args.key)
    if not removed:
        raise NotFound(f"no counter {args.key!r}")
    with ctx.db.write() as tx:
        queries.add_audit(tx, at=ctx.clock.now(), type="rate_limit.cleared", actor=args.actor,
                          details={"key": args.key})
    _out(f"cleared {args.key}")
    return 0
