"""scep: RA generations are kept, and a next one is published before it takes over

``scep_ra_keys`` held one row per (endpoint, CA), overwritten at renewal: workers that
started at different times held different RAs and a request enveloped to the next RA
could not be opened. The primary key becomes (endpoint, ca, generation), so every
generation stays (and decrypts until its certificate expires), and ``activates_at``
says when a generation becomes the one GetCACert returns and CertReps are signed with.
Existing rows keep NULL: active since they were created.

Revision ID: 0003_scep_ra_generations
Revises: 0002_scep
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003_scep_ra_generations"
down_revision: str | Sequence[str] | None = "0002_scep"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("scep_ra_keys") as batch:
        batch.add_column(sa.Column("activates_at", sa.DateTime(timezone=True), nullable=True))
        batch.drop_constraint("pk_scep_ra_keys", type_="primary")
        batch.create_primary_key("pk_scep_ra_keys", ["endpoint", "ca", "generation"])


def downgrade() -> None:
    # Only the newest generation of each (endpoint, CA) fits the old key.
    op.execute("DELETE FROM scep_ra_keys WHERE generation < (SELECT max(k.generation) "
               "FROM scep_ra_keys k WHERE k.endpoint = scep_ra_keys.endpoint "
               "AND k.ca = scep_ra_keys.ca)")
    with op.batch_alter_table("scep_ra_keys") as batch:
        batch.drop_constraint("pk_scep_ra_keys", type_="primary")
        batch.create_primary_key("pk_scep_ra_keys", ["endpoint", "ca"])
        batch.drop_column("activates_at")
