"""core: rate-limit counters

The counters of `enroll.rate_limits`, shared by every worker: one row per (limit and
subject, window), with the time after which no check reads it.

Revision ID: 0006_core_rate_limits
Revises: 0005_core_key_blocklist
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006_core_rate_limits"
down_revision: str | Sequence[str] | None = "0005_core_key_blocklist"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "rate_counters",
        sa.Column("k", sa.String(255), nullable=False),
        sa.Column("slot", sa.BigInteger(), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("expires_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("k", "slot", name="pk_rate_counters"),
    )
    op.create_index("ix_rate_counters_expires_at", "rate_counters", ["expires_at"])


def downgrade() -> None:
    op.drop_index("ix_rate_counters_expires_at", table_name="rate_counters")
    op.drop_table("rate_counters")
