"""``enroll certs lineage``: the chain of renewals a certificate or an identity went
through, across SCEP, EST and ACME (`enroll.lineage`).

    enroll certs lineage SERIAL [--json]     # the chain this certificate belongs to
    enroll certs lineage IDENTITY [--json]   # every chain of the identity (san.dns:…)
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from enroll import lineage
from enroll.cli.commands import Opener, _out
from enroll.cli.tables import render

COLUMNS = ["serial", "protocol", "endpoint", "profile", "not_before", "not_after", "status",
           "link", "reason"]


def register(sub: argparse._SubParsersAction[Any]) -> None:
    certs = sub.choices["certs"]
    group = next(a for a in certs._actions if isinstance(a, argparse._SubParsersAction))
    p = group.add_parser("lineage", help="the renewal chain of a certificate or an identity")
    p.add_argument("target", metavar="SERIAL|IDENTITY",
                   help="a serial (hex, as `certs list` or openssl prints it) or an "
                        "identity (san.dns:host.example, as `certs lineage --json` prints it)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_certs_lineage)


def _row(link: lineage.Link) -> dict[str, Any]:
    row = link.as_json()
    row["not_before"] = link.not_before.isoformat(timespec="seconds")
    row["not_after"] = link.not_after.isoformat(timespec="seconds")
    row["link"] = row["link"] or "-"
    return row


def cmd_certs_lineage(args: argparse.Namespace, opener: Opener) -> int:
    ctx = opener.context()
    with ctx.db.read() as tx:
        chains = lineage.chains_for(tx, args.target)
    if args.json:
        _out(json.dumps({"target": args.target,
                         "chains": [[link.as_json() for link in c] for c in chains]},
                        indent=2))
        return 0
    blocks = []
    for number, links in enumerate(chains, 1):
        title = f"chain {number} of {len(chains)} ({len(links)} certificate" \
                f"{'' if len(links) == 1 else 's'}, oldest first)"
        blocks.append(title + "\n" + render([_row(lk) for lk in links], COLUMNS, False))
    _out("\n\n".join(blocks))
    return 0
