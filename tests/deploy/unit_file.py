"""Reading deploy/systemd/enroll.service the way the tests need it: its settings in
order, its Environment= with systemd's specifiers expanded, and the system calls its
SystemCallFilter= lines allow (from `systemd-analyze syscall-filter`)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
UNIT = REPO / "deploy" / "systemd" / "enroll.service"
SYSTEMD_ANALYZE = "/usr/bin/systemd-analyze"


def settings(path: Path = UNIT) -> list[tuple[str, str, str]]:
    """(section, key, value) for every assignment, in file order."""
    out: list[tuple[str, str, str]] = []
    section = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1]
            continue
        key, _, value = line.partition("=")
        out.append((section, key.strip(), value.strip()))
    return out


def values(key: str, path: Path = UNIT) -> list[str]:
    return [v for _, k, v in settings(path) if k == key]


def environment(specifiers: dict[str, str], path: Path = UNIT) -> dict[str, str]:
    """Environment= of the unit, each %X replaced from `specifiers` (e.g. {"S": state
    root, "d": credentials directory}); an unknown specifier is an error."""
    env: dict[str, str] = {}

    def expand(match: re.Match[str]) -> str:
        return "%" if match.group(1) == "%" else specifiers[match.group(1)]

    for value in values("Environment", path):
        for item in value.split():
            name, _, setting = item.partition("=")
            env[name] = re.sub(r"%(.)", expand, setting)
    return env


def syscall_groups() -> dict[str, list[str]]:
    """Every @group of `systemd-analyze syscall-filter`: its members (names and @groups)."""
    out = subprocess.run([SYSTEMD_ANALYZE, "syscall-filter"], capture_output=True,
                         text=True, check=True, timeout=60).stdout
    groups: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in out.splitlines():
        item = line.strip()
        if line.startswith("@"):
            current = groups.setdefault(item, [])
        elif line.startswith("#"):
            current = None
        elif current is not None and item and not item.startswith("#"):
            current.append(item)
    return groups


def expand(item: str, groups: dict[str, list[str]]) -> set[str]:
    if not item.startswith("@"):
        return {item}
    names: set[str] = set()
    for member in groups[item]:
        names |= expand(member, groups)
    return names


def allowed_syscalls(path: Path = UNIT) -> set[str]:
    """The allow list the unit's SystemCallFilter= lines make: the first names what is
    allowed (plus @default, which systemd always adds to an allow list), each later
    ``~`` line removes its calls, a later plain line adds."""
    groups = syscall_groups()
    allowed: set[str] | None = None
    for value in values("SystemCallFilter", path):
        deny = value.startswith("~")
        names: set[str] = set()
        for item in value.lstrip("~").split():
            names |= expand(item, groups)
        if allowed is None:
            if deny:
                raise ValueError("the unit's first SystemCallFilter= is a deny list")
            allowed = names | expand("@default", groups)
        elif deny:
            allowed -= names
        else:
            allowed |= names
    if allowed is None:
        raise ValueError("the unit has no SystemCallFilter=")
    return allowed
