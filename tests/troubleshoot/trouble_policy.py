"""A policy plugin for the troubleshooting tests, loaded by import path (``plugins =
["trouble_policy"]``): a CN starting ``deny-`` is denied, ``hold-`` held for approval,
anything else allowed."""

from __future__ import annotations

from typing import Any

from enroll.hookspecs import hookimpl
from enroll.model import Decision

DENY_REASON = "devices named deny-* are retired (ticket OPS-42)"
HOLD_REASON = "devices named hold-* need an officer"


def _cn(request: Any) -> str:
    return " ".join(str(a.value) for a in request.csr.subject)


@hookimpl
def enroll_policy_vote(request: Any, profile: Any) -> Decision | None:
    cn = _cn(request)
    if cn.startswith("deny-"):
        return Decision.deny(DENY_REASON)
    if cn.startswith("hold-"):
        return Decision.pending(HOLD_REASON)
    return Decision.allow()
