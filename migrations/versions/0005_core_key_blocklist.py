"""core: the key blocklist

Keys that may not be certified again (nor be an ACME account key), by the SHA-256 of
their SubjectPublicKeyInfo: fed by revocations for keyCompromise and by
`enroll keys block`.

Revision ID: 0005_core_key_blocklist
Revises: 0004_core_identity
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005_core_key_blocklist"
down_revision: str | Sequence[str] | None = "0004_core_identity"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "blocked_keys",
        sa.Column("spki_sha256", sa.String(64), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("serial", sa.String(40), nullable=True),
        sa.Column("actor", sa.String(512), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("spki_sha256", name="pk_blocked_keys"),
    )
    op.create_index("ix_blocked_keys_created_at", "blocked_keys", ["created_at"])


def downgrade() -> None:
    op.drop_index("ix_blocked_keys_created_at", table_name="blocked_keys")
    op.drop_table("blocked_keys")
