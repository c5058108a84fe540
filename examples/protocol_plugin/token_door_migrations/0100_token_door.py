"""The token door's own table: a branch of its own, after the core's first revision."""

import sqlalchemy as sa
from alembic import op

revision = "0100_token_door"
down_revision = None
branch_labels = ("token_door",)
depends_on = "0001_core"


def upgrade() -> None:
    op.create_table(
        "token_door_uses",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("endpoint", sa.String(64), nullable=False),
        sa.Column("request_id", sa.String(36), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("token_door_uses")
