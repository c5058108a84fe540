"""``enroll keys``: the key blocklist (`enroll.key_blocklist`) for operators.

    enroll keys block --cert FILE | --csr FILE | --spki-sha256 HEX [--reason TEXT]
    enroll keys list [--json]
    enroll keys unblock HEX
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from cryptography import x509

from enroll import key_blocklist
from enroll.approvals import cli_actor
from enroll.cli.commands import Opener, _out
from enroll.cli.tables import render
from enroll.crypto.keys import spki_sha256
from enroll.errors import MalformedInput

MAX_FILE = 64 * 1024


def register(sub: argparse._SubParsersAction[Any]) -> None:
    keys = sub.add_parser("keys", help="the key blocklist").add_subparsers(
        dest="keys_command")
    p = keys.add_parser("block", help="refuse a public key from now on")
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--cert", type=Path, help="a certificate (PEM or DER) carrying the key")
    which.add_argument("--csr", type=Path, help="a PKCS#10 request (PEM or DER) carrying it")
    which.add_argument("--spki-sha256", help="the SHA-256 of the key's SubjectPublicKeyInfo")
    p.add_argument("--reason", default="blocked by an operator",
                   help="shown to a client whose request is refused")
    p.add_argument("--actor", help="the name you act as; recorded with your OS account")
    p.set_defaults(func=cmd_keys_block)
    p = keys.add_parser("list", help="list blocked keys (newest first)")
    p.add_argument("--limit", type=int, default=1000)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_keys_list)
    p = keys.add_parser("unblock", help="allow a blocked key again")
    p.add_argument("spki_sha256", metavar="HEX")
    p.add_argument("--actor", help="the name you act as; recorded with your OS account")
    p.set_defaults(func=cmd_keys_unblock)


def _read(path: Path) -> bytes:
    try:
        data = path.read_bytes()[:MAX_FILE + 1]
    except OSError as exc:
        raise MalformedInput(f"cannot read {path}: {exc.strerror}") from exc
    if len(data) > MAX_FILE:
        raise MalformedInput(f"{path} is larger than {MAX_FILE} bytes")
    return data


def fingerprint_from_args(args: argparse.Namespace) -> str:
    if args.spki_sha256:
        return key_blocklist.parse_fingerprint(args.spki_sha256)
    path: Path = args.cert or args.csr
    data = _read(path)
    pem = data.lstrip().startswith(b"-----BEGIN")
    try:
        if args.cert:
            obj: Any = x509.load_pem_x509_certificate(data) if pem else \
                x509.load_der_x509_certificate(data)
        else:
            obj = x509.load_pem_x509_csr(data) if pem else x509.load_der_x509_csr(data)
        return spki_sha256(obj.public_key())
    except ValueError as exc:
        what = "certificate" if args.cert else "certificate request"
        raise MalformedInput(f"{path} is not a {what} (PEM or DER)") from exc


def cmd_keys_block(args: argparse.Namespace, opener: Opener) -> int:
    fingerprint = fingerprint_from_args(args)
    ctx = opener.context()
    with ctx.db.write() as tx:
        added = key_blocklist.block(tx, fingerprint, reason=args.reason,
                                    source=key_blocklist.OPERATOR,
                                    actor=cli_actor(args.actor).identity,
                                    now=ctx.clock.now())
    _out(f"blocked {fingerprint}" if added else f"already blocked {fingerprint}")
    return 0


def cmd_keys_list(args: argparse.Namespace, opener: Opener) -> int:
    ctx = opener.context()
    with ctx.db.read() as tx:
        entries = key_blocklist.list_blocked(tx, args.limit)
    rows = [{"spki_sha256": e.spki_sha256, "source": e.source, "serial": e.serial,
             "reason": e.reason, "actor": e.actor,
             "created_at": e.created_at.isoformat(timespec="seconds")} for e in entries]
    _out(render(rows, ["spki_sha256", "source", "reason", "created_at"], args.json))
    return 0


def cmd_keys_unblock(args: argparse.Namespace, opener: Opener) -> int:
    from enroll.errors import NotFound

    fingerprint = key_blocklist.parse_fingerprint(args.spki_sha256)
    ctx = opener.context()
    with ctx.db.write() as tx:
        removed = key_blocklist.unblock(tx, fingerprint, actor=cli_actor(args.actor).identity,
                                        now=ctx.clock.now())
    if not removed:
        raise NotFound(f"key {fingerprint} is not blocked")
    _out(f"unblocked {fingerprint}")
    return 0
