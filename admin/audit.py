"""The operators' door's audit events: one hash-chained event per call, with the
caller's name as the actor (`enroll.store.queries.add_audit`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from enroll.context import AppContext
from enroll.store import queries

from .principal import Principal

MAX_DETAIL = 512


def record(ctx: AppContext, actor: Principal | str, type: str, *,
           details: Mapping[str, Any] | None = None, serial: str | None = None,
           request_id: str | None = None) -> None:
    """Append ``admin.<type>``. Never carries a secret: callers pass names, not values."""
    name = actor.name if isinstance(actor, Principal) else actor
    clean = {k: (v[:MAX_DETAIL] if isinstance(v, str) else v)
             for k, v in (details or {}).items()}
    with ctx.db.write() as tx:
        queries.add_audit(tx, at=ctx.clock.now(), type=f"admin.{type}", actor=name,
                          request_id=request_id, serial=serial, details=clean)
