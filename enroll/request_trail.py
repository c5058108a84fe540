"""Why was this refused? ``enroll requests show ID``: a request's whole trail.

Read from what the pipeline records: the request row (door, endpoint, requester and how
it authenticated, the names accepted, status and reason), its approvals, and the audit
events under its id (the votes and the reason it was held or approved, each approval,
a rejection or expiry, the signing, a failure, a revocation). A request a policy
plugin denied stores no row: its ``request.denied`` event carries an id of its own, the
door, requester, subject and every plugin's vote, and the trail is read from it alone.

A CSR the profile's rules refused stores nothing under an id (refusals are counted per
door, reason and client in ``request.refused`` events, `enroll.refusals`): test that
CSR with ``enroll profiles check`` instead.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from enroll.errors import NotFound
from enroll.model import AuditEvent, RequestRecord, RequestStatus
from enroll.profiles import Profile
from enroll.store import queries
from enroll.store.db import Database
from enroll.store.request_approvals import approvals_of

MAX_EVENTS = 500
"""Audit events shown for one request (a request has a handful)."""
DENIED = "denied"


@dataclass(frozen=True, slots=True)
class TrailStep:
    at: dt.datetime | None
    step: str
    """authentication, rules, votes, approval, rejection, signing, revocation…"""
    actor: str
    summary: str
    details: Mapping[str, Any] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {"at": None if self.at is None else self.at.isoformat(timespec="seconds"),
                "step": self.step, "actor": self.actor, "summary": self.summary,
                "details": dict(self.details)}


@dataclass(frozen=True, slots=True)
class RequestTrail:
    request_id: str
    status: str
    """The request's status, or ``denied`` for a policy denial (no row)."""
    profile: str
    protocol: str
    endpoint: str
    requester: str
    auth_method: str
    subject: str
    sans: tuple[str, ...]
    reason: str
    certificate_serial: str | None
    approvals: tuple[tuple[str, dt.datetime], ...]
    approvals_required: int
    steps: tuple[TrailStep, ...]
    answer: str
    """What the client is answered now (a poll, a retry)."""

    def as_json(self) -> dict[str, Any]:
        return {"id": self.request_id, "status": self.status, "profile": self.profile,
                "protocol": self.protocol, "endpoint": self.endpoint,
                "requester": self.requester, "auth_method": self.auth_method,
                "subject": self.subject, "sans": list(self.sans), "reason": self.reason,
                "certificate_serial": self.certificate_serial,
                "approvals": [{"approver": a, "at": at.isoformat(timespec="seconds")}
                              for a, at in self.approvals],
                "approvals_required": self.approvals_required,
                "steps": [s.as_json() for s in self.steps], "answer": self.answer}


def _votes(details: Mapping[str, Any]) -> str:
    votes = details.get("votes")
    if votes is None:
        return "votes not recorded"
    if not votes:
        return "no plugin voted"
    return "; ".join(f"{v.get('plugin')}: {v.get('vote')}"
                     + (f" ({v['reason']})" if v.get("reason") else "") for v in votes)


def _step(e: AuditEvent) -> TrailStep:
    """One audit event as a step of the trail."""
    d = e.details
    kind, text = e.type, ""
    if e.type in ("request.pending", "request.approved") and "votes" in d \
            or e.type == "request.pending":
        kind = "votes"
        held = f"held for approval: {d.get('reason')}" if e.type == "request.pending" \
            else "approved automatically"
        text = f"{_votes(d)}; {held}"
    elif e.type in ("request.approved", "request.approval"):
        kind = "approval"
        text = f"approval {d.get('approvals')} of {d.get('required')} " \
               f"({', '.join(d.get('approvers') or [])})" \
               + ("; approved" if e.type == "request.approved" else "")
    elif e.type == "request.denied":
        kind, text = "votes", f"{_votes(d)}; denied"
    elif e.type == "request.approval_refused":
        kind, text = "approval", f"refused: {d.get('reason')}"
    elif e.type == "request.rejected":
        kind, text = "rejection", str(d.get("reason"))
    elif e.type == "request.expired":
        kind, text = "expiry", f"not approved within {d.get('pending_expiry')}s"
    elif e.type == "request.failed":
        kind = "signing"
        text = f"failed: {d.get('reason')}" + (" (retryable)" if d.get("retryable") else "")
    elif e.type == "request.recovering":
        kind, text = "signing", f"recovery re-signs under {d.get('reserved_serial')}"
    elif e.type == "certificate.issued":
        kind, text = "signing", f"issued {e.serial_hex} by CA {d.get('ca')}, " \
                                f"not after {d.get('not_after')}"
    elif e.type == "certificate.superseded":
        kind, text = "renewal", f"certificate {e.serial_hex} superseded by {d.get('by')}"
    elif e.type == "certificate.revoked":
        kind, text = "revocation", f"{e.serial_hex} revoked ({d.get('reason')})"
    elif e.type == "migration.straggler":
        kind, text = "migration policy", f"straggler ({d.get('mode')}, moving to " \
                                         f"{d.get('to')})"
    return TrailStep(e.at, kind, e.actor, text, d)


def _answer(status: str, reason: str, serial: str | None, approvals: int,
            required: int) -> str:
    if status == RequestStatus.ISSUED.value:
        return f"certificate {serial}"
    if status == RequestStatus.PENDING.value:
        return f"pending ({reason}; {approvals} of {required} approvals): the client polls"
    if status == RequestStatus.APPROVED.value:
        return "pending: being signed (if this lasts, the recovery pass finishes it)"
    if status == DENIED:
        return f"refused: {reason}"
    return f"rejected: {reason}"


def trail(db: Database, profiles: Mapping[str, Profile], request_id: str) -> RequestTrail:
    """The trail of request `request_id` (`NotFound` if neither a request nor an
    audit event has that id); `profiles` give the approvals a request needs."""
    request_id = request_id[:64]
    with db.read() as tx:
        record = queries.get_request(tx, request_id)
        events = queries.list_audit(tx, request_id=request_id, limit=MAX_EVENTS)
        approvals = approvals_of(tx, request_id) if record is not None else []
    if record is None and not events:
        raise NotFound(f"no request {request_id!r}")
    name = record.profile if record is not None else str(events[0].details.get("profile"))
    profile = profiles.get(name)
    required = profile.approvals_required if profile is not None else 1
    steps = [_step(e) for e in events]
    if record is not None:
        return _of_record(record, tuple(approvals), required, steps)
    return _of_denial(request_id, events[0], required, steps)


def _authentication(at: dt.datetime, protocol: str, endpoint: str, requester: str,
                    method: str) -> TrailStep:
    return TrailStep(at, "authentication", requester,
                     f"{protocol} endpoint {endpoint or '-'}: {requester} "
                     f"({method or 'method not recorded'})")


def _of_record(r: RequestRecord, approvals: tuple[tuple[str, dt.datetime], ...],
               required: int, steps: list[TrailStep]) -> RequestTrail:
    head = [_authentication(r.created_at, r.protocol, r.endpoint, r.requester,
                            r.auth_method),
            TrailStep(r.created_at, "rules", "system",
                      f"passed the profile's rules for {r.profile} (subject "
                      f"{r.subject or '-'}; names {', '.join(r.sans) or '-'}; identity "
                      f"{r.identity or '-'})")]
    return RequestTrail(
        request_id=r.id, status=r.status.value, profile=r.profile, protocol=r.protocol,
        endpoint=r.endpoint, requester=r.requester, auth_method=r.auth_method,
        subject=r.subject, sans=r.sans, reason=r.reason,
        certificate_serial=r.certificate_serial, approvals=approvals,
        approvals_required=required, steps=tuple(head + steps),
        answer=_answer(r.status.value, r.reason, r.certificate_serial, len(approvals),
                       required))


def _of_denial(request_id: str, first: AuditEvent, required: int,
               steps: list[TrailStep]) -> RequestTrail:
    d = first.details
    reason = str(d.get("reason") or "")
    head = [_authentication(first.at, str(d.get("protocol")), str(d.get("endpoint", "")),
                            first.actor, str(d.get("auth_method") or "")),
            TrailStep(first.at, "rules", "system",
                      f"passed the profile's rules for {d.get('profile')}")]
    return RequestTrail(
        request_id=request_id, status=DENIED, profile=str(d.get("profile")),
        protocol=str(d.get("protocol")), endpoint=str(d.get("endpoint", "")),
        requester=first.actor, auth_method=str(d.get("auth_method") or ""),
        subject=str(d.get("subject", "")), sans=tuple(d.get("sans") or ()), reason=reason,
        certificate_serial=None, approvals=(), approvals_required=required,
        steps=tuple(head + steps), answer=_answer(DENIED, reason, None, 0, required))
