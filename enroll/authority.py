"""The authority: one issuance pipeline for every protocol.

    EnrollmentRequest ─► profile rules ─► policy votes ─► pending? store, return Pending
                      ─► record "approved" (serial reserved, audit)      [transaction 1]
                      ─► amend hooks ─► CA backend signs
                      ─► certificate + request "issued" + audit          [transaction 2]
                      ─► events hook ─► Issued

Signing happens between two commits on purpose: if the process dies after signing, the
certificate never reached a client (it is returned only after transaction 2 commits)
and the audit trail shows a request approved with a reserved serial and no
``certificate.issued`` event. The recovery pass (`enroll.recovery`, `recover_stale`)
finishes such a request once it has been ``approved`` longer than the grace period: it
claims the row (a conditional UPDATE of ``updated_at``, so one worker of many does it),
signs under a new serial and stores, and the client's retry is answered with that
certificate. A retry that finds its request stale runs that recovery itself.

No certificate is issued from a CA whose certificate, or an issuer's, is stored revoked
(`enroll ca revoke`): `PolicyDenied`, and nothing is stored.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import threading
import uuid
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import pluggy
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from sqlalchemy.exc import IntegrityError

from enroll import (
    approvals,
    bulk_revocation,
    certificate_build,
    fleet_rules,
    key_blocklist,
    key_checks,
    metrics,
    migration_rules,
    policy_votes,
    profile_rules,
    refusal_buffer,
    refusals,
    renewal,
    request_writes,
    validity_rules,
)
from enroll.approvals import Approver
from enroll.attestation import AttestationContext, AttestedIdentity
from enroll.ca import CABackend
from enroll.ca_registry import CARegistry
from enroll.clock import Clock
from enroll.crypto.keys import spki_sha256
from enroll.crypto.serials import new_serial, parse_serial_hex, serial_hex
from enroll.csr import check_csr_signature
from enroll.errors import (
    Conflict,
    EnrollError,
    MalformedInput,
    NotFound,
    PolicyDenied,
    Unauthorized,
    Unavailable,
)
from enroll.model import (
    NOT_RECOVERABLE,
    AwaitingApproval,
    CertificateRecord,
    CertificateStatus,
    ChallengeContext,
    EnrollmentRequest,
    IssuanceRequest,
    Issued,
    Outcome,
    Pending,
    Rejected,
    RequestRecord,
    RequestStatus,
    Vote,
)
from enroll.names import names_as_strings
from enroll.policy_votes import combine as combine  # re-exported: callers import it here
from enroll.profiles import Profile
from enroll.revocation import CRLService
from enroll.store import identities, queries
from enroll.store.db import Database
from enroll.store.transaction import Tx

if TYPE_CHECKING:
    from enroll.config import Config

log = logging.getLogger("enroll.authority")
PEM = serialization.Encoding.PEM
PENDING_RETRY_AFTER = 30
RETRY_WAIT_SECONDS = 3.0
DEFAULT_PENDING_EXPIRY = 7 * 86400
"""For a pending request whose profile is no longer configured."""
SWEEP_PAGE = 500
"""Pending requests the expiry sweep reads at a time."""


class Authority:
    def __init__(self, *, db: Database, pm: pluggy.PluginManager, cas: CARegistry,
                 profiles: dict[str, Profile], clock: Clock, crls: CRLService,
                 crash_after_sign: Callable[[], None] | None = None,
                 recovery_grace: float = 60.0, config: Config | None = None) -> None:
        self.db = db
        # Handed to the hooks that read a plugin's own section (challenge verifiers,
        # event listeners); the core itself reads nothing from it here.
        self.config = config
        # Source endpoints' migration policies (they take precedence over a profile's).
        self.endpoint_migrations = config.endpoint_migrations if config is not None else {}
        self.pm = pm
        self.cas = cas
        self.profiles = profiles
        self.clock = clock
        self.crls = crls
        # Test seam: called between signing and storing to simulate a crash.
        self._crash_after_sign = crash_after_sign
        # How long a request may stay `approved` (signing) before recovery takes it over.
        self.recovery_grace = dt.timedelta(seconds=recovery_grace)
        # Requests this process is signing right now: a concurrent retry of the same
        # transaction waits on the event instead of polling the database.
        self._signing: dict[str, threading.Event] = {}
        self._signing_lock = threading.Lock()
        # Called with (CA, serial hex) right after a revocation commits (the OCSP
        # responder re-signs its stored answers); a failing one is logged, never raised.
        self.revocation_listeners: list[Callable[[str, str], None]] = []
        # Repeated refusals held between writes (enroll.refusal_buffer).
        self._refusals = refusal_buffer.RefusalBuffer()

    # -- queries ------------------------------------------------------------------------

    def profile(self, name: str) -> Profile:
        try:
            return self.profiles[name]
        except KeyError:
            raise NotFound(f"no profile named {name!r}") from None

    def chain(self, ca: str) -> tuple[x509.Certificate, ...]:
        """The CA's certificate first, up to and including the root."""
        return self.cas.get(ca).chain

    def certificate(self, serial: str | int) -> CertificateRecord | None:
        key = _serial_key(serial)
        with self.db.read() as tx:
            return queries.get_certificate(tx, key)

    def lookup(self, cert: x509.Certificate) -> CertificateRecord | None:
        """The stored record of exactly this certificate (serial and bytes), if this
        engine issued it to a client (a CA's own certificate is never a credential)."""
        record = self.certificate(cert.serial_number)
        if record is None or record.certificate != cert \
                or record.protocol == queries.CA_PROTOCOL:
            return None
        return record

    def lookup_key(self, public_key: Any) -> CertificateRecord | None:
        """The newest unrevoked certificate this engine issued to a client for
        `public_key`: a signature by the key proves its holder, whatever certificate
        carries it (a client re-keying signs with a self-signed certificate of its old
        key)."""
        with self.db.read() as tx:
            return queries.certificate_for_key(tx, spki_sha256(public_key))

    def request(self, request_id: str) -> RequestRecord | None:
        with self.db.read() as tx:
            return queries.get_request(tx, request_id)

    def status(self, request_id: str) -> Outcome:
        """Where a request stands now (for polling clients)."""
        record = self.request(request_id)
        if record is None:
            raise NotFound("no such request")
        return self._outcome(record)

    def find_transaction(self, protocol: str, endpoint: str,
                         transaction_id: str) -> RequestRecord | None:
        with self.db.read() as tx:
            return queries.find_request_by_transaction(tx, protocol, endpoint,
                                                       transaction_id)

    def verify_challenge(self, context: ChallengeContext) -> bool:
        """Ask the challenge-verification plugins; nobody answering means no."""
        return bool(self.pm.hook.enroll_verify_challenge(context=context, config=self.config))

    def verify_attestation(self, context: AttestationContext) -> AttestedIdentity | None:
        """Ask the attestation verifiers; None: no verifier knows the format."""
        found: AttestedIdentity | None = self.pm.hook.enroll_verify_attestation(
            context=context)
        return found

    def crl(self, issuer: bytes) -> bytes | None:
        """DER of the current CRL of the CA whose subject encodes to `issuer` (None:
        not a CA of ours)."""
        for name in self.cas.names():
            if self.cas.get(name).certificate.subject.public_bytes() == issuer:
                return self.crls.current(name)
        return None

    def check_public_key(self, public_key: Any) -> None:
        """Refuse (`BadCSR`) a key the engine would never certify: weak
        (`enroll.key_checks`, RSA exponent 65537) or on the blocklist. For keys that are
        not in a CSR: ACME account keys."""
        key_checks.check_public_key(public_key)
        key_blocklist.refuse_if_blocked(self.db, spki_sha256(public_key))

    # -- the pipeline -------------------------------------------------------------------

    def check(self, request: EnrollmentRequest) -> profile_rules.AcceptedRequest:
        """Run the profile's rules, and the bindings of the renewal rule, only (no
        policy, nothing stored)."""
        # Not attributed to the requester: a front-end may check before it authenticates.
        check_csr_signature(request.csr)
        return self._accept(request, self.profile(request.profile))

    def submit(self, request: EnrollmentRequest) -> Issued | Pending | Rejected:
        """Run the whole pipeline. Raises an `EnrollError` for a refused request, in
        which case nothing but (for policy denials) an audit event is stored."""
        started = self.clock.now()
        try:
            with refusals.attributed(request.requester.identity):
                outcome = self._submit(request)
        except EnrollError as exc:
            metrics.REJECTIONS.labels(request.protocol, type(exc).__name__).inc()
            self._emit("enroll_request_refused", request=request, reason=exc.detail,
                       config=self.config)
            raise
        if isinstance(outcome, Rejected):
            self._emit("enroll_request_refused", request=request, reason=outcome.reason,
                       config=self.config)
        metrics.observe_outcome(request.protocol, request.profile, outcome,
                                (self.clock.now() - started).total_seconds())
        return outcome

    def _submit(self, request: EnrollmentRequest) -> Issued | Pending | Rejected:
        profile = self.profile(request.profile)
        ca_name = request.ca or profile.ca
        backend = self.cas.get(ca_name)
        public_key = request.csr.public_key()
        fingerprint = spki_sha256(public_key)
        if request.transaction_id is not None:
            existing = self.find_transaction(request.protocol, request.endpoint,
                                             request.transaction_id)
            if existing is not None:
                answer = self._retry(existing, fingerprint)
                if answer is not None:
                    return answer
        check_csr_signature(request.csr)
        accepted = self._accept(request, profile)
        validity_rules.check_live(request, self.clock.now())
        key_blocklist.refuse_if_blocked(self.db, fingerprint)
        # A straggler of a migration: refused here (audited alone), or audited below.
        migration = migration_rules.enforce(self.db, profile, request, accepted.identity,
                                            self.clock.now(), self.endpoint_migrations)
        votes = policy_votes.collect(self.pm, request, profile)
        decision = policy_votes.decide(votes, profile)
        if decision.vote is Vote.DENY:
            self._record_denial(request, decision.reason, votes)
            raise PolicyDenied(decision.reason or "denied by policy")

        now = self.clock.now()
        request_id = str(uuid.uuid4())
        serial = new_serial()
        status = RequestStatus.PENDING if decision.vote is Vote.PENDING else RequestStatus.APPROVED
        replaces, link = fleet_rules.renewal_link(self.db, profile, self.profiles, request,
                                                  accepted.identity, now)
        row = {
            "id": request_id, "status": status.value, "profile": profile.name, "ca": ca_name,
            "protocol": request.protocol, "endpoint": request.endpoint,
            "requester": request.requester.identity,
            "auth_method": request.requester.method,
            "transaction_id": request.transaction_id, "key_fingerprint": fingerprint,
            "subject": accepted.subject.rfc4514_string(),
            "sans": names_as_strings(accepted.names), "replaces": replaces,
            "identity": accepted.identity,
            "device_id": fleet_rules.device_id_of(profile, request, accepted),
            "link": link,
            "reason": decision.reason, "certificate_serial": None,
            "csr_pem": request.csr.public_bytes(PEM).decode(),
            "attributes": validity_rules.to_attributes(request),
            "created_at": now, "updated_at": now,
        }
        signing = self._start_signing(request_id) if status is RequestStatus.APPROVED \
            else None
        try:
            try:
                with self.db.write() as tx:
                    if status is RequestStatus.APPROVED:
                        # In the insert's transaction: a refusal stores nothing.
                        _refuse_if_ca_revoked(tx, backend)
                    queries.insert_request(tx, row)
                    queries.add_audit(
                        tx, at=now, type=f"request.{status.value}",
                        actor=request.requester.identity, request_id=request_id,
                        details={"profile": profile.name, "protocol": request.protocol,
                                 "endpoint": request.endpoint, "reason": decision.reason,
                                 "auth_method": request.requester.method,
                                 "votes": policy_votes.as_details(votes),
                                 "reserved_serial": serial_hex(serial)
                                 if status is RequestStatus.APPROVED else None})
                    if migration is not None:
                        migration_rules.record(tx, now, profile, request, accepted.identity,
                                               migration, request_id,
                                               endpoints=self.endpoint_migrations)
            except IntegrityError:
                # A concurrent retry of the same transaction won the insert: answer as
                # it did.
                if request.transaction_id is None:
                    raise
                existing = self.find_transaction(request.protocol, request.endpoint,
                                                 request.transaction_id)
                answer = self._retry(existing, fingerprint) if existing is not None else None
                if answer is None:
                    raise Conflict("this transaction is being retried concurrently") \
                        from None
                return answer
            record = queries.record_from_row(row)
            if status is RequestStatus.PENDING:
                self._emit("enroll_request_pending", request=record)
                return Pending(request_id, PENDING_RETRY_AFTER, decision.reason)
            return self._sign_and_store(record, request, profile, backend.name, serial,
                                        accepted)
        finally:
            if signing is not None:
                self._end_signing(request_id, signing)

    def _accept(self, request: EnrollmentRequest,
                profile: Profile) -> profile_rules.AcceptedRequest:
        """The profile's rules, bound by what the front-end proved and by the
        certificates the request renews or was authenticated with."""
        return renewal.accept_bound(request, profile, self.profiles, self.certificate,
                                    self.clock.now())

    def _start_signing(self, request_id: str) -> threading.Event:
        signing = threading.Event()
        with self._signing_lock:
            self._signing[request_id] = signing
        return signing

    def _end_signing(self, request_id: str, signing: threading.Event) -> None:
        with self._signing_lock:
            self._signing.pop(request_id, None)
        signing.set()

    def _retry(self, existing: RequestRecord, fingerprint: str) -> Outcome | None:
        """The answer to a retried transaction, or None when it is to be treated as a
        new request: its certificate is no longer live (revoked or expired), so the
        transaction id is released (the old request keeps its history)."""
        if existing.key_fingerprint != fingerprint:
            raise Conflict("this transaction id was already used with another key")
        if existing.status is RequestStatus.APPROVED:
            # A concurrent attempt is signing right now (milliseconds). In this process:
            # wait for its answer (bounded) rather than telling the client to poll. In
            # another worker, or after a crash left the request `approved`: Pending, and
            # the client polls as its protocol says.
            with self._signing_lock:
                signing = self._signing.get(existing.id)
            if signing is not None:
                signing.wait(RETRY_WAIT_SECONDS)
            existing = self.request(existing.id) or existing
            if existing.status is RequestStatus.APPROVED and signing is None \
                    and existing.updated_at < self.clock.now() - self.recovery_grace:
                # Its signer died (or hangs): finish it now rather than answer pending.
                self._recover(existing.id)
                existing = self.request(existing.id) or existing
        if existing.status is RequestStatus.ISSUED and existing.certificate_serial:
            cert = self.certificate(existing.certificate_serial)
            if cert is None or cert.status is not CertificateStatus.VALID \
                    or cert.not_after <= self.clock.now():
                self._release(existing, "the certificate is no longer live")
                return None
        return self._outcome(existing)

    def _release(self, record: RequestRecord, reason: str) -> None:
        with self.db.write() as tx:
            request_writes.release(tx, self.clock.now(), record, reason)

    def _outcome(self, record: RequestRecord) -> Issued | Pending | Rejected:
        if record.status is RequestStatus.PENDING and self._due(record, self.clock.now()):
            # Expired at read time: a polling client is answered as for a rejection.
            self._expire(record, self.clock.now())
            record = self.request(record.id) or record
        if record.status is RequestStatus.ISSUED and record.certificate_serial:
            cert = self.certificate(record.certificate_serial)
            assert cert is not None
            return Issued(record.id, cert.certificate, self.chain(record.ca))
        if record.status in (RequestStatus.REJECTED, RequestStatus.FAILED,
                             RequestStatus.EXPIRED):
            return Rejected(record.id, record.reason or "rejected")
        return Pending(record.id, PENDING_RETRY_AFTER, record.reason)

    def _sign_and_store(self, record: RequestRecord, request: EnrollmentRequest,
                        profile: Profile, ca_name: str, serial: int,
                        accepted: profile_rules.AcceptedRequest | None = None) -> Issued:
        backend = self.cas.get(ca_name)
        now = self.clock.now()
        for _attempt in range(3):
            try:
                if accepted is None:
                    # Approval later than submission: the profile may have changed since.
                    # The names were bound at submission; the identity recorded then stays.
                    accepted = profile_rules.accept(profile, request.csr,
                                                    requester=record.requester)
                    if record.identity:
                        accepted = dataclasses.replace(accepted, identity=record.identity)
                issuance = certificate_build.build(self.pm, profile, accepted, request,
                                                   ca_name, backend.certificate, serial, now,
                                                   self.endpoint_migrations)
                cert = backend.issue(issuance)
            except EnrollError as exc:
                self._fail(record, exc.detail)
                raise
            except Exception as exc:
                log.exception("CA %s failed to sign request %s", ca_name, record.id)
                # Transient: the request is closed but its transaction id is released,
                # so the client's retry is a new attempt, not a refusal.
                self._fail(record, f"CA backend error: {type(exc).__name__}", retryable=True)
                raise Unavailable("the CA could not sign the certificate; retry later") \
                    from exc
            if self._crash_after_sign is not None:
                self._crash_after_sign()
            try:
                replaced = self._store_issued(record, cert, profile, ca_name, issuance,
                                              accepted.identity)
            except Conflict as exc:
                current = self.request(record.id)
                if current is not None and current.status is RequestStatus.ISSUED:
                    # Recovery finished it while this signer was slow: answer with the
                    # certificate stored (this one was never stored nor handed out).
                    return self._outcome(current)  # type: ignore[return-value]
                self._fail(record, exc.detail)
                raise
            except IntegrityError:
                # A duplicate serial (or a racing approval) – never hand out this one.
                with self.db.read() as tx:
                    current = queries.get_request(tx, record.id)
                if current is not None and current.status is RequestStatus.ISSUED:
                    return self._outcome(current)  # type: ignore[return-value]
                serial = new_serial()
                continue
            if replaced is not None and profile.revoke_superseded_after == 0:
                self._revoke_superseded(replaced)
            if self.pm.hook.enroll_certificate_issued.get_hookimpls():
                stored = self.certificate(cert.serial_number)
                issued_record = self.request(record.id)
                self._emit("enroll_certificate_issued", certificate=stored,
                           request=issued_record, config=self.config)
            return Issued(record.id, cert, backend.chain)
        raise Unavailable("could not allocate a unique serial")

    def _store_issued(self, record: RequestRecord, cert: x509.Certificate, profile: Profile,
                      ca_name: str, issuance: IssuanceRequest, identity: str) -> str | None:
        with self.db.write() as tx:
            return request_writes.store_issued(tx, self.clock.now(), record, cert,
                                               profile.name, ca_name, issuance, identity)

    def _fail(self, record: RequestRecord, reason: str, *, retryable: bool = False) -> None:
        with self.db.write() as tx:
            request_writes.fail(tx, self.clock.now(), record, reason, retryable=retryable)

    def _record_denial(self, request: EnrollmentRequest, reason: str,
                       votes: tuple[policy_votes.PluginVote, ...]) -> None:
        with self.db.write() as tx:
            request_writes.denied(tx, self.clock.now(), request, reason,
                                  policy_votes.as_details(votes))

    # -- operator decisions -------------------------------------------------------------

    def list_requests(self, status: RequestStatus | None = None, limit: int = 100, *,
                      before: tuple[dt.datetime, str] | None = None,
                      offset: int = 0) -> list[RequestRecord]:
        """Newest first; `before`: (created_at, id) of the previous page's last row."""
        with self.db.read() as tx:
            return queries.list_requests(tx, status, limit, before=before, offset=offset)

    def approve(self, request_id: str,
                actor: str | Approver) -> Issued | AwaitingApproval:
        """Record `actor`'s approval of a pending request; once it has the profile's
        ``approvals_required`` distinct approvers, issue its certificate (not if its key
        was blocked meanwhile: `BadCSR`, and the request stays pending for a rejection).
        The requester never approves its own request (`Unauthorized`); an approver
        counts once (`Conflict`); an expired request cannot be approved (`Conflict`)."""
        approver = approvals.as_approver(actor)
        pending = self.request(request_id)
        if pending is None:
            raise NotFound("no such request")
        if pending.status is RequestStatus.PENDING:
            if self._due(pending, self.clock.now()):
                self._expire(pending, self.clock.now())
                raise Conflict("request is expired, not pending")
            if approvals.is_requester(approver, pending.requester):
                with self.db.write() as tx:
                    queries.add_audit(tx, at=self.clock.now(),
                                      type="request.approval_refused",
                                      actor=approver.identity, request_id=request_id,
                                      details={"reason": "the requester cannot approve "
                                                         "its own request"})
                raise Unauthorized("the requester cannot approve its own request")
            key_blocklist.refuse_if_blocked(self.db, pending.key_fingerprint)
            with self.db.read() as tx:
                _refuse_if_ca_revoked(tx, self.cas.get(pending.ca))
        profile = self.profiles.get(pending.profile)
        required = profile.approvals_required if profile is not None else 1
        now = self.clock.now()
        serial = new_serial()
        names: list[str] = []
        complete = False
        with self.db.write() as tx:
            status = queries.lock_request_status(tx, request_id)
            ok = status is RequestStatus.PENDING
            if ok:
                if not queries.add_approval(tx, request_id, approver.identity, now):
                    raise Conflict(f"{approver.identity} has already approved this request")
                names = queries.approvers(tx, request_id)
                complete = len(names) >= required
                if complete:
                    queries.set_request_status(
                        tx, request_id, expect=(RequestStatus.PENDING,),
                        status=RequestStatus.APPROVED, now=now,
                        decided_by=", ".join(names)[:256])
                queries.add_audit(
                    tx, at=now, type="request.approved" if complete else "request.approval",
                    actor=approver.identity, request_id=request_id,
                    details={"approvals": len(names), "required": required,
                             "approvers": names,
                             "reserved_serial": serial_hex(serial) if complete else None})
        record = self.request(request_id)
        if record is None:
            raise NotFound("no such request")
        if not ok:
            raise Conflict(f"request is {record.status.value}, not pending")
        if not complete:
            return AwaitingApproval(request_id, tuple(names), required)
        started = self.clock.now()
        issued = self._sign_and_store(record, _stored_request(record),
                                      self.profile(record.profile), record.ca, serial)
        metrics.observe_outcome(record.protocol, record.profile, issued,
                                (self.clock.now() - started).total_seconds())
        return issued

    # -- recovery -----------------------------------------------------------------------

    def recover_stale(self, limit: int = 100) -> list[str]:
        """Finish requests left ``approved`` longer than the grace period (their signer
        died between signing and storing): each is claimed by one worker, signed under a
        new serial and stored. Returns the ids this call resolved (issued or failed)."""
        before = self.clock.now() - self.recovery_grace
        with self.db.read() as tx:
            stale = queries.stale_approved(tx, before, limit)
        return [rid for rid in stale if self._recover(rid)]

    def _recover(self, request_id: str) -> bool:
        """Claim one stale approved request and sign and store it; False if another
        worker claimed it first (or it is no longer stale)."""
        now = self.clock.now()
        serial = new_serial()
        with self.db.write() as tx:
            if not queries.claim_approved(tx, request_id, now - self.recovery_grace, now):
                return False
            record = queries.get_request(tx, request_id)
            assert record is not None
            queries.add_audit(tx, at=now, type="request.recovering", actor="system:recovery",
                              request_id=request_id,
                              details={"reserved_serial": serial_hex(serial)})
        log.warning("recovering request %s, left approved without a certificate",
                    request_id)
        if record.attributes.get(NOT_RECOVERABLE):
            # Its front-end cannot deliver a certificate signed now: the retry starts over.
            self._fail(record, "its worker stopped before the certificate was stored; "
                               "send the request again", retryable=True)
            return True
        try:
            profile = self.profile(record.profile)
            with self.db.read() as tx:
                _refuse_if_ca_revoked(tx, self.cas.get(record.ca))
        except EnrollError as exc:
            self._fail(record, exc.detail)
            return True
        try:
            issued = self._sign_and_store(record, _stored_request(record), profile,
                                          record.ca, serial)
        except EnrollError as exc:  # already recorded as failed by _sign_and_store
            log.warning("recovery of request %s failed: %s", request_id, exc.detail)
            return True
        metrics.observe_outcome(record.protocol, record.profile, issued,
                                (self.clock.now() - now).total_seconds())
        return True

    def approvers(self, request_id: str) -> list[str]:
        """The distinct approvers recorded so far for a request."""
        with self.db.read() as tx:
            return queries.approvers(tx, request_id)

    def approvals_required(self, record: RequestRecord) -> int:
        profile = self.profiles.get(record.profile)
        return profile.approvals_required if profile is not None else 1

    # -- expiry of pending requests -------------------------------------------------------

    def _expiry(self, record: RequestRecord) -> int:
        profile = self.profiles.get(record.profile)
        return profile.pending_expiry if profile is not None else DEFAULT_PENDING_EXPIRY

    def _due(self, record: RequestRecord, now: dt.datetime) -> bool:
        return record.created_at + dt.timedelta(seconds=self._expiry(record)) <= now

    def _expire(self, record: RequestRecord, now: dt.datetime) -> bool:
        """pending -> expired (once: False if it was decided meanwhile)."""
        seconds = self._expiry(record)
        reason = f"not approved within {_duration(seconds)}: the request expired"
        with self.db.write() as tx:
            ok = queries.set_request_status(tx, record.id, expect=(RequestStatus.PENDING,),
                                            status=RequestStatus.EXPIRED, now=now,
                                            reason=reason, decided_by="system:expiry")
            if ok:
                queries.add_audit(tx, at=now, type="request.expired", actor="system:expiry",
                                  request_id=record.id,
                                  details={"pending_expiry": seconds,
                                           "approvers": queries.approvers(tx, record.id)})
        if ok:
            metrics.REJECTIONS.labels(record.protocol, "Expired").inc()
            expired = self.request(record.id)
            self._emit("enroll_request_rejected", request=expired, actor="system:expiry",
                       reason=reason)
        return ok

    def expire_pending(self, now: dt.datetime | None = None) -> int:
        """The sweep: every pending request past its profile's ``pending_expiry``
        becomes ``expired`` (audited, answered to a polling client as rejected);
        returns how many. Safe to run from several workers at once (each request
        expires once). Also closes the refusal windows that have passed."""
        now = now or self.clock.now()
        shortest = min([p.pending_expiry for p in self.profiles.values()]
                       + [DEFAULT_PENDING_EXPIRY])
        cutoff = now - dt.timedelta(seconds=shortest)
        done = 0
        after: tuple[dt.datetime, str] | None = None
        while True:
            with self.db.read() as tx:
                batch = queries.pending_created_before(tx, cutoff, after, SWEEP_PAGE)
            if not batch:
                break
            for record in batch:
                if self._due(record, now) and self._expire(record, now):
                    done += 1
            after = (batch[-1].created_at, batch[-1].id)
        self.close_refusal_windows(now)
        return done

    # -- refusals -------------------------------------------------------------------------

    def record_refusal(self, door: str, reason: str, source: str | None,
                       actor: str | None, details: Mapping[str, Any] | None = None) -> None:
        """Count one refusal in the audit trail (`enroll.refusals`): `door` the
        endpoint's label (``est:default``), `reason` a short code, `source` the client
        address, `actor` the authenticated requester (None: not authenticated). The
        first of a key is written at once, repeats are held and added in one write every
        few seconds (`enroll.refusal_buffer`). Never raises: a store failure is logged
        and the refusal is still answered."""
        now = self.clock.now()
        key = (refusals.window_start(now), *refusals.key_of(door, reason, source, actor))
        write_now = self._refusals.add(now, key)
        batches = self._refusals.due(now)
        if write_now or batches:
            self._write_refusals(now, batches, (door, reason, source, actor, details)
                                 if write_now else None)

    def flush_refusals(self) -> int:
        """Write every refusal count this process holds; how many keys."""
        batches = self._refusals.due(self.clock.now(), everything=True)
        if batches:
            self._write_refusals(self.clock.now(), batches, None)
        return len(batches)

    def _write_refusals(self, now: dt.datetime, batches: list[refusal_buffer.Batch],
                        one: tuple[str, str, str | None, str | None,
                                   Mapping[str, Any] | None] | None) -> None:
        try:
            with self.db.write() as tx:
                # Held counts first: a passed window gets its repeats before the new
                # refusal below closes it.
                for batch in batches:
                    window, door, reason, source, actor = batch.key
                    refusals.record(tx, batch.last_at, door, reason, source or None,
                                    actor or None, None, count=batch.count, window=window)
                if one is not None:
                    refusals.record(tx, now, *one)
        except Exception:
            kept = list(batches)
            if one is not None:
                key = (refusals.window_start(now), *refusals.key_of(*one[:4]))
                kept.append(refusal_buffer.Batch(key, 1, now))
            self._refusals.restore(kept)
            log.exception("could not record a refusal (%d count(s) kept to retry)",
                          len(kept))

    def close_refusal_windows(self, now: dt.datetime | None = None) -> int:
        """Write the held refusal counts, then chain the refusal counts of the windows
        that have passed; how many rows were chained. Run it from every worker's
        scheduler (held counts are per process)."""
        self.flush_refusals()
        with self.db.write() as tx:
            return refusals.close_windows(tx, now or self.clock.now())

    def reject(self, request_id: str, actor: str, reason: str) -> RequestRecord:
        """Reject a pending request, or close one left ``approved`` by a crash between
        signing and storing (its certificate was never stored nor returned)."""
        now = self.clock.now()
        reason = reason or "rejected by an operator"
        with self.db.write() as tx:
            ok = queries.set_request_status(tx, request_id,
                                            expect=(RequestStatus.PENDING, RequestStatus.APPROVED),
                                            status=RequestStatus.REJECTED, now=now,
                                            reason=reason, decided_by=actor)
            if ok:
                queries.add_audit(tx, at=now, type="request.rejected", actor=actor,
                                  request_id=request_id, details={"reason": reason})
        record = self.request(request_id)
        if record is None:
            raise NotFound("no such request")
        if not ok:
            raise Conflict(f"request is {record.status.value}, not pending or approved")
        metrics.REJECTIONS.labels(record.protocol, "OperatorRejected").inc()
        self._emit("enroll_request_rejected", request=record, actor=actor, reason=reason)
        return record

    # -- revocation ---------------------------------------------------------------------

    def revoke(self, serial: str | int, reason: x509.ReasonFlags, actor: str) -> CertificateRecord:
        """Revoke, record the audit event, re-sign the CA's CRL."""
        _check_revocation_reason(reason)
        key = _serial_key(serial)
        now = self.clock.now()
        with self.db.write() as tx:
            record = queries.get_certificate(tx, key)
            if record is None:
                raise NotFound("no certificate with this serial")
            if not _revoke_in(tx, record, reason, actor, now):
                raise Conflict("certificate is already revoked")
        return self._after_revoked([record], actor)[0]

    def revoke_all(self, *, identity: str | None = None, requester: str | None = None,
                   device_id: str | None = None, reason: x509.ReasonFlags, actor: str,
                   dry_run: bool = False) -> list[CertificateRecord]:
        """Revoke every live certificate of one identity, requester or device (exactly
        one selector), whichever protocol issued it, in one transaction; the
        certificates revoked (with `dry_run`: those that would be, nothing written).
        `Conflict` above `bulk_revocation.MAX_REVOKED`."""
        selector = bulk_revocation.one_selector(identity=identity, requester=requester,
                                                device_id=device_id)
        return self.revoke_selected((selector,), reason, actor, dry_run=dry_run)

    def revoke_selected(self, selectors: tuple[bulk_revocation.Selector, ...],
                        reason: x509.ReasonFlags, actor: str, *, dry_run: bool = False,
                        within: Callable[[Tx], Mapping[str, Any] | None] | None = None,
                        ) -> list[CertificateRecord]:
        """`revoke_all` for any of several selectors. `within` runs first in the
        revoking transaction (an MDM event records its id there: a replay is refused
        by the same commit); what it returns is added to the summary audit event, and
        what it raises aborts everything."""
        _check_revocation_reason(reason)
        now = self.clock.now()
        selected = {"selector": [s.as_detail() for s in selectors]}
        if dry_run:
            with self.db.read() as tx:
                return bulk_revocation.select(tx, selectors, now)
        with self.db.write() as tx:
            extra = within(tx) if within is not None else None
            due = bulk_revocation.select(tx, selectors, now)
            done = [r for r in due if _revoke_in(tx, r, reason, actor, now, selected)]
            queries.add_audit(tx, at=now, type="certificates.revoked", actor=actor,
                              details={**selected, "reason": reason.value,
                                       "count": len(done), **(extra or {})})
        return self._after_revoked(done, actor)

    def _after_revoked(self, records: list[CertificateRecord],
                       actor: str) -> list[CertificateRecord]:
        """After a revocation committed: re-sign each CA's CRL, tell the revocation
        listeners and the event hooks; the records as stored now."""
        for ca in sorted({r.ca for r in records}):
            self.crls.regenerate(ca)
        for record in records:
            for listener in self.revocation_listeners:
                try:
                    listener(record.ca, record.serial_hex)
                except Exception:
                    log.exception("after revoking %s: a revocation listener failed",
                                  record.serial_hex)
        with self.db.read() as tx:
            revoked = [queries.get_certificate(tx, r.serial_hex) for r in records]
        for stored in revoked:
            assert stored is not None
            metrics.REVOCATIONS.labels(stored.protocol).inc()
            self._emit("enroll_certificate_revoked", certificate=stored, actor=actor)
        return [r for r in revoked if r is not None]

    def revoke_superseded(self) -> list[str]:
        """Revoke (reason superseded) the certificates each profile's
        ``revoke_superseded_after`` says are due; the serials revoked. Run it from cron
        (``enroll certs revoke-superseded``) when a profile sets a grace period."""
        done: list[str] = []
        now = self.clock.now()
        for profile in self.profiles.values():
            if profile.revoke_superseded_after is None:
                continue
            cutoff = now - dt.timedelta(seconds=profile.revoke_superseded_after)
            with self.db.read() as tx:
                due = queries.superseded_due(tx, profile.name, cutoff)
            done += [s for s in due if self._revoke_superseded(s)]
        return done

    def _revoke_superseded(self, serial: str) -> bool:
        try:
            self.revoke(serial, x509.ReasonFlags.superseded, "system:renewal")
        except Conflict:  # revoked meanwhile
            return False
        return True

    # -- events -------------------------------------------------------------------------

    def _emit(self, hook: str, **kwargs: Any) -> None:
        """Event hooks run after commit, each listener on its own: a failing listener is
        logged and never hides the event from the others nor undoes the issuance."""
        for impl in getattr(self.pm.hook, hook).get_hookimpls():
            try:
                impl.function(**{name: kwargs[name] for name in impl.argnames})
            except Exception:
                log.exception("event hook %s of plugin %s failed", hook, impl.plugin_name)


def _serial_key(serial: str | int) -> str:
    """The stored form of a serial (lower-case hex, no padding, as `openssl` may print)."""
    if isinstance(serial, int):
        return serial_hex(serial)
    try:
        return parse_serial_hex(serial)
    except ValueError as exc:
        raise MalformedInput(str(exc)) from exc


def _check_revocation_reason(reason: x509.ReasonFlags) -> None:
    if reason is x509.ReasonFlags.remove_from_crl:
        # RFC 5280 §5.3.1: removeFromCRL only appears in delta CRLs.
        raise MalformedInput("removeFromCRL is not a revocation reason")


def _revoke_in(tx: Tx, record: CertificateRecord, reason: x509.ReasonFlags, actor: str,
               now: dt.datetime, details: Mapping[str, Any] | None = None) -> bool:
    """Revoke one certificate inside `tx` (its identity's current certificate moves on,
    one audit event, a keyCompromise blocks the key); False if it was not valid."""
    key = record.serial_hex
    if not queries.revoke_certificate(tx, key, reason, now):
        return False
    identities.record_revoked(tx, record.identity, key, now)
    queries.add_audit(tx, at=now, type="certificate.revoked", actor=actor,
                      serial=key, request_id=record.request_id,
                      details={"reason": reason.value, "ca": record.ca, **(details or {})})
    if reason is x509.ReasonFlags.key_compromise:
        key_blocklist.block(tx, spki_sha256(record.certificate.public_key()),
                            reason=f"keyCompromise (certificate {key} revoked)",
                            source=key_blocklist.REVOCATION, actor=actor, now=now,
                            serial=key)
    return True


def _refuse_if_ca_revoked(tx: Tx, backend: CABackend) -> None:
    """`PolicyDenied` when the CA's certificate or an issuer's is stored revoked."""
    chain = tuple(backend.chain) or (backend.certificate,)
    revoked = queries.revoked_serial(tx, tuple(format(c.serial_number, "x") for c in chain))
    if revoked is not None:
        which = "its" if revoked == format(backend.certificate.serial_number, "x") \
            else f"its issuer's ({revoked})"
        raise PolicyDenied(f"CA {backend.name!r} cannot issue: {which} certificate is "
                           "revoked")


def _stored_request(record: RequestRecord) -> EnrollmentRequest:
    """The `EnrollmentRequest` of a stored request (operator approval, recovery)."""
    not_before, not_after = validity_rules.from_attributes(record.attributes)
    return EnrollmentRequest(
        csr=x509.load_pem_x509_csr(record.csr_pem.encode()), profile=record.profile,
        requester=_requester(record), protocol=record.protocol, endpoint=record.endpoint,
        transaction_id=record.transaction_id, replaces=record.replaces, ca=record.ca,
        attributes=record.attributes, not_before=not_before, not_after=not_after)


def _duration(seconds: int) -> str:
    if seconds % 86400 == 0:
        return f"{seconds // 86400}d"
    if seconds % 3600 == 0:
        return f"{seconds // 3600}h"
    return f"{seconds}s"


def _requester(record: RequestRecord) -> Any:
    from enroll.model import Requester

    return Requester(record.requester, record.auth_method)
