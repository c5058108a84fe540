"""core: stored OCSP responses, and an index for the expiring-certificates gauge

Signed OCSP responses per (CA, serial, CertID hash), shared by every worker, so an
anonymous OCSP request is answered without a fresh signature (enroll.ocsp). The index
on (status, not_after) keeps the scrape's "expiring within 30 days" count cheap.

Revision ID: 0007_core_ocsp_responses
Revises: 0006_core_rate_limits
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007_core_ocsp_responses"
down_revision: str | Sequence[str] | None = "0006_core_rate_limits"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "ocsp_responses",
        sa.Column("ca", sa.String(64), nullable=False),
        sa.Column("serial", sa.String(40), nullable=False),
        sa.Column("hash_alg", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("this_update", sa.DateTime(timezone=True), nullable=False),
        sa.Column("next_update", sa.DateTime(timezone=True), nullable=False),
        sa.Column("der", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("ca", "serial", "hash_alg", name="pk_ocsp_responses"),
    )
    op.create_index("ix_certificates_status_not_after", "certificates",
                    ["status", "not_after"])


def downgrade() -> None:
    op.drop_index("ix_certificates_status_not_after", table_name="certificates")
    op.drop_table("ocsp_responses")
