"""acme: EAB HMAC keys are stored sealed under the CA passphrase

``acme_eab_keys`` gains ``hmac_key``: the key an operator hands out, sealed with
`enroll.crypto.sealing` (context ``acme/eab-key/<kid>``). Before, the key was derived
from a secret in ``acme_secrets``, so anyone who could read the database could compute
every EAB key.

Existing rows keep ``hmac_key`` NULL and go on working: the key is still derived for
them when they are used (no passphrase is available to a migration). ``enroll ca
rotate-passphrase`` seals the derived key of each such row and deletes the database
secret.

Revision ID: 0005_acme_eab_sealed
Revises: 0004_acme_replaces_once
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005_acme_eab_sealed"
down_revision: str | Sequence[str] | None = "0004_acme_replaces_once"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("acme_eab_keys") as batch:
        batch.add_column(sa.Column("hmac_key", sa.LargeBinary(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("acme_eab_keys") as batch:
        batch.drop_column("hmac_key")
