"""``enroll admin …``: API tokens and console users.

    enroll admin token new --name ci-bot --role viewer [--expires 90d]   # printed once
    enroll admin token list [--json]
    enroll admin token revoke NAME
    enroll admin user add NAME --role approver      # password from stdin (or a prompt)
    enroll admin user list [--json]
    enroll admin user remove NAME
    enroll admin user reset-totp NAME               # enrols the second factor again

None of these needs the CA passphrase: a user's TOTP seed is sealed by the server when the
user enrols it in the console.
"""

from __future__ import annotations

import argparse
import datetime as dt
import getpass
import sys
from typing import Any

from enroll.approvals import cli_actor
from enroll.cli.tables import render
from enroll.config_values import as_duration
from enroll.context import AppContext
from enroll.errors import NotFound

from . import roles, store, tokens, users


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    admin = subparsers.add_parser("admin", help="admin API tokens and console users")
    sub = admin.add_subparsers(dest="admin_command")
    tok = sub.add_parser("token", help="API tokens").add_subparsers(dest="admin_token_command")
    p = tok.add_parser("new", help="create a token (printed once, stored hashed)")
    p.add_argument("--name", required=True, help="what the audit trail calls its caller")
    p.add_argument("--role", required=True, choices=[r.value for r in roles.Role])
    p.add_argument("--expires", help="lifetime, e.g. 90d (default: until revoked)")
    p.set_defaults(func=_token_new)
    p = tok.add_parser("list", help="list tokens (never their secrets)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_token_list)
    p = tok.add_parser("revoke", help="end a token at once")
    p.add_argument("name")
    p.set_defaults(func=_token_revoke)

    usr = sub.add_parser("user", help="console users").add_subparsers(dest="admin_user_command")
    p = usr.add_parser("add", help="add a user or reset its password (read from stdin, "
                                   "or asked for on a terminal)")
    p.add_argument("name")
    p.add_argument("--role", required=True, choices=[r.value for r in roles.Role])
    p.set_defaults(func=_user_add)
    p = usr.add_parser("list", help="list console users")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_user_list)
    p = usr.add_parser("remove", help="remove a user (its sessions end)")
    p.add_argument("name")
    p.set_defaults(func=_user_remove)
    p = usr.add_parser("reset-totp", help="clear a user's second factor: it enrols again "
                                          "at its next sign-in")
    p.add_argument("name")
    p.set_defaults(func=_user_reset_totp)


def _audit(ctx: AppContext, type: str, **details: Any) -> None:
    from . import audit

    audit.record(ctx, cli_actor(None).identity, type, details=details)


def _token_new(args: argparse.Namespace, opener: Any) -> int:
    ctx: AppContext = opener.context()
    role = roles.parse(args.role)
    now = ctx.clock.now()
    expires = (now + dt.timedelta(seconds=as_duration(args.expires, "--expires"))
               if args.expires else None)
    actor = cli_actor(None).identity
    with ctx.db.write() as tx:
        text = tokens.create(tx, name=args.name, role=role, created_by=actor, now=now,
                             expires_at=expires)
    _audit(ctx, "token.created", name=args.name, role=role.value,
           expires=expires.isoformat() if expires else None)
    print(text)
    print(f"# token {args.name!r} ({role.value}"
          f"{', expires ' + expires.isoformat() if expires else ''}): shown once, "
          "stored hashed", file=sys.stderr)
    return 0


def _token_list(args: argparse.Namespace, opener: Any) -> int:
    ctx: AppContext = opener.context()
    now = ctx.clock.now()
    with ctx.db.read() as tx:
        rows = [{"name": t.name, "role": t.role, "state": _state(t, now),
                 "created": t.created_at.isoformat(timespec="seconds"),
                 "expires": t.expires_at.isoformat(timespec="seconds") if t.expires_at else None,
                 "last_used": (t.last_used_at.isoformat(timespec="seconds")
                               if t.last_used_at else None),
                 "created_by": t.created_by} for t in store.list_tokens(tx)]
    print(render(rows, ["name", "role", "state", "created", "expires", "last_used"], args.json))
    return 0


def _state(token: store.Token, now: dt.datetime) -> str:
    if token.revoked_at is not None:
        return "revoked"
    return "live" if token.live(now) else "expired"


def _token_revoke(args: argparse.Namespace, opener: Any) -> int:
    ctx: AppContext = opener.context()
    with ctx.db.write() as tx:
        if not store.revoke_token(tx, args.name, ctx.clock.now()):
            raise NotFound(f"no live token named {args.name!r}")
    _audit(ctx, "token.revoked", name=args.name)
    print(f"revoked token {args.name!r}")
    return 0


def _read_password() -> str:
    if sys.stdin.isatty():
        first = getpass.getpass("password: ")
        if getpass.getpass("again: ") != first:
            raise SystemExit("the passwords differ")
        return first
    return sys.stdin.readline().rstrip("\r\n")


def _user_add(args: argparse.Namespace, opener: Any) -> int:
    ctx: AppContext = opener.context()
    name = users.check_username(args.name)
    role = roles.parse(args.role)
    hashed = users.hash_password(users.check_password(_read_password()))
    with ctx.db.write() as tx:
        new = store.put_user(tx, name, role.value, hashed, ctx.clock.now())
    _audit(ctx, "user.added" if new else "user.reset", name=name, role=role.value)
    print(f"{'added' if new else 'reset'} console user {name!r} ({role.value}); it enrols "
          "its second factor at its first sign-in")
    return 0


def _user_list(args: argparse.Namespace, opener: Any) -> int:
    ctx: AppContext = opener.context()
    with ctx.db.read() as tx:
        rows = [{"name": u.username, "role": u.role,
                 "totp": "enrolled" if u.totp_enrolled_at else "not enrolled",
                 "created": u.created_at.isoformat(timespec="seconds")}
                for u in store.list_users(tx)]
    print(render(rows, ["name", "role", "totp", "created"], args.json))
    return 0


def _user_remove(args: argparse.Namespace, opener: Any) -> int:
    ctx: AppContext = opener.context()
    with ctx.db.write() as tx:
        if not store.delete_user(tx, args.name):
            raise NotFound(f"no console user {args.name!r}")
    _audit(ctx, "user.removed", name=args.name)
    print(f"removed console user {args.name!r}")
    return 0


def _user_reset_totp(args: argparse.Namespace, opener: Any) -> int:
    ctx: AppContext = opener.context()
    with ctx.db.write() as tx:
        if store.get_user(tx, args.name) is None:
            raise NotFound(f"no console user {args.name!r}")
        store.set_totp(tx, args.name, None, None)
        store.bump_epoch(tx, args.name)
    _audit(ctx, "user.totp_reset", name=args.name)
    print(f"cleared the second factor of {args.name!r}; its sessions ended")
    return 0
