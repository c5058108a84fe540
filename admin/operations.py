"""What an operator can read and do, once for the admin API and the console.

Every function takes the caller's `Principal`, checks the role the action needs
(`Principal.require`: the only check) and goes through the core, which enforces the
rules of issuance (four-eyes approval, the requester never approving its own request,
revocation reasons). Writes are audited twice by design: the core's own event
(``request.approved``, ``certificate.revoked``...) carries the caller's name as actor, and
`admin.audit.record` adds ``admin.<action>`` with what the operator asked for. Nothing here
knows HTTP or HTML: the API turns `EnrollError`s into problem documents, the console into
pages.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509 import ocsp

from enroll import (
    ca_certificates,
    inventory,
    lineage,
    migration_report,
    profile_drift,
    request_check,
    request_trail,
)
from enroll.approvals import as_approver
from enroll.context import AppContext
from enroll.errors import MalformedInput, NotFound
from enroll.model import (
    AuditEvent,
    AwaitingApproval,
    CertificateRecord,
    CertificateStatus,
    Issued,
    RequestRecord,
    RequestStatus,
)
from enroll.store import audit_chain, queries

from . import audit
from .principal import Principal
from .roles import Action

DER = Encoding.DER
MAX_REASON = 512
MAX_PAGE = 500
REVOCATION_REASONS = {r.name: r for r in x509.ReasonFlags
                      if r not in (x509.ReasonFlags.unspecified, x509.ReasonFlags.remove_from_crl)}
"""What an operator may give as reason (RFC 5280 names, e.g. ``keyCompromise``)."""


def revocation_reason(name: str) -> x509.ReasonFlags:
    """``keyCompromise`` / ``key_compromise`` / ``superseded``... → the flag."""
    for key, flag in REVOCATION_REASONS.items():
        if name in (key, flag.value):
            return flag
    raise MalformedInput(f"unknown revocation reason {name[:64]!r} (one of: "
                         f"{', '.join(sorted(f.value for f in REVOCATION_REASONS.values()))})")


# -- reads ---------------------------------------------------------------------------------

def inventory_page(ctx: AppContext, who: Principal, filters: inventory.Filters, *,
                   sort: str = "not_after", descending: bool = False, limit: int = 100,
                   offset: int = 0, after: str | None = None) -> inventory.Page:
    who.require(Action.READ)
    return inventory.list_identities(ctx.db, ctx.authority.profiles, filters,
                                     now=ctx.clock.now(), sort=sort, descending=descending,
                                     limit=limit, offset=offset, after=after)


def certificate(ctx: AppContext, who: Principal, serial: str) -> CertificateRecord:
    who.require(Action.READ)
    try:
        found = ctx.authority.certificate(serial)
    except ValueError:
        raise MalformedInput("a serial is hexadecimal") from None
    if found is None:
        raise NotFound("no certificate with this serial")
    return found


def chain(ctx: AppContext, who: Principal, ca: str) -> tuple[x509.Certificate, ...]:
    """The issuing CA's chain, issuing CA first."""
    who.require(Action.READ)
    if ca not in ctx.cas.names():
        raise NotFound(f"no CA named {ca[:64]!r}")
    return ctx.authority.chain(ca)


def requests(ctx: AppContext, who: Principal, status: RequestStatus | None = None,
             limit: int = 100, *, before: tuple[dt.datetime, str] | None = None,
             offset: int = 0) -> list[RequestRecord]:
    """Newest first; `before`: (created_at, id) of the previous page's last row (the
    API); `offset` skips that many (a page of the console's queue)."""
    who.require(Action.READ)
    if not 1 <= limit <= MAX_PAGE + 1:  # + 1: a page and whether there is a next
        raise MalformedInput(f"limit must be between 1 and {MAX_PAGE}")
    if not 0 <= offset <= inventory.MAX_OFFSET:
        raise MalformedInput(f"offset must be between 0 and {inventory.MAX_OFFSET}")
    return ctx.authority.list_requests(status, limit, before=before, offset=offset)


@dataclass(frozen=True, slots=True)
class CertificateFilters:
    status: CertificateStatus | None = None
    ca: str | None = None
    protocol: str | None = None
    profile: str | None = None
    endpoint: str | None = None
    identity: str | None = None
    expiring_within: int | None = None
    """Seconds: unrevoked and expiring within this."""


def certificates(ctx: AppContext, who: Principal, filters: CertificateFilters, *,
                 limit: int = 100, after: tuple[dt.datetime, str] | None = None
                 ) -> list[CertificateRecord]:
    """Issued certificates (not the CAs' own), soonest expiry first; `after`:
    (not_after, serial) of the previous page's last row."""
    who.require(Action.READ)
    if not 1 <= limit <= MAX_PAGE + 1:  # + 1: a page and whether there is a next
        raise MalformedInput(f"limit must be between 1 and {MAX_PAGE}")
    now = ctx.clock.now()
    within = filters.expiring_within
    with ctx.db.read() as tx:
        return queries.list_certificates(
            tx, status=filters.status, ca=filters.ca, protocol=filters.protocol,
            profile=filters.profile, endpoint=filters.endpoint, identity=filters.identity,
            expiring=(now, now + dt.timedelta(seconds=within)) if within is not None else None,
            by_expiry=True, after=after, limit=limit)


def request(ctx: AppContext, who: Principal, request_id: str) -> RequestRecord:
    who.require(Action.READ)
    found = ctx.authority.request(request_id[:128])
    if found is None:
        raise NotFound("no such request")
    return found


def approvers(ctx: AppContext, who: Principal, request_id: str) -> list[str]:
    who.require(Action.READ)
    return ctx.authority.approvers(request_id[:128])


def lineage_of(ctx: AppContext, who: Principal, target: str) -> list[list[lineage.Link]]:
    """The chains of an identity, or the chain of one serial (`lineage.chains_for`)."""
    who.require(Action.READ)
    with ctx.db.read() as tx:
        return lineage.chains_for(tx, target)


def migration(ctx: AppContext, who: Principal,
              profile: str | None = None) -> list[migration_report.ProfileStatus]:
    who.require(Action.READ)
    with ctx.db.read() as tx:
        return migration_report.status(tx, ctx.authority.profiles, ctx.clock.now(), profile)


def audit_events(ctx: AppContext, who: Principal, *, after: int = 0, limit: int = 100,
                 type: str | None = None, actor: str | None = None,
                 serial: str | None = None, request_id: str | None = None
                 ) -> list[AuditEvent]:
    """One page of the audit log, oldest first, after event id `after`."""
    who.require(Action.READ)
    if not 1 <= limit <= MAX_PAGE:
        raise MalformedInput(f"limit must be between 1 and {MAX_PAGE}")
    if after < 0:
        raise MalformedInput("after must not be negative")
    with ctx.db.read() as tx:
        return queries.page_audit(tx, after=after, limit=limit, type=type, actor=actor,
                                  serial=serial, request_id=request_id)


def verify_audit(ctx: AppContext, who: Principal) -> audit_chain.Verdict:
    """Seal what is pending, then walk the whole chain."""
    who.require(Action.READ)
    audit_chain.chain_all(ctx.db)
    with ctx.db.read() as tx:
        verdict = audit_chain.verify(tx)
    audit.record(ctx, who, "audit.verified",
                 details={"events": verdict.events, "ok": verdict.ok})
    return verdict


@dataclass(frozen=True, slots=True)
class CAState:
    name: str
    certificate: x509.Certificate
    chain: tuple[x509.Certificate, ...]
    revoked: bool
    crl_number: int | None
    crl_this_update: dt.datetime | None
    crl_next_update: dt.datetime | None

    def as_json(self, now: dt.datetime) -> dict[str, Any]:
        cert = self.certificate
        return {
            "name": self.name, "subject": cert.subject.rfc4514_string(),
            "serial": format(cert.serial_number, "x"),
            "not_before": _time(cert.not_valid_before_utc),
            "not_after": _time(cert.not_valid_after_utc),
            "days_left": (cert.not_valid_after_utc - now).days,
            "revoked": self.revoked, "chain_length": len(self.chain),
            "crl": None if self.crl_number is None else {
                "number": self.crl_number, "this_update": _time(self.crl_this_update),
                "next_update": _time(self.crl_next_update),
                "stale": self.crl_next_update is not None and self.crl_next_update < now},
        }


def cas(ctx: AppContext, who: Principal) -> list[CAState]:
    who.require(Action.READ)
    out = []
    with ctx.db.read() as tx:
        for name in ctx.cas.names():
            stored = queries.get_ca(tx, name)
            if stored is None:
                continue
            crl = queries.get_crl(tx, name)
            revoked = queries.revoked_serial(
                tx, (format(stored.certificate.serial_number, "x"),)) is not None
            out.append(CAState(name, stored.certificate, stored.chain, revoked,
                               crl[0] if crl else None, crl[1] if crl else None,
                               crl[2] if crl else None))
    return out


def issued_per_day(ctx: AppContext, who: Principal, days: int = 14
                   ) -> list[tuple[dt.date, dict[str, int]]]:
    """Certificates issued on each of the last `days` UTC days (today last), by protocol
    (the CAs' own certificates not counted): one indexed range count per day."""
    who.require(Action.READ)
    if not 1 <= days <= 92:
        raise MalformedInput("days must be between 1 and 92")
    today = ctx.clock.now().astimezone(dt.UTC).date()
    out: list[tuple[dt.date, dict[str, int]]] = []
    with ctx.db.read() as tx:
        for back in range(days - 1, -1, -1):
            day = today - dt.timedelta(days=back)
            start = dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC)
            rows = tx.all("SELECT protocol, COUNT(*) AS n FROM certificates WHERE "
                          "created_at >= ? AND created_at < ? AND protocol != ? "
                          "GROUP BY protocol",
                          (tx.when(start), tx.when(start + dt.timedelta(days=1)),
                           queries.CA_PROTOCOL))
            out.append((day, {str(r["protocol"]): int(r["n"]) for r in rows}))
    return out


def expiring_count(ctx: AppContext, who: Principal, within: int = 30 * 86400
                   ) -> tuple[int, bool]:
    """How many identities are live and expire within `within` seconds (as ``enroll
    inventory --expiring-within``), and whether there are more than one page counts."""
    page = inventory_page(ctx, who, inventory.Filters(expiring_within=within),
                          limit=inventory.MAX_LIMIT)
    return len(page.items), page.next is not None


def ca_ocsp_status(ctx: AppContext, who: Principal, name: str) -> str | None:
    """What this engine's OCSP responder answers for CA `name`'s own certificate
    (``good`` / ``revoked`` / ``unknown``, or the responder's error status), asked as a
    relying party would; None for a root (no issuer to ask)."""
    who.require(Action.READ)
    parent = ctx.config.cas[name].parent if name in ctx.config.cas else None
    if parent is None:
        return None
    cert, issuer = ctx.cas.get(name).certificate, ctx.cas.get(parent).certificate
    req = ocsp.OCSPRequestBuilder().add_certificate(cert, issuer, hashes.SHA1()).build()  # noqa: S303 - RFC 5019 CertID
    answer = ocsp.load_der_ocsp_response(ctx.ocsp.answer(req.public_bytes(DER)).der)
    if answer.response_status is not ocsp.OCSPResponseStatus.SUCCESSFUL:
        return answer.response_status.name.lower()
    return answer.certificate_status.name.lower()


# -- troubleshooting (reads: the API's per-call event is their only audit) ---------------

CHECK_PROTOCOLS = ("scep", "est", "acme")
"""The doors a CSR check may say it comes through."""


def check_csr(ctx: AppContext, who: Principal, csr: x509.CertificateSigningRequest,
              profile: str, *, protocol: str = "est", endpoint: str = "default",
              requester: str | None = None) -> request_check.RequestCheck:
    """What the pipeline would decide for `csr` under `profile` through that door, and
    the certificate it would build (`enroll profiles check`); stores and signs nothing.
    `requester` stands for whoever the door would authenticate (default: the caller)."""
    who.require(Action.READ)
    if protocol not in CHECK_PROTOCOLS:
        raise MalformedInput(f"protocol: one of {', '.join(CHECK_PROTOCOLS)}")
    request = request_check.request_for(ctx.config, csr, profile[:64], protocol[:16],
                                        endpoint[:64], requester or who.name)
    return request_check.check_request(ctx.authority, request)


def certificate_drift(ctx: AppContext, who: Principal,
                      serial: str) -> profile_drift.CertificateDrift:
    """How one certificate differs from what its profile builds today (a CA's own
    certificate has no profile: `MalformedInput`)."""
    record = certificate(ctx, who, serial)
    if record.protocol == queries.CA_PROTOCOL:
        raise MalformedInput(f"{record.serial_hex} is the certificate of "
                             f"{record.profile.removeprefix('ca:')!r}, a CA: it is built "
                             "from the CA's settings, not a profile")
    return profile_drift.compare(record, ctx.authority.profiles)


def profile_drift_report(ctx: AppContext, who: Principal, name: str, *, limit: int = 100,
                         live_only: bool = True) -> profile_drift.ProfileDrift:
    """Every (live) certificate of profile `name` compared with it, a page at a time;
    the first `limit` differing ones listed, all counted (`enroll certs check --profile`)."""
    who.require(Action.READ)
    if not 1 <= limit <= MAX_PAGE:
        raise MalformedInput(f"limit must be between 1 and {MAX_PAGE}")
    if name not in ctx.authority.profiles:
        raise NotFound(f"no profile named {name[:64]!r}")
    return profile_drift.check_profile(ctx.db, ctx.authority.profiles, name,
                                       ctx.clock.now(), limit=limit, live_only=live_only)


def request_trail_of(ctx: AppContext, who: Principal,
                     request_id: str) -> request_trail.RequestTrail:
    """A request's whole trail (`enroll requests show`), or a policy denial's."""
    who.require(Action.READ)
    return request_trail.trail(ctx.db, ctx.authority.profiles, request_id[:64])


# -- actions -------------------------------------------------------------------------------

def approve(ctx: AppContext, who: Principal, request_id: str) -> Issued | AwaitingApproval:
    """One approval by `who`; the core counts distinct approvers (four-eyes) and refuses
    the requester's own approval."""
    who.require(Action.APPROVE)
    outcome = ctx.authority.approve(request_id[:128], as_approver(who.name))
    audit.record(ctx, who, "request.approve", request_id=request_id[:128],
                 details={"complete": isinstance(outcome, Issued)})
    return outcome


def reject(ctx: AppContext, who: Principal, request_id: str, reason: str) -> RequestRecord:
    who.require(Action.APPROVE)
    reason = reason.strip()[:MAX_REASON]
    if not reason:
        raise MalformedInput("a rejection needs a reason")
    record = ctx.authority.reject(request_id[:128], who.name, reason)
    audit.record(ctx, who, "request.reject", request_id=record.id, details={"reason": reason})
    return record


def revoke(ctx: AppContext, who: Principal, serial: str, reason: str) -> CertificateRecord:
    who.require(Action.REVOKE)
    flag = revocation_reason(reason)
    try:
        record = ctx.authority.revoke(serial, flag, who.name)
    except ValueError:
        raise MalformedInput("a serial is hexadecimal") from None
    audit.record(ctx, who, "certificate.revoke", serial=record.serial_hex,
                 details={"reason": flag.value})
    return record


def revoke_identity(ctx: AppContext, who: Principal, identity: str, reason: str, *,
                    dry_run: bool = False) -> list[CertificateRecord]:
    """Every live certificate of one identity, whichever door issued it."""
    who.require(Action.REVOKE)
    flag = revocation_reason(reason)
    done = ctx.authority.revoke_all(identity=identity[:1024], reason=flag, actor=who.name,
                                    dry_run=dry_run)
    if not dry_run:
        audit.record(ctx, who, "identity.revoke",
                     details={"identity": identity[:MAX_REASON], "reason": flag.value,
                              "count": len(done)})
    return done


def revoke_ca(ctx: AppContext, who: Principal, name: str, reason: str) -> CertificateRecord:
    """Revoke CA `name`'s certificate: its issuer's CRL and OCSP list it and the CA
    issues nothing more (`enroll ca revoke`). A CA-admin action."""
    who.require(Action.CA_ADMIN)
    flag = revocation_reason(reason)
    serial = ca_certificates.serial_of(ctx.cas, name[:64])
    record = ctx.authority.revoke(serial, flag, who.name)
    audit.record(ctx, who, "ca.revoke", serial=record.serial_hex,
                 details={"ca": name[:64], "reason": flag.value})
    return record


def _time(value: dt.datetime | None) -> str | None:
    return value.isoformat(timespec="seconds") if value is not None else None
