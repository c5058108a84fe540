"""acme: an order being finalized keeps its CSR, so recovery can finish it

A worker that dies between ``ready -> processing`` and storing the core's answer left
the order ``processing`` forever, with nothing to finish it from. Finalize now stores
the CSR, the requester it submits as and when processing started; the recovery pass
(`protocols.acme.recovery`) re-submits an order stuck past its grace period from
them. Orders finalized earlier keep NULLs (recovery returns those to ``ready``).

Revision ID: 0007_acme_finalize_recovery
Revises: 0006_acme_quota_index
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007_acme_finalize_recovery"
down_revision: str | Sequence[str] | None = "0006_acme_quota_index"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PROCESSING = "status = 'processing'"


def upgrade() -> None:
    with op.batch_alter_table("acme_orders") as batch:
        batch.add_column(sa.Column("csr", sa.Text(), nullable=True))
        batch.add_column(sa.Column("finalized_by", sa.String(512), nullable=True))
        batch.add_column(sa.Column("processing_since", sa.DateTime(timezone=True),
                                   nullable=True))
    op.create_index("ix_acme_orders_processing", "acme_orders", ["processing_since"],
                    sqlite_where=sa.text(PROCESSING), postgresql_where=sa.text(PROCESSING))


def downgrade() -> None:
    op.drop_index("ix_acme_orders_processing", table_name="acme_orders")
    with op.batch_alter_table("acme_orders") as batch:
        batch.drop_column("processing_since")
        batch.drop_column("finalized_by")
        batch.drop_column("csr")
