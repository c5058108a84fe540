"""acme: EAB keys may carry identity patterns; an order keeps why it may replace

``acme_eab_keys`` gains ``identity``: a JSON list of fnmatch patterns on stored
identities (``san.dns:*.corp.example``). An account bound with such a key may name in
``replaces`` a certificate another door (SCEP, EST) or account got for a matching
identity. ``acme_orders`` gains ``replaces_link``: why its ``replaces`` was accepted
(``eab``, ``names``; NULL: the account's own certificate), recorded on the request
when the order is finalized (``enroll.model.LINK_REASONS``). Existing rows keep NULLs:
nothing changes for them.

Revision ID: 0008_acme_lineage
Revises: 0007_acme_finalize_recovery
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008_acme_lineage"
down_revision: str | Sequence[str] | None = "0007_acme_finalize_recovery"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("acme_eab_keys") as batch:
        batch.add_column(sa.Column("identity", sa.Text(), nullable=True))
    with op.batch_alter_table("acme_orders") as batch:
        batch.add_column(sa.Column("replaces_link", sa.String(16), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("acme_orders") as batch:
        batch.drop_column("replaces_link")
    with op.batch_alter_table("acme_eab_keys") as batch:
        batch.drop_column("identity")
