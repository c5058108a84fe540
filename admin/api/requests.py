"""``/requests``: the approval queue. List, get, approve (four-eyes: the core counts
distinct approvers and refuses the requester's own approval), reject with a reason."""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
from typing import Any

from enroll.errors import MalformedInput
from enroll.model import Issued, RequestRecord, RequestStatus
from enroll.store.columns import utc

from .. import operations
from ..roles import Action
from .app import Call, Operation
from .inputs import LIMIT, REQUEST_ID, Field

STATUSES = tuple(s.value for s in RequestStatus)


def _time(value: dt.datetime) -> str:
    return value.isoformat(timespec="seconds")


def as_json(rec: RequestRecord, approvers: list[str] | None = None,
            required: int | None = None) -> dict[str, Any]:
    return {
        "id": rec.id, "status": rec.status.value, "profile": rec.profile, "ca": rec.ca,
        "protocol": rec.protocol, "endpoint": rec.endpoint, "requester": rec.requester,
        "auth_method": rec.auth_method, "subject": rec.subject, "sans": list(rec.sans),
        "identity": rec.identity, "device_id": rec.device_id, "replaces": rec.replaces,
        "reason": rec.reason, "certificate_serial": rec.certificate_serial,
        "created_at": _time(rec.created_at), "updated_at": _time(rec.updated_at),
        "approvers": approvers or [], "approvals_required": required or 1,
        "csr_pem": rec.csr_pem}


def _cursor(rec: RequestRecord) -> str:
    raw = json.dumps([rec.created_at.isoformat(), rec.id], separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _before(token: str | None) -> tuple[dt.datetime, str] | None:
    if token is None:
        return None
    try:
        when, rid = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        value = utc(when)
        if value is None or not isinstance(rid, str) or len(rid) > 64:
            raise ValueError(rid)
        return value, rid
    except (ValueError, TypeError, binascii.Error):
        raise MalformedInput("after: not a cursor of this listing") from None


def list_requests(call: Call) -> dict[str, Any]:
    q = call.query
    status = None if q["status"] == "all" else RequestStatus(q["status"])
    limit = q["limit"]
    found = operations.requests(call.ctx, call.who, status, limit + 1,
                                before=_before(q["after"]))
    items = found[:limit]
    return {"items": [as_json(r, _approvers(call, r), _required(call, r)) for r in items],
            "next": _cursor(items[-1]) if len(found) > limit and items else None}


def _required(call: Call, rec: RequestRecord) -> int:
    return call.ctx.authority.approvals_required(rec)


def _approvers(call: Call, rec: RequestRecord) -> list[str]:
    """Who approved so far (only a pending or approved request can have approvals
    that still count; the others skip the query)."""
    if rec.status not in (RequestStatus.PENDING, RequestStatus.APPROVED):
        return []
    return operations.approvers(call.ctx, call.who, rec.id)


def get_request(call: Call) -> dict[str, Any]:
    rec = operations.request(call.ctx, call.who, call.path["request_id"])
    return as_json(rec, operations.approvers(call.ctx, call.who, rec.id),
                   _required(call, rec))


def approve_request(call: Call) -> dict[str, Any]:
    rid = call.path["request_id"]
    outcome = operations.approve(call.ctx, call.who, rid)
    if isinstance(outcome, Issued):
        rec = operations.request(call.ctx, call.who, rid)
        return {"request_id": rid, "status": "issued", "serial": outcome.serial_hex,
                "approvers": operations.approvers(call.ctx, call.who, rid),
                "approvals_required": _required(call, rec)}
    return {"request_id": rid, "status": "pending", "serial": None,
            "approvers": list(outcome.approvers), "approvals_required": outcome.required}


def reject_request(call: Call) -> dict[str, Any]:
    rec = operations.reject(call.ctx, call.who, call.path["request_id"], call.body["reason"])
    return as_json(rec, operations.approvers(call.ctx, call.who, rec.id),
                   _required(call, rec))


def operations_() -> list[Operation]:
    tag = "requests"
    one = (REQUEST_ID,)
    return [
        Operation("GET", "/requests", Action.READ, list_requests,
                  "List requests, newest first", tag, "RequestPage", query=(
                      Field("status", "string", "default: pending",
                            enum=(*STATUSES, "all"), default="pending"),
                      LIMIT,
                      Field("after", "string", "the `next` cursor of the previous page",
                            minimum=1, maximum=256)),
                  errors=(400,)),
        Operation("GET", "/requests/{request_id}", Action.READ, get_request,
                  "One request, with its approvers", tag, "Request", path_fields=one),
        Operation("POST", "/requests/{request_id}/approve", Action.APPROVE, approve_request,
                  "Approve a pending request", tag, "Approval", path_fields=one,
                  errors=(400, 404, 409),
                  description="With `approvals_required = 2` the first approval leaves the "
                              "request pending; a second, different approver issues it. "
                              "The same approver twice is a 409; the requester approving "
                              "its own request a 403."),
        Operation("POST", "/requests/{request_id}/reject", Action.APPROVE, reject_request,
                  "Reject a pending request with a reason", tag, "Request",
                  path_fields=one, errors=(400, 404, 409), body=(
                      Field("reason", "string", "shown to the requester where its "
                            "protocol can", required=True, minimum=1,
                            maximum=operations.MAX_REASON),)),
    ]
