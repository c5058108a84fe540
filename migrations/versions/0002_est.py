"""est: Basic users and server-generated keys

Revision ID: 0002_est
Revises: 0001_core
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002_est"
down_revision: str | Sequence[str] | None = "0001_core"
branch_labels: str | Sequence[str] | None = ("est",)
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "est_users",
        sa.Column("endpoint", sa.String(length=64), nullable=False),
        sa.Column("username", sa.String(length=128), nullable=False),
        sa.Column("password_hash", sa.String(length=256), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("endpoint", "username", name=op.f("pk_est_users")),
    )
    op.create_table(
        "est_server_keys",
        sa.Column("request_id", sa.String(length=36), nullable=False),
        sa.Column("endpoint", sa.String(length=64), nullable=False),
        sa.Column("serial", sa.String(length=40), nullable=True),
        sa.Column("key_type", sa.String(length=16), nullable=False),
        sa.Column("encrypted_key", sa.LargeBinary(), nullable=False),
        sa.Column("archived", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("request_id", name=op.f("pk_est_server_keys")),
    )
    op.create_index("ix_est_server_keys_serial", "est_server_keys", ["serial"])


def downgrade() -> None:
    op.drop_index("ix_est_server_keys_serial", table_name="est_server_keys")
    op.drop_table("est_server_keys")
    op.drop_table("est_users")
