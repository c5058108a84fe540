"""scep: RA keys and one-time challenges

Revision ID: 0002_scep
Revises: 0001_core
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002_scep"
down_revision: str | Sequence[str] | None = "0001_core"
branch_labels: str | Sequence[str] | None = ("scep",)
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "scep_ra_keys",
        sa.Column("endpoint", sa.String(length=64), nullable=False),
        sa.Column("ca", sa.String(length=64), nullable=False),
        sa.Column("generation", sa.Integer(), nullable=False),
        sa.Column("certificate_pem", sa.Text(), nullable=False),
        sa.Column("key_blob", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("endpoint", "ca", name=op.f("pk_scep_ra_keys")),
    )
    op.create_table(
        "scep_challenges",
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("endpoint", sa.String(length=64), nullable=False),
        sa.Column("created_by", sa.String(length=256), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("used_by", sa.String(length=256), nullable=True),
        sa.PrimaryKeyConstraint("digest", name=op.f("pk_scep_challenges")),
    )
    op.create_index("ix_scep_challenges_expires_at", "scep_challenges", ["expires_at"])


def downgrade() -> None:
    op.drop_index("ix_scep_challenges_expires_at", table_name="scep_challenges")
    op.drop_table("scep_challenges")
    op.drop_table("scep_ra_keys")
