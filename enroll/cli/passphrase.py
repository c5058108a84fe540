"""``enroll ca rotate-passphrase``: every sealed secret re-sealed under a new CA
passphrase in one transaction (`enroll.passphrase_rotation`).

    enroll ca rotate-passphrase [--new-passphrase-file FILE] [--update-passphrase-file]

The current passphrase is the configured one (``ca_passphrase``, ``ca_passphrase_file``
or ``ENROLL_CA_PASSPHRASE``). The new one is never an argument (argv is visible to every
user in ``ps``): it is read from ``--new-passphrase-file``, else prompted for twice on a
terminal, else read as the first line of standard input.
"""

from __future__ import annotations

import argparse
import getpass
import hmac
import sys
from pathlib import Path
from typing import Any

from enroll.cli.commands import Opener, _out
from enroll.config import Config
from enroll.config_values import Secret
from enroll.crypto.sealing import UnsealError
from enroll.errors import ConfigError, MalformedInput
from enroll.passphrase_rotation import check_new, rotate
from enroll.private_files import write_private

MAX_PASSPHRASE = 4096


def register(ca: argparse._SubParsersAction[Any]) -> None:
    p = ca.add_parser("rotate-passphrase",
                      help="re-seal every CA key and sealed secret under a new passphrase")
    p.add_argument("--new-passphrase-file", type=Path,
                   help="read the new passphrase from this file (default: prompt on a "
                        "terminal, else the first line of stdin)")
    p.add_argument("--update-passphrase-file", action="store_true",
                   help="after the rotation, write the new passphrase into the configured "
                        "ca_passphrase_file (0600)")
    p.add_argument("--actor", default="operator")
    p.set_defaults(func=cmd_ca_rotate_passphrase)


def _first_line(text: str) -> str:
    lines = text.splitlines()
    return lines[0].strip() if lines else ""


def read_new_passphrase(path: Path | None) -> Secret:
    """The new passphrase from `path`, a terminal prompt, or stdin's first line."""
    if path is not None:
        try:
            text = path.read_text()[:MAX_PASSPHRASE + 1]
        except OSError as exc:
            raise MalformedInput(f"cannot read {path}: {exc.strerror}") from exc
    elif sys.stdin.isatty():
        text = getpass.getpass("new CA passphrase: ")
        again = getpass.getpass("again: ")
        if not hmac.compare_digest(text.encode(), again.encode()):
            raise MalformedInput("the two passphrases differ")
    else:
        text = sys.stdin.readline(MAX_PASSPHRASE + 1)
    if len(text) > MAX_PASSPHRASE:
        raise MalformedInput(f"the new passphrase is longer than {MAX_PASSPHRASE} characters")
    return Secret(_first_line(text))


def passphrase_source(config: Config) -> tuple[str, Path | None]:
    """Where the engine reads its passphrase from, in words, and the file if it is one."""
    env = config.env_keys.get("ca_passphrase")
    if env:
        return f"the {env} environment variable", None
    where = str(config.source) if config.source else "the configuration"
    if "ca_passphrase" in config.raw:
        return f"ca_passphrase in {where}", None
    file_env = config.env_keys.get("ca_passphrase_file")
    path = Path(str(config.raw["ca_passphrase_file"]))
    named = f" (set by {file_env})" if file_env else f" (ca_passphrase_file in {where})"
    return f"the file {path}{named}", path


def cmd_ca_rotate_passphrase(args: argparse.Namespace, opener: Opener) -> int:
    config = opener.config()
    old = config.ca_passphrase
    if old is None:
        raise ConfigError("ca_passphrase", "no CA passphrase is configured, so nothing is "
                          "sealed under one")
    source, path = passphrase_source(config)
    if args.update_passphrase_file and path is None:
        raise ConfigError("ca_passphrase_file", f"--update-passphrase-file: the passphrase "
                          f"comes from {source}, not from a file")
    new = read_new_passphrase(args.new_passphrase_file)
    check_new(old, new)
    # No CA key is opened first: a blob that already opens with the new passphrase is
    # kept, so the command can be run again (old passphrase still configured) to pick up
    # a secret a worker sealed under the old one after the first run.
    ctx = opener.context()
    try:
        counts = rotate(ctx.db, ctx.pm, ctx.clock, old, new, actor=args.actor)
    except UnsealError as exc:
        raise ConfigError("ca_passphrase", f"nothing was changed: {exc}") from exc
    _out("every sealed secret is now under the new passphrase (one transaction): " +
         ", ".join(f"{n} {kind}" for kind, n in sorted(counts.items())))
    if args.update_passphrase_file and path is not None:
        write_private(path, new.reveal() + "\n")
        _out(f"wrote the new passphrase to {path}")
        _out("restart every enroll worker (on every host) so they read it")
    else:
        _out(f"the engine reads its passphrase from {source}: put the new passphrase "
             "there before the next start, then restart every enroll worker (on every "
             "host); the old passphrase no longer opens the store")
    return 0
