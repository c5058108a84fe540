"""core: the hash-chained audit log, aggregated refusals, four-eyes approvals

``audit_events`` gains ``prev_hash`` and ``hash`` (enroll.store.audit_chain) and every
existing event is chained, in id order; ``audit_chain_head`` holds the last hash.
``audit_refusals`` counts refusals per window (enroll.refusals); ``request_approvals``
holds the distinct approvers of a pending request. ``requests.status`` may now be
``expired`` (no schema change: it is a string).

Revision ID: 0009_core_audit_chain
Revises: 0008_core_durability
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from enroll.store.audit_chain import GENESIS, HEAD_ID, event_hash
from enroll.store.columns import utc

revision: str = "0009_core_audit_chain"
down_revision: str | Sequence[str] | None = "0008_core_durability"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BATCH = 1000


def upgrade() -> None:
    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        batch_op.add_column(sa.Column("chain_seq", sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column("prev_hash", sa.String(64), nullable=True))
        batch_op.add_column(sa.Column("hash", sa.String(64), nullable=True))
    op.create_index("uq_audit_events_chain_seq", "audit_events", ["chain_seq"], unique=True)
    op.create_index("ix_audit_events_unchained", "audit_events", ["id"],
                    sqlite_where=sa.text("chain_seq IS NULL"),
                    postgresql_where=sa.text("chain_seq IS NULL"))
    op.create_table(
        "audit_chain_head",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("last_hash", sa.String(64), nullable=False),
        sa.Column("last_seq", sa.BigInteger(), server_default="0", nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_audit_chain_head"),
    )
    op.create_table(
        "audit_refusals",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
                  autoincrement=True, nullable=False),
        sa.Column("window_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("door", sa.String(128), nullable=False),
        sa.Column("reason", sa.String(64), nullable=False),
        sa.Column("source", sa.String(64), nullable=False),
        sa.Column("actor", sa.String(512), nullable=False),
        sa.Column("count", sa.BigInteger(), nullable=False),
        sa.Column("first_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_audit_refusals"),
        sa.UniqueConstraint("window_start", "door", "reason", "source", "actor",
                            name="uq_audit_refusals_key"),
    )
    op.create_table(
        "request_approvals",
        sa.Column("request_id", sa.String(36), nullable=False),
        sa.Column("approver", sa.String(512), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["request_id"], ["requests.id"],
                                name="fk_request_approvals_request_id_requests"),
        sa.PrimaryKeyConstraint("request_id", "approver", name="pk_request_approvals"),
    )
    _chain_existing()


def _chain_existing() -> None:
    """Chain the events already stored, in id order, in batches."""
    conn = op.get_bind()
    events = sa.table("audit_events", sa.column("id"), sa.column("at"), sa.column("type"),
                      sa.column("actor"), sa.column("request_id"), sa.column("serial"),
                      sa.column("details", sa.JSON()), sa.column("prev_hash"),
                      sa.column("hash"), sa.column("chain_seq"))
    prev, last_id, seq = GENESIS, 0, 0
    while True:
        rows = conn.execute(sa.select(events.c.id, events.c.at, events.c.type,
                                      events.c.actor, events.c.request_id, events.c.serial,
                                      events.c.details)
                            .where(events.c.id > last_id).order_by(events.c.id)
                            .limit(BATCH)).mappings().all()
        for row in rows:
            digest = event_hash(prev, at=utc(row["at"]), type=row["type"],
                                actor=row["actor"], request_id=row["request_id"],
                                serial=row["serial"], details=row["details"])
            seq += 1
            conn.execute(events.update().where(events.c.id == row["id"])
                         .values(prev_hash=prev, hash=digest, chain_seq=seq))
            prev, last_id = digest, row["id"]
        if len(rows) < BATCH:
            break
    conn.execute(sa.text("INSERT INTO audit_chain_head (id, last_hash, last_seq) "
                         "VALUES (:id, :h, :n)"), {"id": HEAD_ID, "h": prev, "n": seq})


def downgrade() -> None:
    op.drop_table("request_approvals")
    op.drop_table("audit_refusals")
    op.drop_table("audit_chain_head")
    op.drop_index("ix_audit_events_unchained", table_name="audit_events")
    op.drop_index("uq_audit_events_chain_seq", table_name="audit_events")
    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        batch_op.drop_column("hash")
        batch_op.drop_column("prev_hash")
        batch_op.drop_column("chain_seq")
