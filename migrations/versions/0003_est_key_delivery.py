"""est: a server-generated key is delivered once, to the requester who asked

``est_server_keys`` gains what identifies the client's request (``client_request``, the
digest /serverkeygen computes from requester, template key and names), who asked
(``requester``) and when the key went over the wire (``delivered_at``). Before, an
archived key was sent again to anyone replaying the template, even after revocation.

Existing rows: the request's transaction id and requester are copied from the core's
``requests`` row, so a client polling for a key waiting for approval still collects
it; a key with a serial was delivered (archived keys are sent with their certificate),
so it is marked delivered when it was created.

Revision ID: 0003_est_key_delivery
Revises: 0002_est
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003_est_key_delivery"
down_revision: str | Sequence[str] | None = "0002_est"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UTC_DT = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("est_server_keys") as batch:
        batch.add_column(sa.Column("client_request", sa.String(length=256), nullable=True))
        batch.add_column(sa.Column("requester", sa.String(length=512), nullable=True))
        batch.add_column(sa.Column("delivered_at", UTC_DT, nullable=True))
    op.create_index("ix_est_server_keys_client_request", "est_server_keys",
                    ["endpoint", "client_request"])
    op.execute(
        "UPDATE est_server_keys SET "
        "client_request = (SELECT r.transaction_id FROM requests r "
        "WHERE r.id = est_server_keys.request_id), "
        "requester = (SELECT r.requester FROM requests r "
        "WHERE r.id = est_server_keys.request_id)")
    op.execute("UPDATE est_server_keys SET delivered_at = created_at "
               "WHERE serial IS NOT NULL")


def downgrade() -> None:
    op.drop_index("ix_est_server_keys_client_request", table_name="est_server_keys")
    with op.batch_alter_table("est_server_keys") as batch:
        batch.drop_column("delivered_at")
        batch.drop_column("requester")
        batch.drop_column("client_request")
