"""acme: permanent-identifier authorizations and what device-attest-01 proved

``acme_authzs.type`` widens to 32 characters (``permanent-identifier``) and gains
``attested``: JSON of the attested key's fingerprint and the device identifiers, which
finalize compares with the CSR (draft-ietf-acme-device-attest). Existing rows: NULL.

Revision ID: 0010_acme_device_attest
Revises: 0009_acme_requested_validity
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010_acme_device_attest"
down_revision: str | Sequence[str] | None = "0009_acme_requested_validity"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("acme_authzs") as batch:
        batch.alter_column("type", existing_type=sa.String(8), type_=sa.String(32),
                           existing_nullable=False)
        batch.add_column(sa.Column("attested", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("acme_authzs") as batch:
        batch.drop_column("attested")
        batch.alter_column("type", existing_type=sa.String(32), type_=sa.String(8),
                           existing_nullable=False)
