"""Repository functions over the core tables. Callers get dataclasses, never rows.

Every function takes an open `Connection`, so the authority decides what shares a
transaction (certificate + request + audit event commit together).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator, Mapping
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from sqlalchemy import Connection, Row, and_, bindparam, func, insert, select, text, update

from enroll.model import (
    AuditEvent,
    CertificateRecord,
    CertificateStatus,
    RequestRecord,
    RequestStatus,
    StoredCA,
)
from enroll.store.db import aware
from enroll.store.schema import REVOKED, audit_events, cas, certificates, crls, requests

PEM = serialization.Encoding.PEM


# -- CAs --------------------------------------------------------------------------------

def _pem(certs: tuple[x509.Certificate, ...]) -> str:
    return "".join(c.public_bytes(PEM).decode() for c in certs)


def get_ca(conn: Connection, name: str) -> StoredCA | None:
    row = conn.execute(select(cas).where(cas.c.name == name)).first()
    if row is None:
        return None
    return StoredCA(
        name=row.name, backend=row.backend,
        certificate=x509.load_pem_x509_certificate(row.certificate_pem.encode()),
        chain=tuple(x509.load_pem_x509_certificates(row.chain_pem.encode())),
        key_blob=bytes(row.key_blob), parent=row.parent)


def insert_ca(conn: Connection, ca: StoredCA, now: dt.datetime) -> None:
    conn.execute(insert(cas).values(
        name=ca.name, backend=ca.backend, parent=ca.parent,
        certificate_pem=ca.certificate.public_bytes(PEM).decode(),
        chain_pem=_pem(ca.chain), key_blob=ca.key_blob, created_at=now))


def list_cas(conn: Connection) -> list[StoredCA]:
    names = conn.execute(select(cas.c.name).order_by(cas.c.name)).scalars().all()
    return [ca for ca in (get_ca(conn, n) for n in names) if ca is not None]


# -- requests ---------------------------------------------------------------------------

def _request(row: Row[Any]) -> RequestRecord:
    return RequestRecord(
        id=row.id, status=RequestStatus(row.status), profile=row.profile, ca=row.ca,
        protocol=row.protocol, endpoint=row.endpoint, requester=row.requester,
        auth_method=row.auth_method, transaction_id=row.transaction_id,
        key_fingerprint=row.key_fingerprint, subject=row.subject,
        sans=tuple(row.sans or ()), replaces=row.replaces, reason=row.reason or "",
        certificate_serial=row.certificate_serial,
        created_at=aware(row.created_at),  # type: ignore[arg-type]
        updated_at=aware(row.updated_at),  # type: ignore[arg-type]
        csr_pem=row.csr_pem, attributes=row.attributes or {})


# Hot-path statements are built once: SQLAlchemy then only binds parameters.
_INSERT_REQUEST = insert(requests)
_INSERT_CERTIFICATE = insert(certificates)
_INSERT_AUDIT = insert(audit_events)
_FIND_TRANSACTION = select(requests).where(and_(
    requests.c.protocol == bindparam("p"), requests.c.endpoint == bindparam("e"),
    requests.c.transaction_id == bindparam("t")))
_MARK_ISSUED = update(requests).where(and_(
    requests.c.id == bindparam("rid"), requests.c.status == RequestStatus.APPROVED.value)
).values(status=RequestStatus.ISSUED.value, certificate_serial=bindparam("serial"),
         updated_at=bindparam("now"))


def insert_request(conn: Connection, values: Mapping[str, Any]) -> None:
    conn.execute(_INSERT_REQUEST, dict(values))


def mark_issued(conn: Connection, request_id: str, serial: str, now: dt.datetime) -> bool:
    """approved -> issued, conditionally: False if the request was not approved."""
    return conn.execute(_MARK_ISSUED, {"rid": request_id, "serial": serial,
                                       "now": now}).rowcount == 1


def record_from_row(values: Mapping[str, Any]) -> RequestRecord:
    """A `RequestRecord` from the dict just inserted (saves a read-back)."""
    return RequestRecord(
        id=values["id"], status=RequestStatus(values["status"]), profile=values["profile"],
        ca=values["ca"], protocol=values["protocol"], endpoint=values["endpoint"],
        requester=values["requester"], auth_method=values["auth_method"],
        transaction_id=values["transaction_id"], key_fingerprint=values["key_fingerprint"],
        subject=values["subject"], sans=tuple(values["sans"]), replaces=values["replaces"],
        reason=values["reason"] or "", certificate_serial=values["certificate_serial"],
        created_at=values["created_at"], updated_at=values["updated_at"],
        csr_pem=values["csr_pem"], attributes=values["attributes"])


def get_request(conn: Connection, request_id: str) -> RequestRecord | None:
    row = conn.execute(select(requests).where(requests.c.id == request_id)).first()
    return _request(row) if row else None


def find_request_by_transaction(conn: Connection, protocol: str, endpoint: str,
                                transaction_id: str) -> RequestRecord | None:
    row = conn.execute(_FIND_TRANSACTION, {"p": protocol, "e": endpoint,
                                           "t": transaction_id}).first()
    return _request(row) if row else None


def set_request_status(conn: Connection, request_id: str, *, expect: tuple[RequestStatus, ...],
                       status: RequestStatus, now: dt.datetime, reason: str | None = None,
                       decided_by: str | None = None,
                       certificate_serial: str | None = None) -> bool:
    """Conditional update: True only if the request was in one of `expect`."""
    values: dict[str, Any] = {"status": status.value, "updated_at": now}
    if reason is not None:
        values["reason"] = reason
    if decided_by is not None:
        values["decided_by"] = decided_by
    if certificate_serial is not None:
        values["certificate_serial"] = certificate_serial
    result = conn.execute(update(requests).where(and_(
        requests.c.id == request_id,
        requests.c.status.in_([s.value for s in expect]))).values(**values))
    return result.rowcount == 1


def list_requests(conn: Connection, status: RequestStatus | None = None,
                  limit: int = 100) -> list[RequestRecord]:
    q = select(requests).order_by(requests.c.created_at.desc()).limit(limit)
    if status is not None:
        q = q.where(requests.c.status == status.value)
    return [_request(r) for r in conn.execute(q)]


def count_requests(conn: Connection) -> int:
    return int(conn.execute(select(func.count()).select_from(requests)).scalar_one())


# -- certificates -----------------------------------------------------------------------

def _certificate(row: Row[Any]) -> CertificateRecord:
    return CertificateRecord(
        serial_hex=row.serial, ca=row.ca,
        certificate=x509.load_der_x509_certificate(bytes(row.der)),
        status=CertificateStatus(row.status), profile=row.profile, protocol=row.protocol,
        requester=row.requester, request_id=row.request_id, replaces=row.replaces,
        not_before=aware(row.not_before),  # type: ignore[arg-type]
        not_after=aware(row.not_after),  # type: ignore[arg-type]
        revoked_at=aware(row.revoked_at),
        revocation_reason=x509.ReasonFlags(row.revocation_reason)
        if row.revocation_reason else None,
        subject=row.subject, sans=tuple(row.sans or ()))


def insert_certificate(conn: Connection, values: Mapping[str, Any]) -> None:
    conn.execute(_INSERT_CERTIFICATE, dict(values))


def get_certificate(conn: Connection, serial_hex: str) -> CertificateRecord | None:
    row = conn.execute(select(certificates).where(certificates.c.serial == serial_hex)).first()
    return _certificate(row) if row else None


def list_certificates(conn: Connection, *, status: CertificateStatus | None = None,
                      ca: str | None = None, limit: int = 100) -> list[CertificateRecord]:
    q = select(certificates).order_by(certificates.c.created_at.desc()).limit(limit)
    if status is not None:
        q = q.where(certificates.c.status == status.value)
    if ca is not None:
        q = q.where(certificates.c.ca == ca)
    return [_certificate(r) for r in conn.execute(q)]


def count_certificates(conn: Connection) -> int:
    return int(conn.execute(select(func.count()).select_from(certificates)).scalar_one())


def revoke_certificate(conn: Connection, serial_hex: str, reason: x509.ReasonFlags,
                       now: dt.datetime) -> bool:
    result = conn.execute(update(certificates).where(and_(
        certificates.c.serial == serial_hex,
        certificates.c.status == CertificateStatus.VALID.value)).values(
        status=CertificateStatus.REVOKED.value, revoked_at=now,
        revocation_reason=reason.value))
    return result.rowcount == 1


def revoked_entries(conn: Connection, ca: str,
                    now: dt.datetime) -> Iterator[tuple[str, dt.datetime, str | None]]:
    """(serial, revoked_at, reason) of revoked certificates of `ca` not yet expired."""
    # The status test is the literal predicate of ix_certificates_revoked, so the
    # entries come from that index alone.
    q = select(certificates.c.serial, certificates.c.revoked_at,
               certificates.c.revocation_reason).where(and_(
                   certificates.c.ca == ca, text(REVOKED), certificates.c.not_after > now))
    for serial, revoked_at, reason in conn.execute(q):
        yield serial, aware(revoked_at), reason  # type: ignore[misc]


# -- CRLs -------------------------------------------------------------------------------

def get_crl(conn: Connection, ca: str) -> tuple[int, dt.datetime, dt.datetime, bytes] | None:
    row = conn.execute(select(crls).where(crls.c.ca == ca)).first()
    if row is None:
        return None
    return row.number, aware(row.this_update), aware(row.next_update), bytes(row.der)  # type: ignore[return-value]


def put_crl(conn: Connection, ca: str, number: int, this_update: dt.datetime,
            next_update: dt.datetime, der: bytes) -> bool:
    """Store CRL `number` if it is newer than the stored one (conditional, race-safe)."""
    values = {"number": number, "this_update": this_update, "next_update": next_update,
              "der": der}
    existing = conn.execute(select(crls.c.number).where(crls.c.ca == ca)).scalar()
    if existing is None:
        conn.execute(insert(crls).values(ca=ca, **values))
        return True
    result = conn.execute(update(crls).where(and_(crls.c.ca == ca, crls.c.number < number))
                          .values(**values))
    return result.rowcount == 1


# -- audit ------------------------------------------------------------------------------

def add_audit(conn: Connection, *, at: dt.datetime, type: str, actor: str,
              request_id: str | None = None, serial: str | None = None,
              details: Mapping[str, Any] | None = None) -> None:
    conn.execute(_INSERT_AUDIT, {
        "at": at, "type": type, "actor": actor, "request_id": request_id, "serial": serial,
        "details": json.loads(json.dumps(details or {}, default=str))})


def list_audit(conn: Connection, *, since: dt.datetime | None = None,
               request_id: str | None = None, limit: int | None = None) -> list[AuditEvent]:
    q = select(audit_events).order_by(audit_events.c.id)
    if since is not None:
        q = q.where(audit_events.c.at >= since)
    if request_id is not None:
        q = q.where(audit_events.c.request_id == request_id)
    if limit is not None:
        q = q.limit(limit)
    return [AuditEvent(id=r.id, at=aware(r.at), type=r.type, actor=r.actor,  # type: ignore[arg-type]
                       request_id=r.request_id, serial_hex=r.serial, details=r.details or {})
            for r in conn.execute(q)]
