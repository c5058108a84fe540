"""Who approves: the approver identity four-eyes approval counts, and the CLI's.

An approval is counted once per distinct `Approver.identity`, and never from the
request's own requester: `is_requester` compares every name the approver goes by with the
requester identity the front-end authenticated.

The CLI's approver is the operating-system account that runs the command (from the
process's effective uid, not from ``$USER``), plus the name claimed with ``--actor``:
``os-user:alice`` or ``os-user:root as officer-bob``. The OS account is what the kernel
vouches for; the claimed name is recorded as the operator gave it and trusted as far as
that account is (operators sharing one account can claim any name: give each officer an
account of their own for real four eyes).
"""

from __future__ import annotations

import os
import pwd
from dataclasses import dataclass

MAX_IDENTITY = 512


@dataclass(frozen=True, slots=True)
class Approver:
    identity: str
    """What is recorded and counted (distinct approvers are distinct identities)."""
    names: frozenset[str]
    """Every name this approver goes by, for the requester check."""


def as_approver(actor: str | Approver) -> Approver:
    """An `Approver` from a plain actor string (API callers, plugins)."""
    if isinstance(actor, Approver):
        return actor
    return Approver(actor[:MAX_IDENTITY], frozenset({actor}))


def os_user() -> str:
    """The effective user running this process, as the kernel knows it."""
    uid = os.geteuid()
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"uid{uid}"


def cli_actor(claimed: str | None) -> Approver:
    """The CLI's actor: the OS account, and the ``--actor`` name if one was claimed."""
    user = os_user()
    base = f"os-user:{user}"
    claimed = (claimed or "").strip()[:200] or None
    identity = f"{base} as {claimed}" if claimed else base
    names = {identity, base, user} | ({claimed} if claimed else set())
    return Approver(identity[:MAX_IDENTITY], frozenset(names))


def is_requester(approver: Approver, requester: str) -> bool:
    return requester in approver.names
