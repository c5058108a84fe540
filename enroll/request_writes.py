"""The pipeline's writes, each one transaction's worth of rows and audit events.

`enroll.authority` decides; these functions write what it decided inside the
transaction it opened, so a certificate, its request's new status, the supersession
of the certificate it renews and their audit events commit together or not at all.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from enroll.crypto.serials import serial_hex
from enroll.errors import Conflict
from enroll.model import (
    CertificateStatus,
    EnrollmentRequest,
    IssuanceRequest,
    RequestRecord,
    RequestStatus,
)
from enroll.names import csr_names, names_as_strings
from enroll.store import identities, lineage, queries
from enroll.store.transaction import Tx


def store_issued(tx: Tx, now: dt.datetime, record: RequestRecord, cert: x509.Certificate,
                 profile: str, ca_name: str, issuance: IssuanceRequest,
                 identity: str) -> str | None:
    """The certificate, its request ``issued``, the renewed certificate superseded (once:
    of two racing renewals exactly one commits) and the audit events. Returns the serial
    superseded. A link made by identity (``link`` ``identity``) is lineage, not a
    renewal the client asked for: if a concurrent issuance replaced that certificate
    first, this one links to the newest of that line or to nothing, and is stored."""
    serial = serial_hex(cert.serial_number)
    # The names signed are those of the issuance request (no need to re-parse).
    sans: list[str] = []
    for ext in issuance.extensions:
        if isinstance(ext.value, x509.SubjectAlternativeName):
            sans = names_as_strings(list(ext.value))
    if not queries.mark_issued(tx, record.id, serial, now):
        raise Conflict("request is no longer approved")
    queries.insert_certificate(tx, {
        "serial": serial, "ca": ca_name, "request_id": record.id,
        "status": CertificateStatus.VALID.value, "profile": profile,
        "protocol": record.protocol, "requester": record.requester,
        "subject": cert.subject.rfc4514_string(), "sans": sans,
        "key_fingerprint": record.key_fingerprint,
        "not_before": cert.not_valid_before_utc, "not_after": cert.not_valid_after_utc,
        "revoked_at": None, "revocation_reason": None, "replaces": record.replaces,
        "der": cert.public_bytes(serialization.Encoding.DER), "created_at": now,
        "identity": identity, "superseded_by": None, "endpoint": record.endpoint,
        "device_id": record.device_id, "link": record.link if record.replaces else None,
    })
    identities.record_issued(
        tx, identity=identity, serial=serial, protocol=record.protocol,
        endpoint=record.endpoint, profile=profile, ca=ca_name,
        not_before=cert.not_valid_before_utc, not_after=cert.not_valid_after_utc,
        requester=record.requester, device_id=record.device_id, now=now)
    replaced = record.replaces
    if replaced is not None and not queries.supersede(tx, replaced, serial):
        if record.link != "identity":
            raise Conflict(f"certificate {replaced} was already replaced")
        replaced = lineage.relink(tx, serial, replaced, now)
    if replaced is not None:
        queries.add_audit(tx, at=now, type="certificate.superseded", actor=record.requester,
                          request_id=record.id, serial=replaced, details={"by": serial})
    queries.add_audit(tx, at=now, type="certificate.issued", actor=record.requester,
                      request_id=record.id, serial=serial,
                      details={"profile": profile, "ca": ca_name, "protocol": record.protocol,
                               "subject": cert.subject.rfc4514_string(), "sans": sans,
                               "replaces": replaced,
                               "link": record.link if replaced else None,
                               "identity": identity, "device_id": record.device_id,
                               "not_after": cert.not_valid_after_utc.isoformat()})
    return replaced


def fail(tx: Tx, now: dt.datetime, record: RequestRecord, reason: str, *,
         retryable: bool) -> None:
    """An approved request that could not be signed: ``failed``; a `retryable` failure
    also frees its transaction id, so the client's retry is a new attempt."""
    queries.set_request_status(tx, record.id, expect=(RequestStatus.APPROVED,),
                               status=RequestStatus.FAILED, now=now, reason=reason)
    if retryable:
        queries.release_transaction(tx, record.id, now)
    queries.add_audit(tx, at=now, type="request.failed", actor="system", request_id=record.id,
                      details={"reason": reason, "retryable": retryable})


def release(tx: Tx, now: dt.datetime, record: RequestRecord, reason: str) -> None:
    """Free a finished request's transaction id (its certificate is no longer live)."""
    if queries.release_transaction(tx, record.id, now):
        queries.add_audit(tx, at=now, type="request.transaction_released", actor="system",
                          request_id=record.id,
                          details={"transaction_id": record.transaction_id, "reason": reason})


def denied(tx: Tx, now: dt.datetime, request: EnrollmentRequest, reason: str,
           votes: Sequence[Mapping[str, Any]] = ()) -> str:
    """A policy denial: only an audit event (nothing else is stored), under a request id
    of its own, so ``enroll requests show ID`` finds it; returns that id. `votes` are
    the plugins' votes (`enroll.policy_votes.as_details`)."""
    request_id = str(uuid.uuid4())
    queries.add_audit(tx, at=now, type="request.denied", actor=request.requester.identity,
                      request_id=request_id,
                      details={"profile": request.profile, "protocol": request.protocol,
                               "endpoint": request.endpoint, "reason": reason,
                               "auth_method": request.requester.method,
                               "transaction_id": request.transaction_id,
                               "subject": request.csr.subject.rfc4514_string(),
                               "sans": names_as_strings(csr_names(request.csr))[:20],
                               "votes": list(votes)})
    return request_id
