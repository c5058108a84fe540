"""acme: a certificate is replaced by at most one order that is not invalid

RFC 9773 §5: two racing newOrders naming the same `replaces` could both be accepted,
because the check and the insert were two transactions. A partial unique index over
the orders that are not invalid backs the check made in the insert's transaction; an
order that becomes invalid leaves the index, releasing the certificate.

Orders that already share a `replaces` (only possible through that race) keep the
earliest one's claim; the later ones lose their `replaces` value, as they would have
been refused with alreadyReplaced. Their certificates keep `replaces` in the core's
tables.

Revision ID: 0004_acme_replaces_once
Revises: 0002_acme
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004_acme_replaces_once"
down_revision: str | Sequence[str] | None = "0002_acme"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

LIVE = "replaces IS NOT NULL AND status != 'invalid'"


def upgrade() -> None:
    op.execute(
        "UPDATE acme_orders SET replaces = NULL WHERE replaces IS NOT NULL "
        "AND status != 'invalid' AND EXISTS (SELECT 1 FROM acme_orders earlier "
        "WHERE earlier.replaces = acme_orders.replaces AND earlier.status != 'invalid' "
        "AND (earlier.created_at < acme_orders.created_at OR "
        "(earlier.created_at = acme_orders.created_at AND earlier.id < acme_orders.id)))")
    op.create_index("uq_acme_orders_replaces", "acme_orders", ["replaces"], unique=True,
                    sqlite_where=sa.text(LIVE), postgresql_where=sa.text(LIVE))


def downgrade() -> None:
    op.drop_index("uq_acme_orders_replaces", table_name="acme_orders")
