"""``enroll est …``: Basic users, password hashes and archived server-generated keys."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from cryptography.hazmat.primitives import serialization

from enroll.context import AppContext
from enroll.errors import ConfigError, NotFound
from enroll.private_files import write_private

from . import passwords, settings, store
from .serverkeygen import open_key


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    est = subparsers.add_parser("est", help="EST users and server-generated keys")
    sub = est.add_subparsers(dest="est_command")

    p = sub.add_parser("hash-password", help="hash a password (read from stdin) for "
                       "[est.endpoints.<label>.users]")
    p.add_argument("--fast", action="store_true",
                   help="keyed SHA-256 instead of scrypt: only for generated secrets")
    p.set_defaults(func=_cmd_hash)

    users = sub.add_parser("user", help="Basic users kept in the database").add_subparsers(
        dest="est_user_command")
    p = users.add_parser("add", help="add a user or set its password; without "
                         "--password-stdin a password is generated and printed once")
    p.add_argument("username")
    p.add_argument("--endpoint", default=settings.DEFAULT_LABEL, help="endpoint label")
    p.add_argument("--password-stdin", action="store_true")
    p.set_defaults(func=_cmd_user_add)
    p = users.add_parser("remove", help="remove a user")
    p.add_argument("username")
    p.add_argument("--endpoint", default=settings.DEFAULT_LABEL)
    p.set_defaults(func=_cmd_user_remove)
    p = users.add_parser("list", help="list users kept in the database")
    p.set_defaults(func=_cmd_user_list)

    archive = sub.add_parser("archive", help="archived server-generated keys") \
        .add_subparsers(dest="est_archive_command")
    p = archive.add_parser("export", help="print the private key of a certificate made "
                           "by /serverkeygen (PKCS#8 PEM, unencrypted)")
    p.add_argument("serial", help="certificate serial number in hex")
    p.add_argument("--out", help="write to this file (mode 0600) instead of stdout")
    p.set_defaults(func=_cmd_archive_export)


def _endpoint(ctx: AppContext, label: str) -> settings.EndpointSettings:
    parsed = settings.parse(ctx.config)
    labels = {e.label: e for e in (parsed.endpoints if parsed else ())}
    if label not in labels:
        raise ConfigError("est.endpoints", f"no EST endpoint labelled {label!r} "
                          f"(have: {', '.join(labels) or 'none'})")
    return labels[label]


def _cmd_hash(args: argparse.Namespace, opener: Any) -> int:
    password = sys.stdin.readline().rstrip("\r\n")
    if not password:
        raise ConfigError("password", "read an empty password from stdin")
    print(passwords.hash_fast(password) if args.fast else passwords.hash_slow(password))
    return 0


def _cmd_user_add(args: argparse.Namespace, opener: Any) -> int:
    ctx: AppContext = opener.context()
    endpoint = _endpoint(ctx, args.endpoint)
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
        stored = passwords.hash_slow(password)
    else:
        password = passwords.generate()
        stored = passwords.hash_fast(password)
    if not password or len(args.username) > 128 or ":" in args.username:
        raise ConfigError("username", "user names are 1-128 characters without ':'")
    with ctx.db.write() as tx:
        store.put_user(tx, endpoint.label, args.username, stored, ctx.clock.now())
    if not args.password_stdin:
        print(password)
    return 0


def _cmd_user_remove(args: argparse.Namespace, opener: Any) -> int:
    ctx: AppContext = opener.context()
    with ctx.db.write() as tx:
        if not store.delete_user(tx, args.endpoint, args.username):
            raise NotFound(f"no user {args.username!r} on endpoint {args.endpoint!r}")
    return 0


def _cmd_user_list(args: argparse.Namespace, opener: Any) -> int:
    ctx: AppContext = opener.context()
    with ctx.db.read() as tx:
        for label, user in store.list_users(tx):
            print(f"{label}\t{user}")
    return 0


def _cmd_archive_export(args: argparse.Namespace, opener: Any) -> int:
    ctx: AppContext = opener.context()
    with ctx.db.read() as tx:
        kept = store.get_key_by_serial(tx, args.serial.lower())
    if kept is None:
        raise NotFound("no archived key for this serial")
    der = open_key(kept.encrypted_key, ctx.config.ca_passphrase, kept.request_id)
    key = serialization.load_der_private_key(der, password=None)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    if args.out:
        write_private(args.out, pem)
    else:
        sys.stdout.write(pem.decode())
    return 0
