"""core: `enroll certs list --sort not_after` reads an index in order

``certificates`` gains ``ix_certificates_not_after`` on (not_after, serial): the
listing's order and its keyset (``--after``) as one index range, whatever the status.

Revision ID: 0011_core_certs_list
Revises: 0010_core_fleet
"""
from collections.abc import Sequence

from alembic import op

revision: str = "0011_core_certs_list"
down_revision: str | Sequence[str] | None = "0010_core_fleet"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_certificates_not_after", "certificates", ["not_after", "serial"])


def downgrade() -> None:
    op.drop_index("ix_certificates_not_after", table_name="certificates")
