"""The ``enroll`` command line: one sub-command per routine operator task."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from enroll import __version__
from enroll.cli import (
    commands,
    inventory,
    keys,
    lifecycle,
    limits,
    lineage,
    migration,
    troubleshoot,
)
from enroll.errors import ConfigError, EnrollError, NotInitialised
from enroll.plugin_loader import build_plugin_manager


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="enroll", description=(
        "Certificate enrollment engine: one CA core behind SCEP, EST and ACME."))
    parser.add_argument("--version", action="version", version=f"enroll {__version__}")
    parser.add_argument("--config", type=Path, help="config file (default: "
                        "$ENROLL_CONFIG, else <data-dir>/enroll.toml, else built-in defaults)")
    parser.add_argument("--data-dir", type=Path,
                        help="data directory (default: $ENROLL_DATA_DIR or ./enroll-data)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.register(sub)
    keys.register(sub)
    limits.register(sub)
    inventory.register(sub)
    migration.register(sub)
    lineage.register(sub)
    lifecycle.register(sub)
    troubleshoot.register(sub)
    pm = build_plugin_manager()
    pm.hook.enroll_cli_commands(subparsers=sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        result = args.func(args, commands.Opener(args, dict(os.environ)))
    except ConfigError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2
    except EnrollError as exc:
        print(f"error: {exc.detail}", file=sys.stderr)
        return 1
    except NotInitialised as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return int(result or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
