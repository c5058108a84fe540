"""core: CRL numbers from a counter in the database

CRL numbers were wall-clock milliseconds, so a host with a slow clock could publish an
older CRL under a higher number than another's. Each CA now has a counter
(``crl_numbers``) that the CRL service increments in a write transaction before it
signs. The counter starts at the number of the CRL already stored for the CA (a
wall-clock number for existing data dirs), so the next CRL is numbered above every
CRL published so far.

Revision ID: 0008_core_durability
Revises: 0007_core_ocsp_responses
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008_core_durability"
down_revision: str | Sequence[str] | None = "0007_core_ocsp_responses"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "crl_numbers",
        sa.Column("ca", sa.String(64), nullable=False),
        sa.Column("last_number", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("ca", name="pk_crl_numbers"),
    )
    op.execute("INSERT INTO crl_numbers (ca, last_number) SELECT ca, number FROM crls")


def downgrade() -> None:
    op.drop_table("crl_numbers")
