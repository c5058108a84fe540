"""acme: index for the per-account quotas

Pending authorizations and validations in progress are counted per account on every
newOrder and challenge response (`protocols/acme/limits.py`).

Revision ID: 0006_acme_quota_index
Revises: 0005_acme_eab_sealed
"""
from collections.abc import Sequence

from alembic import op

revision: str = "0006_acme_quota_index"
down_revision: str | Sequence[str] | None = "0005_acme_eab_sealed"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_acme_authzs_account_status", "acme_authzs", ["account_id", "status"])


def downgrade() -> None:
    op.drop_index("ix_acme_authzs_account_status", table_name="acme_authzs")
