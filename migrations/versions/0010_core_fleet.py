"""core: the fleet layer (inventory, lineage, scheduler leases, lifecycle notices, device
events)

``certificates`` gains ``endpoint`` (copied from its request), ``device_id`` and
``link``; ``requests`` gains ``device_id`` and ``link``. ``identities`` is the inventory,
one row per identity, filled here from the certificates already stored.
``scheduler_leases``, ``lifecycle_notices`` and ``device_events`` are new.

Revision ID: 0010_core_fleet
Revises: 0009_core_audit_chain
"""
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

from enroll.store.columns import utc
from enroll.store.identities import fold

revision: str = "0010_core_fleet"
down_revision: str | Sequence[str] | None = "0009_core_audit_chain"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BATCH = 1000
DT = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("requests", schema=None) as batch_op:
        batch_op.add_column(sa.Column("device_id", sa.String(256), nullable=True))
        batch_op.add_column(sa.Column("link", sa.String(16), nullable=True))
    with op.batch_alter_table("certificates", schema=None) as batch_op:
        batch_op.add_column(sa.Column("endpoint", sa.String(64), nullable=True))
        batch_op.add_column(sa.Column("device_id", sa.String(256), nullable=True))
        batch_op.add_column(sa.Column("link", sa.String(16), nullable=True))
    op.create_index("ix_certificates_device_id", "certificates", ["device_id"])
    op.create_index("ix_certificates_requester", "certificates", ["requester"])
    op.execute("UPDATE certificates SET endpoint = (SELECT endpoint FROM requests "
               "WHERE requests.id = certificates.request_id) "
               "WHERE request_id IS NOT NULL")
    op.execute("UPDATE certificates SET link = 'replaces' WHERE replaces IS NOT NULL")
    op.create_table(
        "identities",
        sa.Column("identity", sa.String(600), nullable=False),
        sa.Column("name", sa.String(600), nullable=False),
        sa.Column("serial", sa.String(40), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("protocol", sa.String(16), nullable=False),
        sa.Column("endpoint", sa.String(64), nullable=False),
        sa.Column("profile", sa.String(64), nullable=False),
        sa.Column("ca", sa.String(64), nullable=False),
        sa.Column("not_before", DT, nullable=False),
        sa.Column("not_after", DT, nullable=False),
        sa.Column("requester", sa.String(512), nullable=False),
        sa.Column("device_id", sa.String(256), nullable=True),
        sa.Column("first_issued", DT, nullable=False),
        sa.Column("last_issued", DT, nullable=False),
        sa.Column("certificates", sa.Integer(), nullable=False),
        sa.Column("migrated_from", sa.String(16), nullable=True),
        sa.PrimaryKeyConstraint("identity", name="pk_identities"),
    )
    for column in ("not_after", "device_id", "last_issued"):
        op.create_index(f"ix_identities_{column}", "identities", [column])
    # Prefix search (`name LIKE 'x%'`) reads it whatever the database's collation.
    op.create_index("ix_identities_name", "identities", ["name"],
                    postgresql_ops={"name": "text_pattern_ops"})
    op.create_index("ix_identities_status_not_after", "identities",
                    ["status", "not_after", "not_before", "profile", "migrated_from",
                     "identity"])
    for column in ("profile", "protocol", "ca", "endpoint"):
        op.create_index(f"ix_identities_{column}_not_after", "identities",
                        [column, "not_after"])
    op.create_table(
        "scheduler_leases",
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("holder", sa.String(128), nullable=False),
        sa.Column("expires_at", DT, nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_scheduler_leases"),
    )
    op.create_table(
        "lifecycle_notices",
        sa.Column("subject", sa.String(80), nullable=False),
        sa.Column("notice", sa.String(64), nullable=False),
        sa.Column("at", DT, nullable=False),
        sa.PrimaryKeyConstraint("subject", "notice", name="pk_lifecycle_notices"),
    )
    op.create_index("ix_lifecycle_notices_at", "lifecycle_notices", ["at"])
    op.create_table(
        "device_events",
        sa.Column("id", sa.String(128), nullable=False),
        sa.Column("event", sa.String(32), nullable=False),
        sa.Column("received_at", DT, nullable=False),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_device_events"),
    )
    op.create_index("ix_device_events_received_at", "device_events", ["received_at"])
    _fill_identities()


def _fill_identities() -> None:
    """One row per identity from the certificates stored: the newest live one current
    (else the newest), their count, first and last issue times."""
    conn = op.get_bind()
    table = sa.table(
        "identities", *(sa.column(n) for n in (
            "identity", "name", "serial", "status", "protocol", "endpoint", "profile", "ca",
            "not_before", "not_after", "requester", "device_id", "first_issued",
            "last_issued", "certificates", "migrated_from")))
    # Streamed (a large store does not fit in memory); the inserts go to another table.
    rows = conn.execute(sa.text(
        "SELECT identity, serial, status, protocol, endpoint, profile, ca, not_before, "
        "not_after, requester, created_at FROM certificates WHERE identity IS NOT NULL "
        "AND protocol != 'ca' AND requester NOT LIKE 'system:%' ORDER BY identity, created_at"
    ).execution_options(stream_results=True, yield_per=BATCH))
    batch: list[dict[str, Any]] = []
    group: list[Any] = []

    def flush_group() -> None:
        if not group:
            return
        live = [r for r in group if r.status == "valid"]
        current = (live or group)[-1]
        previous = [r.protocol for r in group if r.protocol != current.protocol]
        batch.append({
            "identity": current.identity, "name": fold(current.identity),
            "serial": current.serial, "status": current.status,
            "protocol": current.protocol, "endpoint": current.endpoint or "",
            "profile": current.profile, "ca": current.ca,
            "not_before": utc(current.not_before), "not_after": utc(current.not_after),
            "requester": current.requester, "device_id": None,
            "first_issued": utc(group[0].created_at),
            "last_issued": utc(group[-1].created_at), "certificates": len(group),
            "migrated_from": previous[-1] if previous else None})
        group.clear()

    for row in rows:
        if group and group[0].identity != row.identity:
            flush_group()
            if len(batch) >= BATCH:
                op.bulk_insert(table, batch)  # type: ignore[arg-type]
                batch.clear()
        group.append(row)
    flush_group()
    if batch:
        op.bulk_insert(table, batch)  # type: ignore[arg-type]
