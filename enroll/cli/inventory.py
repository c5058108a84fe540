"""``enroll inventory``: one row per identity across protocols, with its renewal state,
as a table, one JSON document or CSV."""

from __future__ import annotations

import argparse
import csv
import io
import json
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from enroll.cli.tables import render
from enroll.config_values import as_duration
from enroll.errors import ConfigError, MalformedInput
from enroll.inventory import (
    MAX_LIMIT,
    MAX_OFFSET,
    SORTS,
    Filters,
    list_identities,
    search_terms,
)
from enroll.renewal_states import STATES

TABLE_COLUMNS = ("identity", "state", "protocol", "profile", "ca", "not_after", "serial",
                 "certificates", "device_id", "migrated_from")
CSV_COLUMNS = ("identity", "serial", "state", "protocol", "endpoint", "profile", "ca",
               "not_before", "not_after", "first_issued", "last_issued", "certificates",
               "requester", "device_id", "migrated_from")


def duration(text: str) -> int:
    """An argparse type: ``30d``, ``12h``, ``45m`` or seconds."""
    try:
        return as_duration(text, "--expiring-within", minimum=0)
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def bounded_limit(text: str) -> int:
    try:
        value = int(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError("not a number") from exc
    if not 1 <= value <= MAX_LIMIT:
        raise argparse.ArgumentTypeError(f"between 1 and {MAX_LIMIT}")
    return value


def bounded_offset(text: str) -> int:
    try:
        value = int(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError("not a number") from exc
    if not 0 <= value <= MAX_OFFSET:
        raise argparse.ArgumentTypeError(f"between 0 and {MAX_OFFSET} (use --after)")
    return value


def search_text(text: str) -> str:
    """An argparse type: the search text, bounded and valid text."""
    try:
        search_terms(text)
    except MalformedInput as exc:
        raise argparse.ArgumentTypeError(exc.detail) from exc
    return text


def add_output_flags(p: argparse.ArgumentParser) -> None:
    out = p.add_mutually_exclusive_group()
    out.add_argument("--json", action="store_true", help="one JSON document")
    out.add_argument("--csv", action="store_true", help="CSV with a header row")


def register(sub: argparse._SubParsersAction[Any]) -> None:
    p = sub.add_parser("inventory", help="one row per identity across protocols, with its "
                                         "renewal state")
    p.add_argument("--protocol", help="scep, est, acme, core")
    p.add_argument("--profile")
    p.add_argument("--ca")
    p.add_argument("--endpoint", help="the endpoint label that issued the current "
                                      "certificate")
    p.add_argument("--state", choices=STATES)
    p.add_argument("--expiring-within", type=duration, metavar="DURATION",
                   help="live and expiring within (30d, 12h)")
    p.add_argument("--search", metavar="TEXT",
                   help="a prefix of the identity, an exact identity, device id or serial; "
                        "* is a wildcard (*.iot.example.com)")
    p.add_argument("--sort", choices=SORTS, default="not_after")
    p.add_argument("--desc", action="store_true", help="descending order")
    p.add_argument("--limit", type=bounded_limit, default=100)
    page = p.add_mutually_exclusive_group()
    page.add_argument("--offset", type=int, default=0)
    page.add_argument("--after", metavar="CURSOR",
                      help="the 'next' cursor a previous page printed")
    add_output_flags(p)
    p.set_defaults(func=cmd_inventory)


def cmd_inventory(args: argparse.Namespace, opener: Any) -> int:
    ctx = opener.context()
    filters = Filters(protocol=args.protocol, profile=args.profile, ca=args.ca,
                      endpoint=args.endpoint, state=args.state,
                      expiring_within=args.expiring_within, search=args.search)
    page = list_identities(ctx.db, ctx.authority.profiles, filters, now=ctx.clock.now(),
                           sort=args.sort, descending=args.desc, limit=args.limit,
                           offset=args.offset, after=args.after)
    rows = [r.as_dict() for r in page.items]
    if args.json:
        write(json.dumps({"items": rows, "next": page.next}, indent=2))
    elif args.csv:
        write(as_csv(rows, CSV_COLUMNS))
    else:
        write(render(rows, TABLE_COLUMNS, False))
        if page.next:
            write(f"more: --after {page.next}")
    return 0


def as_csv(rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> str:
    """A header row and one line per row. A text cell a spreadsheet would run as a
    formula (identities come from clients' CSRs) is prefixed with ``'`` (OWASP CSV
    injection)."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([_cell(row.get(c)) for c in columns])
    return buf.getvalue()


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


def write(text: str) -> None:
    sys.stdout.write(text + ("" if text.endswith("\n") else "\n"))
