"""core: every certificate records its identity and what superseded it

`identity` (``san.dns:host.example``, ``subject.CN:dev-42``…) is what the profile says
identifies the certificate's subject; renewals must keep it. `superseded_by` is the
serial of the certificate that renewed this one (set once, in the renewal's own
transaction). Rows stored earlier keep NULL: the core derives their identity from the
certificate and its profile when it needs it.

Revision ID: 0004_core_identity
Revises: 0003_core_growth_indexes
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004_core_identity"
down_revision: str | Sequence[str] | None = "0003_core_growth_indexes"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("requests") as batch:
        batch.add_column(sa.Column("identity", sa.String(600), nullable=True))
    with op.batch_alter_table("certificates") as batch:
        batch.add_column(sa.Column("identity", sa.String(600), nullable=True))
        batch.add_column(sa.Column("superseded_by", sa.String(40), nullable=True))
    op.create_index("ix_certificates_identity", "certificates", ["identity"])


def downgrade() -> None:
    op.drop_index("ix_certificates_identity", table_name="certificates")
    with op.batch_alter_table("certificates") as batch:
        batch.drop_column("superseded_by")
        batch.drop_column("identity")
    with op.batch_alter_table("requests") as batch:
        batch.drop_column("identity")
