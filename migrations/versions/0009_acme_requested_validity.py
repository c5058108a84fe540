"""acme: an order keeps the validity its client asked for

``acme_orders`` gains ``not_before`` and ``not_after``: the RFC 8555 §7.4 newOrder
fields, accepted since issue 12 within the profile's bounds (`enroll.validity_rules`),
echoed in the order object and handed to the core at finalize (and by the recovery
pass). Existing rows keep NULLs: their certificates get the profile's validity.

Revision ID: 0009_acme_requested_validity
Revises: 0008_acme_lineage
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009_acme_requested_validity"
down_revision: str | Sequence[str] | None = "0008_acme_lineage"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("acme_orders") as batch:
        batch.add_column(sa.Column("not_before", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("not_after", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("acme_orders") as batch:
        batch.drop_column("not_after")
        batch.drop_column("not_before")
