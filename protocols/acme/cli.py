"""``enroll acme …``: External Account Binding keys."""

from __future__ import annotations

import argparse
from typing import Any

from enroll.context import AppContext
from enroll.errors import ConfigError

from . import eab, names, settings, store


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    acme = subparsers.add_parser("acme", help="ACME external account binding keys")
    sub = acme.add_subparsers(dest="acme_command")
    keys = sub.add_parser("eab", help="EAB keys").add_subparsers(dest="acme_eab_command")
    p = keys.add_parser("new", help="create an EAB key (prints kid and HMAC key once)")
    p.add_argument("--endpoint", default=settings.DEFAULT_LABEL, help="endpoint label")
    p.add_argument("--allow", action="append", default=None,
                   help="name policy bound to the account, e.g. 'dns:*.corp.example' "
                        "(repeatable)")
    p.add_argument("--identity", action="append", default=None,
                   help="identities whose certificates from any door (SCEP, EST) the "
                        "account may name in replaces, e.g. 'san.dns:*.corp.example' "
                        "(fnmatch; repeatable)")
    p.set_defaults(func=_cmd_new)
    p = keys.add_parser("list", help="list EAB keys and the accounts they bound")
    p.set_defaults(func=_cmd_list)


def _cmd_new(args: argparse.Namespace, opener: Any) -> int:
    # sign=True opens the CA keys first: a wrong passphrase stops here instead of
    # sealing a key the server cannot open.
    ctx: AppContext = opener.context(sign=True)
    parsed = settings.parse(ctx.config)
    labels = [e.label for e in (parsed.endpoints if parsed else ())]
    if args.endpoint not in labels:
        raise ConfigError("acme.endpoints", f"no ACME endpoint labelled {args.endpoint!r} "
                          f"(have: {', '.join(labels) or 'none'})")
    allow = list(args.allow) if args.allow else None
    if allow:
        names.check_patterns(allow, "--allow")
    identity = list(args.identity) if args.identity else None
    if identity:
        eab.check_identity_patterns(identity, "--identity")
    with ctx.db.write() as conn:
        kid, key = eab.create(conn, args.endpoint, allow, ctx.config.ca_passphrase,
                              ctx.clock.now(), identity=identity)
    print(f"kid: {kid}")
    print(f"hmac: {key}")
    return 0


def _cmd_list(args: argparse.Namespace, opener: Any) -> int:
    ctx: AppContext = opener.context()
    with ctx.db.read() as conn:
        for row in store.list_eab_keys(conn):
            allow = ",".join(row["allow"] or ["(endpoint policy)"])
            identity = ",".join(row["identity"] or ["-"])
            print(f"{row['kid']}\t{row['endpoint']}\t{allow}\t{row['account_id'] or '-'}"
                  f"\t{identity}")
    return 0
