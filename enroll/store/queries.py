"""Repository functions over the core tables. Callers get dataclasses, never rows.

Every function takes an open `Tx` (`Database.write()` / `Database.read()`), so the
authority decides what shares a transaction (certificate + request + audit event commit
together). Every statement goes straight to the driver (see `enroll.store.transaction`);
rows are read by column name.
"""

# ruff: noqa: S608 - the SQL below interpolates only constant column lists, "?" marks
# and int() limits; every value is a bound parameter.
from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Mapping
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from enroll.model import (
    AuditEvent,
    BlockedKey,
    CertificateRecord,
    CertificateStatus,
    RequestRecord,
    RequestStatus,
    StoredCA,
)
from enroll.store import audit_chain
from enroll.store.schema import (
    REVOKED,
    audit_events,
    blocked_keys,
    cas,
    certificates,
    crls,
    request_approvals,
    requests,
)
from enroll.store.transaction import Row, Tx

PEM = serialization.Encoding.PEM


# -- CAs --------------------------------------------------------------------------------

def _pem(certs: tuple[x509.Certificate, ...]) -> str:
    return "".join(c.public_bytes(PEM).decode() for c in certs)


def _ca(row: Row) -> StoredCA:
    return StoredCA(
        name=row["name"], backend=row["backend"],
        certificate=x509.load_pem_x509_certificate(row["certificate_pem"].encode()),
        chain=tuple(x509.load_pem_x509_certificates(row["chain_pem"].encode())),
        key_blob=row["key_blob"], parent=row["parent"])


_CA = "name, backend, parent, certificate_pem, chain_pem, key_blob"


def get_ca(tx: Tx, name: str) -> StoredCA | None:
    row = tx.one(f"SELECT {_CA} FROM cas WHERE name = ?", (name,), cas)
    return None if row is None else _ca(row)


def insert_ca(tx: Tx, ca: StoredCA, now: dt.datetime) -> None:
    tx.insert(cas, {
        "name": ca.name, "backend": ca.backend, "parent": ca.parent,
        "certificate_pem": ca.certificate.public_bytes(PEM).decode(),
        "chain_pem": _pem(ca.chain), "key_blob": ca.key_blob, "created_at": now})


def ca_key_blobs(tx: Tx, backend: str) -> list[tuple[str, bytes]]:
    """(name, key blob) of every CA of `backend`, for re-sealing its keys."""
    rows = tx.all("SELECT name, key_blob FROM cas WHERE backend = ? ORDER BY name",
                  (backend,), cas)
    return [(str(r["name"]), bytes(r["key_blob"])) for r in rows]


def replace_ca_key_blob(tx: Tx, name: str, old: bytes, new: bytes) -> bool:
    """Swap the key blob of CA `name` only if it is still `old`."""
    return tx.run("UPDATE cas SET key_blob = ? WHERE name = ? AND key_blob = ?",
                  (new, name, old)) == 1


def list_cas(tx: Tx) -> list[StoredCA]:
    return [_ca(r) for r in tx.all(f"SELECT {_CA} FROM cas ORDER BY name", (), cas)]


# -- requests ---------------------------------------------------------------------------

_REQUEST = ("id, status, profile, ca, protocol, endpoint, requester, auth_method, "
            "transaction_id, key_fingerprint, subject, sans, replaces, reason, "
            "certificate_serial, csr_pem, attributes, created_at, updated_at, identity, "
            "device_id, link")


def _request(row: Row) -> RequestRecord:
    return RequestRecord(
        id=row["id"], status=RequestStatus(row["status"]), profile=row["profile"],
        ca=row["ca"], protocol=row["protocol"], endpoint=row["endpoint"],
        requester=row["requester"], auth_method=row["auth_method"],
        transaction_id=row["transaction_id"], key_fingerprint=row["key_fingerprint"],
        subject=row["subject"], sans=tuple(row["sans"] or ()), replaces=row["replaces"],
        reason=row["reason"] or "", certificate_serial=row["certificate_serial"],
        created_at=row["created_at"], updated_at=row["updated_at"],
        csr_pem=row["csr_pem"], attributes=row["attributes"] or {},
        identity=row.get("identity"), device_id=row.get("device_id"),
        link=row.get("link"))


def insert_request(tx: Tx, values: Mapping[str, Any]) -> None:
    tx.insert(requests, values)


def mark_issued(tx: Tx, request_id: str, serial: str, now: dt.datetime) -> bool:
    """approved -> issued, conditionally: False if the request was not approved."""
    return tx.run("UPDATE requests SET status = 'issued', certificate_serial = ?, "
                  "updated_at = ? WHERE id = ? AND status = 'approved'",
                  (serial, tx.when(now), request_id)) == 1


def record_from_row(values: Mapping[str, Any]) -> RequestRecord:
    """A `RequestRecord` from the dict just inserted (saves a read-back)."""
    return _request(dict(values))


def get_request(tx: Tx, request_id: str) -> RequestRecord | None:
    row = tx.one(f"SELECT {_REQUEST} FROM requests WHERE id = ?", (request_id,), requests)
    return None if row is None else _request(row)


def find_request_by_transaction(tx: Tx, protocol: str, endpoint: str,
                                transaction_id: str) -> RequestRecord | None:
    row = tx.one(f"SELECT {_REQUEST} FROM requests WHERE protocol = ? AND endpoint = ? "
                 "AND transaction_id = ?", (protocol, endpoint, transaction_id), requests)
    return None if row is None else _request(row)


_REQUEST_SETTABLE = frozenset({"status", "updated_at", "reason", "decided_by",
                               "certificate_serial"})


def set_request_status(tx: Tx, request_id: str, *, expect: tuple[RequestStatus, ...],
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
    marks = ", ".join("?" for _ in expect)
    return tx.update(requests, values, f"id = ? AND status IN ({marks})",
                     (request_id, *(s.value for s in expect)),
                     allowed=_REQUEST_SETTABLE) == 1


def release_transaction(tx: Tx, request_id: str, now: dt.datetime) -> bool:
    """Free a request's transaction id, so a retry under it is a new request (its
    certificate is no longer live, or its signing failed transiently)."""
    return tx.run("UPDATE requests SET transaction_id = NULL, updated_at = ? "
                  "WHERE id = ? AND transaction_id IS NOT NULL",
                  (tx.when(now), request_id)) == 1


def list_requests(tx: Tx, status: RequestStatus | None = None,
                  limit: int = 100, *, before: tuple[dt.datetime, str] | None = None,
                  offset: int = 0) -> list[RequestRecord]:
    """Newest first; `before` (created_at, id) of the last row of the previous page
    continues there (a keyset page: the API); `offset` skips rows (the console's queue,
    bounded by its caller)."""
    conditions: list[str] = []
    params: list[Any] = []
    if status is not None:
        conditions.append("status = ?")
        params.append(status.value)
    if before is not None:
        conditions.append("(created_at < ? OR (created_at = ? AND id < ?))")
        params += [tx.when(before[0]), tx.when(before[0]), before[1]]
    where = f"WHERE {' AND '.join(conditions)} " if conditions else ""
    rows = tx.all(f"SELECT {_REQUEST} FROM requests {where}ORDER BY created_at DESC, id DESC "
                  f"LIMIT {int(limit)} OFFSET {int(offset)}", params, requests)
    return [_request(r) for r in rows]


def stale_approved(tx: Tx, before: dt.datetime, limit: int = 100) -> list[str]:
    """Ids of requests ``approved`` (signing started) but not issued since before
    `before`: their signer died between signing and storing, or is stuck."""
    rows = tx.all("SELECT id FROM requests WHERE status = 'approved' AND updated_at < ? "
                  f"ORDER BY updated_at LIMIT {int(limit)}", (tx.when(before),))
    return [r["id"] for r in rows]


def claim_approved(tx: Tx, request_id: str, before: dt.datetime, now: dt.datetime) -> bool:
    """Take a stale approved request for recovery: one conditional UPDATE moves its
    ``updated_at`` (the lease) to `now`, so of several workers exactly one claims it,
    and a claimer that dies leaves it claimable again after the grace period."""
    return tx.run("UPDATE requests SET updated_at = ? WHERE id = ? AND status = 'approved' "
                  "AND updated_at < ?", (tx.when(now), request_id, tx.when(before))) == 1


def lock_request_status(tx: Tx, request_id: str) -> RequestStatus | None:
    """The request's status, its row locked until the transaction ends (PostgreSQL:
    ``FOR UPDATE``; SQLite's writer lock already holds every writer off)."""
    lock = "" if tx.sqlite else " FOR UPDATE"
    found = tx.scalar(f"SELECT status FROM requests WHERE id = ?{lock}", (request_id,))
    return None if found is None else RequestStatus(found)


def add_approval(tx: Tx, request_id: str, approver: str, now: dt.datetime) -> bool:
    """Record one approver of a request; False if this approver already approved."""
    return tx.run("INSERT INTO request_approvals (request_id, approver, at) VALUES (?, ?, ?) "
                  "ON CONFLICT (request_id, approver) DO NOTHING",
                  (request_id, approver, tx.when(now))) == 1


def approvers(tx: Tx, request_id: str) -> list[str]:
    """The distinct approvers of a request, first first."""
    rows = tx.all("SELECT approver FROM request_approvals WHERE request_id = ? "
                  "ORDER BY at, approver", (request_id,), request_approvals)
    return [str(r["approver"]) for r in rows]


def pending_created_before(tx: Tx, cutoff: dt.datetime,
                           after: tuple[dt.datetime, str] | None = None,
                           limit: int = 500) -> list[RequestRecord]:
    """Pending requests older than `cutoff`, oldest first, from after `after` (the
    (created_at, id) of the last one of the previous page): the expiry sweep."""
    page, params = "", [tx.when(cutoff)]
    if after is not None:
        page = "AND (created_at > ? OR (created_at = ? AND id > ?)) "
        params += [tx.when(after[0]), tx.when(after[0]), after[1]]
    rows = tx.all(f"SELECT {_REQUEST} FROM requests WHERE status = 'pending' "
                  f"AND created_at < ? {page}ORDER BY created_at, id LIMIT {int(limit)}",
                  params, requests)
    return [_request(r) for r in rows]


def count_requests(tx: Tx) -> int:
    return int(tx.scalar("SELECT count(*) FROM requests"))


# -- certificates -----------------------------------------------------------------------

CA_PROTOCOL = "ca"
"""The ``protocol`` of a CA's own certificate row (`enroll.ca_certificates`)."""


_CERTIFICATE = ("serial, ca, request_id, status, profile, protocol, requester, subject, "
                "sans, not_before, not_after, revoked_at, revocation_reason, replaces, der, "
                "identity, superseded_by, endpoint, device_id, link")


def _certificate(row: Row) -> CertificateRecord:
    return CertificateRecord(
        serial_hex=row["serial"], ca=row["ca"],
        certificate=x509.load_der_x509_certificate(row["der"]),
        status=CertificateStatus(row["status"]), profile=row["profile"],
        protocol=row["protocol"], requester=row["requester"],
        request_id=row["request_id"], replaces=row["replaces"],
        not_before=row["not_before"], not_after=row["not_after"],
        revoked_at=row["revoked_at"],
        revocation_reason=x509.ReasonFlags(row["revocation_reason"])
        if row["revocation_reason"] else None,
        subject=row["subject"], sans=tuple(row["sans"] or ()),
        identity=row["identity"], superseded_by=row["superseded_by"],
        endpoint=row.get("endpoint"), device_id=row.get("device_id"), link=row.get("link"))


def insert_certificate(tx: Tx, values: Mapping[str, Any]) -> None:
    tx.insert(certificates, values)


def get_certificate(tx: Tx, serial_hex: str) -> CertificateRecord | None:
    row = tx.one(f"SELECT {_CERTIFICATE} FROM certificates WHERE serial = ?", (serial_hex,),
                 certificates)
    return None if row is None else _certificate(row)


def certificate_for_key(tx: Tx, key_fingerprint: str) -> CertificateRecord | None:
    """The newest unrevoked client certificate for a key (SPKI SHA-256), read through
    ``ix_certificates_key_fingerprint``; expiry and replacement are the caller's rule
    (`enroll.renewal`), so a retried renewal still finds the certificate it renewed."""
    row = tx.one(
        f"SELECT {_CERTIFICATE} FROM certificates WHERE key_fingerprint = ? "
        f"AND status = ? AND protocol != '{CA_PROTOCOL}' "
        "ORDER BY not_after DESC, serial DESC LIMIT 1",
        (key_fingerprint, CertificateStatus.VALID.value), certificates)
    return None if row is None else _certificate(row)


def list_certificates(tx: Tx, *, status: CertificateStatus | None = None,
                      ca: str | None = None, limit: int = 100,
                      include_ca: bool = False, protocol: str | None = None,
                      profile: str | None = None, endpoint: str | None = None,
                      identity: str | None = None,
                      expiring: tuple[dt.datetime, dt.datetime] | None = None,
                      by_expiry: bool = False,
                      after: tuple[dt.datetime, str] | None = None
                      ) -> list[CertificateRecord]:
    """Newest first; CAs' own certificates only with `include_ca`. `expiring`:
    (now, until): unrevoked certificates with now < not_after <= until, soonest first
    (read in order from ``ix_certificates_status_not_after``). `by_expiry`: soonest
    first too, and `after` (not_after, serial) of the last row of the previous page
    continues there (a keyset page)."""
    conditions: list[str] = [] if include_ca else [f"protocol != '{CA_PROTOCOL}'"]
    params: list[Any] = []
    if status is not None:
        conditions.append("status = ?")
        params.append(status.value)
    for column, value in (("ca", ca), ("protocol", protocol), ("profile", profile),
                          ("endpoint", endpoint), ("identity", identity)):
        if value is not None:
            conditions.append(f"{column} = ?")
            params.append(value)
    if expiring is not None:
        conditions.append("status = 'valid' AND not_after > ? AND not_after <= ?")
        params += [tx.when(expiring[0]), tx.when(expiring[1])]
    if after is not None:
        conditions.append("(not_after > ? OR (not_after = ? AND serial > ?))")
        params += [tx.when(after[0]), tx.when(after[0]), after[1]]
    where = f"WHERE {' AND '.join(conditions)} " if conditions else ""
    soonest = expiring is not None or by_expiry or after is not None
    order = "not_after ASC, serial ASC" if soonest else "created_at DESC"
    rows = tx.all(f"SELECT {_CERTIFICATE} FROM certificates {where}"
                  f"ORDER BY {order} LIMIT {int(limit)}", params, certificates)
    return [_certificate(r) for r in rows]


def insert_ca_certificate(tx: Tx, *, cert: x509.Certificate, issuer_ca: str, name: str,
                          key_fingerprint: str, now: dt.datetime) -> bool:
    """Store CA `name`'s certificate as a certificate of `issuer_ca` (itself for a
    root), once: False if it is already stored. Profile ``ca:<name>``, protocol ``ca``."""
    serial = format(cert.serial_number, "x")
    if tx.scalar("SELECT 1 FROM certificates WHERE serial = ?", (serial,)) is not None:
        return False
    tx.insert(certificates, {
        "serial": serial, "ca": issuer_ca, "request_id": None,
        "status": CertificateStatus.VALID.value, "profile": f"ca:{name}",
        "protocol": CA_PROTOCOL,
        "requester": "system:ca", "subject": cert.subject.rfc4514_string(), "sans": [],
        "key_fingerprint": key_fingerprint, "not_before": cert.not_valid_before_utc,
        "not_after": cert.not_valid_after_utc, "revoked_at": None, "revocation_reason": None,
        "replaces": None, "der": cert.public_bytes(serialization.Encoding.DER),
        "created_at": now, "identity": f"ca:{name}", "superseded_by": None})
    return True


def revoked_serial(tx: Tx, serials: tuple[str, ...]) -> str | None:
    """The first of `serials` that is stored revoked, or None."""
    if not serials:
        return None
    marks = ", ".join("?" for _ in serials)
    row = tx.one(f"SELECT serial FROM certificates WHERE serial IN ({marks}) AND "
                 f"{REVOKED} LIMIT 1", serials)
    return None if row is None else str(row["serial"])


def count_certificates(tx: Tx) -> int:
    """Certificates issued to clients (not the CAs' own)."""
    return int(tx.scalar("SELECT count(*) FROM certificates WHERE protocol != ?",
                         (CA_PROTOCOL,)))


def supersede(tx: Tx, serial_hex: str, by: str) -> bool:
    """Mark a certificate replaced by `by`, once: False if it already was."""
    return tx.run("UPDATE certificates SET superseded_by = ? WHERE serial = ? "
                  "AND superseded_by IS NULL", (by, serial_hex)) == 1


def superseded_due(tx: Tx, profile: str, renewed_before: dt.datetime,
                   limit: int = 1000) -> list[str]:
    """Serials of still-valid certificates whose renewal under `profile` was stored
    before `renewed_before`."""
    rows = tx.all("SELECT old.serial FROM certificates old JOIN certificates new "
                  "ON new.serial = old.superseded_by WHERE old.status = 'valid' "
                  f"AND new.profile = ? AND new.created_at < ? LIMIT {int(limit)}",
                  (profile, tx.when(renewed_before)))
    return [r["serial"] for r in rows]


LIVE_SELECTORS = ("identity", "requester", "device_id")
"""Columns `live_certificates_by` selects on (each indexed)."""


def live_certificates_by(tx: Tx, column: str, value: str, now: dt.datetime,
                         limit: int) -> list[CertificateRecord]:
    """Live (valid, not expired) client certificates whose `column` (one of
    `LIVE_SELECTORS`) is `value`, oldest first, at most `limit`."""
    if column not in LIVE_SELECTORS:
        raise ValueError(f"not a certificate selector: {column!r}")
    rows = tx.all(f"SELECT {_CERTIFICATE} FROM certificates WHERE {column} = ? "
                  f"AND status = ? AND not_after > ? AND protocol != '{CA_PROTOCOL}' "
                  f"ORDER BY created_at, serial LIMIT {int(limit)}",
                  (value, CertificateStatus.VALID.value, tx.when(now)), certificates)
    return [_certificate(r) for r in rows]


def revoke_certificate(tx: Tx, serial_hex: str, reason: x509.ReasonFlags,
                       now: dt.datetime) -> bool:
    return tx.run("UPDATE certificates SET status = ?, revoked_at = ?, revocation_reason = ? "
                  "WHERE serial = ? AND status = ?",
                  (CertificateStatus.REVOKED.value, tx.when(now), reason.value, serial_hex,
                   CertificateStatus.VALID.value)) == 1


def revoked_entries(tx: Tx, ca: str,
                    now: dt.datetime) -> Iterator[tuple[str, dt.datetime, str | None]]:
    """(serial, revoked_at, reason) of revoked certificates of `ca` not yet expired."""
    # The status test is the literal predicate of ix_certificates_revoked, so the
    # entries come from that index alone (a bound parameter would not match it).
    rows = tx.all("SELECT serial, revoked_at, revocation_reason FROM certificates "  # noqa: S608
                  f"WHERE ca = ? AND {REVOKED} AND not_after > ?",
                  (ca, tx.when(now)), certificates)
    for row in rows:
        yield row["serial"], row["revoked_at"], row["revocation_reason"]


# -- CRLs -------------------------------------------------------------------------------

def get_crl(tx: Tx, ca: str) -> tuple[int, dt.datetime, dt.datetime, bytes] | None:
    row = tx.one("SELECT number, this_update, next_update, der FROM crls WHERE ca = ?",
                 (ca,), crls)
    if row is None:
        return None
    return int(row["number"]), row["this_update"], row["next_update"], row["der"]


def put_crl(tx: Tx, ca: str, number: int, this_update: dt.datetime,
            next_update: dt.datetime, der: bytes) -> bool:
    """Store CRL `number` if it is newer than the stored one (conditional, race-safe)."""
    values = {"number": number, "this_update": this_update, "next_update": next_update,
              "der": der}
    if tx.scalar("SELECT number FROM crls WHERE ca = ?", (ca,)) is None:
        tx.insert(crls, {"ca": ca, **values})
        return True
    return tx.update(crls, values, "ca = ? AND number < ?", (ca, number),
                     allowed=values.keys()) == 1


def next_crl_number(tx: Tx, ca: str) -> int:
    """Reserve the CA's next CRL number (call in a write transaction). The counter
    starts above the stored CRL's number (wall-clock numbers of older versions), and
    never goes back: a number reserved and never published is skipped."""
    stored = tx.scalar("SELECT number FROM crls WHERE ca = ?", (ca,))
    floor = int(stored) if stored is not None else 0
    # Insert-if-absent then increment: two first reservations racing on PostgreSQL
    # queue on the row instead of one failing on the primary key.
    tx.run("INSERT INTO crl_numbers (ca, last_number) VALUES (?, ?) "
           "ON CONFLICT (ca) DO NOTHING", (ca, floor))
    tx.run("UPDATE crl_numbers SET last_number = CASE WHEN last_number < ? THEN ? "
           "ELSE last_number END + 1 WHERE ca = ?", (floor, floor, ca))
    return int(tx.scalar("SELECT last_number FROM crl_numbers WHERE ca = ?", (ca,)))


# -- audit ------------------------------------------------------------------------------

def add_audit(tx: Tx, *, at: dt.datetime, type: str, actor: str,
              request_id: str | None = None, serial: str | None = None,
              details: Mapping[str, Any] | None = None) -> None:
    """Append one event to the hash-chained audit log (`enroll.store.audit_chain`)."""
    audit_chain.append(tx, at=at, type=type, actor=actor, request_id=request_id,
                       serial=serial, details=details)


def list_audit(tx: Tx, *, since: dt.datetime | None = None,
               request_id: str | None = None, limit: int | None = None) -> list[AuditEvent]:
    conditions: list[str] = []
    params: list[Any] = []
    if since is not None:
        conditions.append("at >= ?")
        params.append(tx.when(since))
    if request_id is not None:
        conditions.append("request_id = ?")
        params.append(request_id)
    where = f"WHERE {' AND '.join(conditions)} " if conditions else ""
    tail = f" LIMIT {int(limit)}" if limit is not None else ""
    rows = tx.all("SELECT id, at, type, actor, request_id, serial, details, hash "
                  f"FROM audit_events {where}ORDER BY id{tail}", params, audit_events)
    return [_audit_event(r) for r in rows]


def page_audit(tx: Tx, *, after: int = 0, limit: int = 100, type: str | None = None,
               actor: str | None = None, serial: str | None = None,
               request_id: str | None = None) -> list[AuditEvent]:
    """One page of events with id > `after`, oldest first. `type` ending in ``.`` is a
    prefix (``admin.``), else exact."""
    conditions: list[str] = ["id > ?"]
    params: list[Any] = [after]
    if type is not None:
        if type.endswith("."):  # a range, not LIKE: nothing to escape
            conditions.append("type >= ? AND type < ?")
            params += [type, type[:-1] + "/"]
        else:
            conditions.append("type = ?")
            params.append(type)
    for column, value in (("actor", actor), ("serial", serial), ("request_id", request_id)):
        if value is not None:
            conditions.append(f"{column} = ?")
            params.append(value)
    rows = tx.all("SELECT id, at, type, actor, request_id, serial, details, hash "
                  f"FROM audit_events WHERE {' AND '.join(conditions)} "
                  f"ORDER BY id LIMIT {int(limit)}", params, audit_events)
    return [_audit_event(r) for r in rows]


def _audit_event(r: Row) -> AuditEvent:
    return AuditEvent(id=r["id"], at=r["at"], type=r["type"], actor=r["actor"],
                      request_id=r["request_id"], serial_hex=r["serial"],
                      details=r["details"] or {}, hash=r["hash"])


# -- blocked keys -------------------------------------------------------------------------

def block_key(tx: Tx, *, spki_sha256: str, reason: str, source: str, serial: str | None,
              actor: str, now: dt.datetime) -> bool:
    """Add a key to the blocklist; False if it was already there (kept as it was). One
    statement, so two revocations of the same key racing on PostgreSQL both commit."""
    return tx.run("INSERT INTO blocked_keys (spki_sha256, reason, source, serial, actor, "
                  "created_at) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (spki_sha256) DO NOTHING",
                  (spki_sha256, reason, source, serial, actor, tx.when(now))) == 1


def unblock_key(tx: Tx, spki_sha256: str) -> bool:
    return tx.run("DELETE FROM blocked_keys WHERE spki_sha256 = ?", (spki_sha256,)) == 1


def is_key_blocked(tx: Tx, spki_sha256: str) -> bool:
    return tx.scalar("SELECT 1 FROM blocked_keys WHERE spki_sha256 = ?",
                     (spki_sha256,)) is not None


def get_blocked_key(tx: Tx, spki_sha256: str) -> BlockedKey | None:
    row = tx.one("SELECT spki_sha256, reason, source, serial, actor, created_at FROM "
                 "blocked_keys WHERE spki_sha256 = ?", (spki_sha256,), blocked_keys)
    return None if row is None else BlockedKey(**row)


def list_blocked_keys(tx: Tx, limit: int = 1000) -> list[BlockedKey]:
    rows = tx.all("SELECT spki_sha256, reason, source, serial, actor, created_at FROM "
                  f"blocked_keys ORDER BY created_at DESC LIMIT {int(limit)}", (), blocked_keys)
    return [BlockedKey(**r) for r in rows]
