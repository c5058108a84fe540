"""Tables of the core. Protocols declare their own tables on the same `metadata`
(in their ``store.py``) so one alembic history covers everything."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)

from enroll.store.columns import UTC_DT

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
metadata = MetaData(naming_convention=NAMING)

REVOKED = "status = 'revoked'"
"""The predicate of the partial index of revoked certificates; a query that should use
that index must carry it literally (a bound parameter does not match it)."""

cas = Table(
    "cas", metadata,
    Column("name", String(64), primary_key=True),
    Column("backend", String(64), nullable=False),
    Column("parent", String(64), nullable=True),
    Column("certificate_pem", Text, nullable=False),
    Column("chain_pem", Text, nullable=False),
    Column("key_blob", LargeBinary, nullable=False),
    Column("created_at", UTC_DT, nullable=False),
)

requests = Table(
    "requests", metadata,
    Column("id", String(36), primary_key=True),
    Column("status", String(16), nullable=False),
    Column("profile", String(64), nullable=False),
    Column("ca", String(64), nullable=False),
    Column("protocol", String(16), nullable=False),
    Column("endpoint", String(64), nullable=False, default=""),
    Column("requester", String(512), nullable=False),
    Column("auth_method", String(32), nullable=False),
    Column("transaction_id", String(256), nullable=True),
    Column("key_fingerprint", String(64), nullable=False),
    Column("subject", Text, nullable=False),
    Column("sans", JSON, nullable=False),
    Column("replaces", String(40), nullable=True),
    Column("reason", Text, nullable=False, default=""),
    Column("certificate_serial", String(40), nullable=True),
    Column("csr_pem", Text, nullable=False),
    Column("attributes", JSON, nullable=False),
    Column("decided_by", String(256), nullable=True),
    Column("created_at", UTC_DT, nullable=False),
    Column("updated_at", UTC_DT, nullable=False),
    Column("identity", String(600), nullable=True),
    # enroll.fleet: the device id (MDM / attested) and why the request links to the
    # certificate it replaces (`enroll.model.LINK_REASONS`).
    Column("device_id", String(256), nullable=True),
    Column("link", String(16), nullable=True),
    # One answer per transaction, however often a client retries (SCEP transactionID…).
    UniqueConstraint("protocol", "endpoint", "transaction_id", name="uq_requests_transaction"),
    # `requests list` (newest first, optionally by status) reads these in order.
    Index("ix_requests_status_created_at", "status", "created_at"),
    Index("ix_requests_created_at", "created_at"),
)

certificates = Table(
    "certificates", metadata,
    Column("serial", String(40), primary_key=True),
    Column("ca", String(64), nullable=False),
    Column("request_id", String(36), ForeignKey("requests.id"), nullable=True),
    Column("status", String(16), nullable=False),
    Column("profile", String(64), nullable=False),
    Column("protocol", String(16), nullable=False),
    Column("requester", String(512), nullable=False),
    Column("subject", Text, nullable=False),
    Column("sans", JSON, nullable=False),
    Column("key_fingerprint", String(64), nullable=False),
    Column("not_before", UTC_DT, nullable=False),
    Column("not_after", UTC_DT, nullable=False),
    Column("revoked_at", UTC_DT, nullable=True),
    Column("revocation_reason", String(32), nullable=True),
    Column("replaces", String(40), nullable=True),
    Column("der", LargeBinary, nullable=False),
    Column("created_at", UTC_DT, nullable=False),
    Column("identity", String(600), nullable=True),
    Column("superseded_by", String(40), nullable=True),
    # The endpoint that issued it, its device id (MDM / attested) and why it links to
    # the certificate it replaces (`enroll.model.LINK_REASONS`).
    Column("endpoint", String(64), nullable=True),
    Column("device_id", String(256), nullable=True),
    Column("link", String(16), nullable=True),
    # `certs list` (newest first, by status and/or CA) reads one of these in order.
    Index("ix_certificates_ca_status_created_at", "ca", "status", "created_at"),
    Index("ix_certificates_status_created_at", "status", "created_at"),
    Index("ix_certificates_ca_created_at", "ca", "created_at"),
    Index("ix_certificates_created_at", "created_at"),
    # The CRL's entries, read from the index alone (no row lookups): revoked rows only,
    # so issuance never writes to it.
    Index("ix_certificates_revoked", "ca", "not_after", "serial", "revoked_at",
          "revocation_reason", sqlite_where=text(REVOKED), postgresql_where=text(REVOKED)),
    Index("ix_certificates_key_fingerprint", "key_fingerprint"),
    Index("ix_certificates_replaces", "replaces"),
    # A subject's certificates, across protocols (renewals, the inventory's lineage).
    Index("ix_certificates_identity", "identity"),
    # Certificates expiring soon, counted by the metrics' scrape (enroll.metrics_db);
    # covering what `certs list --state` needs (the window's dates, the profile, the
    # migration test's replaces and protocol), so the rows a state skips are skipped in
    # the index (`enroll.store.certificate_listing`).
    Index("ix_certificates_status_not_after", "status", "not_after", "not_before", "profile",
          "protocol", "replaces", "serial"),
    # `certs list --sort not_after` (any status), keyset pages by (not_after, serial).
    Index("ix_certificates_not_after", "not_after", "serial"),
    # Revocation by device or requester (`enroll certs revoke --device-id/--requester`).
    Index("ix_certificates_device_id", "device_id"),
    Index("ix_certificates_requester", "requester"),
)

identities = Table(
    "identities", metadata,
    # enroll.store.identities: the inventory, one row per identity (device, user or
    # service) whatever protocol issued its certificates, kept in the transaction that
    # issues or revokes one. `serial` is its current certificate: the newest live one,
    # else the newest.
    Column("identity", String(600), primary_key=True),
    # `name`: the identity's value folded to lower case (prefix search: `LIKE 'x%'`
    # reads the index on PostgreSQL whatever the database's collation with
    # text_pattern_ops, on SQLite as a range).
    Column("name", String(600), nullable=False),
    Column("serial", String(40), nullable=False),
    Column("status", String(16), nullable=False),
    Column("protocol", String(16), nullable=False),
    Column("endpoint", String(64), nullable=False),
    Column("profile", String(64), nullable=False),
    Column("ca", String(64), nullable=False),
    Column("not_before", UTC_DT, nullable=False),
    Column("not_after", UTC_DT, nullable=False),
    Column("requester", String(512), nullable=False),
    Column("device_id", String(256), nullable=True),
    Column("first_issued", UTC_DT, nullable=False),
    Column("last_issued", UTC_DT, nullable=False),
    Column("certificates", Integer, nullable=False),
    # The protocol the identity moved from: that of the certificate its current one
    # replaced, when it differs.
    Column("migrated_from", String(16), nullable=True),
    Index("ix_identities_not_after", "not_after"),
    # `enroll inventory --state ...`: status ('valid' or 'revoked') in expiry order,
    # covering what a renewal window needs, so rows outside the state are skipped in
    # the index without reading the table (`enroll.store.inventory.page` reads the
    # page's keys from it, then the page's rows).
    Index("ix_identities_status_not_after", "status", "not_after", "not_before", "profile",
          "migrated_from", "identity"),
    Index("ix_identities_profile_not_after", "profile", "not_after"),
    Index("ix_identities_protocol_not_after", "protocol", "not_after"),
    Index("ix_identities_ca_not_after", "ca", "not_after"),
    Index("ix_identities_endpoint_not_after", "endpoint", "not_after"),
    Index("ix_identities_name", "name", postgresql_ops={"name": "text_pattern_ops"}),
    Index("ix_identities_device_id", "device_id"),
    Index("ix_identities_last_issued", "last_issued"),
)

scheduler_leases = Table(
    "scheduler_leases", metadata,
    # enroll.scheduler: a job that must run once across workers and hosts holds its
    # lease until `expires_at`.
    Column("name", String(64), primary_key=True),
    Column("holder", String(128), nullable=False),
    Column("expires_at", UTC_DT, nullable=False),
)

lifecycle_notices = Table(
    "lifecycle_notices", metadata,
    # enroll.lifecycle: each (certificate or profile, notice) emitted once, whichever
    # worker got there first (``expiring:2592000``, ``expired``, ``migration.deadline``).
    Column("subject", String(80), primary_key=True),
    Column("notice", String(64), primary_key=True),
    Column("at", UTC_DT, nullable=False),
    Index("ix_lifecycle_notices_at", "at"),
)

device_events = Table(
    "device_events", metadata,
    # enroll.device_events: MDM lifecycle events already applied (replay protection).
    Column("id", String(128), primary_key=True),
    Column("event", String(32), nullable=False),
    Column("received_at", UTC_DT, nullable=False),
    Column("details", JSON, nullable=False),
    Index("ix_device_events_received_at", "received_at"),
)

audit_events = Table(
    "audit_events", metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True,
           autoincrement=True),
    Column("at", UTC_DT, nullable=False),
    Column("type", String(64), nullable=False),
    Column("actor", String(512), nullable=False),
    Column("request_id", String(36), nullable=True),
    Column("serial", String(40), nullable=True),
    Column("details", JSON, nullable=False),
    # enroll.store.audit_chain: the event's place in the chain and SHA-256 of its
    # canonical fields and prev_hash, set when the event is chained (NULL until then).
    Column("chain_seq", BigInteger, nullable=True),
    Column("prev_hash", String(64), nullable=True),
    Column("hash", String(64), nullable=True),
    Index("ix_audit_events_at", "at"),
    Index("uq_audit_events_chain_seq", "chain_seq", unique=True),
    # What the chainer reads: the few events not chained yet.
    Index("ix_audit_events_unchained", "id", sqlite_where=text("chain_seq IS NULL"),
          postgresql_where=text("chain_seq IS NULL")),
)

audit_chain_head = Table(
    "audit_chain_head", metadata,
    # One row (id 1): the hash and sequence number of the last chained event, locked
    # by the chainer (enroll.store.audit_chain.chain_pending).
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("last_hash", String(64), nullable=False),
    Column("last_seq", BigInteger, nullable=False, server_default="0"),
)

audit_refusals = Table(
    "audit_refusals", metadata,
    # enroll.refusals: refusals of the current window, one row per (door, reason, source,
    # actor), counted in place; a closed window's rows become chained audit events.
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True,
           autoincrement=True),
    Column("window_start", UTC_DT, nullable=False),
    Column("door", String(128), nullable=False),
    Column("reason", String(64), nullable=False),
    Column("source", String(64), nullable=False),
    Column("actor", String(512), nullable=False),
    Column("count", BigInteger, nullable=False),
    Column("first_at", UTC_DT, nullable=False),
    Column("last_at", UTC_DT, nullable=False),
    Column("details", JSON, nullable=False),
    UniqueConstraint("window_start", "door", "reason", "source", "actor",
                     name="uq_audit_refusals_key"),
)

request_approvals = Table(
    "request_approvals", metadata,
    # enroll.approvals: the distinct approvers of a pending request (four eyes).
    Column("request_id", String(36), ForeignKey("requests.id"), primary_key=True),
    Column("approver", String(512), primary_key=True),
    Column("at", UTC_DT, nullable=False),
)

crls = Table(
    "crls", metadata,
    Column("ca", String(64), primary_key=True),
    Column("number", BigInteger, nullable=False),
    Column("this_update", UTC_DT, nullable=False),
    Column("next_update", UTC_DT, nullable=False),
    Column("der", LargeBinary, nullable=False),
)

crl_numbers = Table(
    "crl_numbers", metadata,
    # The last CRL number each CA reserved (enroll.revocation): one counter per CA in
    # the shared database, so numbers grow across workers and hosts whatever their
    # clocks say. Migration 0006 starts it at the number of the CRL already stored.
    Column("ca", String(64), primary_key=True),
    Column("last_number", BigInteger, nullable=False),
)

blocked_keys = Table(
    "blocked_keys", metadata,
    # enroll.key_blocklist: keys no certificate or ACME account may carry again, by the
    # hex SHA-256 of their SubjectPublicKeyInfo (enroll.crypto.keys.spki_sha256).
    Column("spki_sha256", String(64), primary_key=True),
    Column("reason", Text, nullable=False),
    Column("source", String(16), nullable=False),
    Column("serial", String(40), nullable=True),
    Column("actor", String(512), nullable=False),
    Column("created_at", UTC_DT, nullable=False),
    Index("ix_blocked_keys_created_at", "created_at"),
)

ocsp_responses = Table(
    "ocsp_responses", metadata,
    # enroll.ocsp: the signed OCSP response per certificate and CertID hash, shared by
    # every worker; `status` is the certificate state it was signed for, so a response
    # signed before a revocation is never served after it.
    Column("ca", String(64), primary_key=True),
    Column("serial", String(40), primary_key=True),
    Column("hash_alg", String(16), primary_key=True),
    Column("status", String(16), nullable=False),
    Column("this_update", UTC_DT, nullable=False),
    Column("next_update", UTC_DT, nullable=False),
    Column("der", LargeBinary, nullable=False),
)

rate_counters = Table(
    "rate_counters", metadata,
    # enroll.rate_limits: events counted per (limit|subject, window) for every worker.
    Column("k", String(255), primary_key=True),
    Column("slot", BigInteger, primary_key=True, autoincrement=False),
    Column("count", Integer, nullable=False),
    Column("expires_at", BigInteger, nullable=False),
    Index("ix_rate_counters_expires_at", "expires_at"),
)
