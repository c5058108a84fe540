"""``/audit``: page through the hash-chained audit log (oldest first, after an event
id), and verify the chain."""

from __future__ import annotations

from typing import Any

from enroll.model import AuditEvent

from .. import operations
from ..roles import Action
from .app import Call, Operation
from .inputs import LIMIT, Field


def as_json(event: AuditEvent) -> dict[str, Any]:
    return {"id": event.id, "at": event.at.isoformat(timespec="seconds"), "type": event.type,
            "actor": event.actor, "request_id": event.request_id,
            "serial": event.serial_hex, "details": dict(event.details), "hash": event.hash}


def list_audit(call: Call) -> dict[str, Any]:
    q = call.query
    after = int(q["after"]) if q["after"] is not None else 0
    events = operations.audit_events(call.ctx, call.who, after=after, limit=q["limit"],
                                     type=q["type"], actor=q["actor"], serial=q["serial"],
                                     request_id=q["request_id"])
    full = len(events) == q["limit"]
    return {"items": [as_json(e) for e in events],
            "next": str(events[-1].id) if full and events else None}


def verify_audit(call: Call) -> dict[str, Any]:
    verdict = operations.verify_audit(call.ctx, call.who)
    return {"ok": verdict.ok, "events": verdict.events, "broken_id": verdict.broken_id,
            "problem": verdict.problem, "pending": verdict.pending}


def operations_() -> list[Operation]:
    return [
        Operation("GET", "/audit", Action.READ, list_audit,
                  "Audit events, oldest first", "audit", "AuditPage", query=(
                      Field("after", "string", "the `next` of the previous page: an "
                            "event id", minimum=1, maximum=12, pattern=r"^[0-9]{1,12}$"),
                      LIMIT,
                      Field("type", "string", "exact, or a prefix ending in `.` "
                            "(`admin.`)", minimum=1, maximum=256),
                      Field("actor", "string", minimum=1, maximum=256),
                      Field("serial", "string", "certificate serial (hex, as stored)",
                            minimum=1, maximum=256),
                      Field("request_id", "string", minimum=1, maximum=256)),
                  errors=(400,)),
        Operation("POST", "/audit/verify", Action.READ, verify_audit,
                  "Seal pending events and verify the whole hash chain", "audit",
                  "AuditVerdict", errors=()),
    ]
