"""acme: accounts, orders, authorizations, challenges, used nonces, EAB keys, secrets

Revision ID: 0002_acme
Revises: 0001_core
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002_acme"
down_revision: str | Sequence[str] | None = "0001_core"
branch_labels: str | Sequence[str] | None = ("acme",)
depends_on: str | Sequence[str] | None = None

UTC_DT = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "acme_secrets",
        sa.Column("name", sa.String(length=32), nullable=False),
        sa.Column("value", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_acme_secrets")),
    )
    op.create_table(
        "acme_used_nonces",
        sa.Column("nonce", sa.String(length=64), nullable=False),
        sa.Column("expires", UTC_DT, nullable=False),
        sa.PrimaryKeyConstraint("nonce", name=op.f("pk_acme_used_nonces")),
    )
    op.create_table(
        "acme_accounts",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("endpoint", sa.String(length=64), nullable=False),
        sa.Column("thumbprint", sa.String(length=64), nullable=False),
        sa.Column("jwk", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("contact", sa.Text(), nullable=False),
        sa.Column("eab_kid", sa.String(length=64), nullable=True),
        sa.Column("allow", sa.Text(), nullable=True),
        sa.Column("created_at", UTC_DT, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_acme_accounts")),
        sa.UniqueConstraint("endpoint", "thumbprint", name="uq_acme_accounts_key"),
    )
    op.create_table(
        "acme_orders",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("endpoint", sa.String(length=64), nullable=False),
        sa.Column("account_id", sa.String(length=32), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("identifiers", sa.Text(), nullable=False),
        sa.Column("profile", sa.String(length=64), nullable=False),
        sa.Column("replaces", sa.String(length=64), nullable=True),
        sa.Column("request_id", sa.String(length=36), nullable=True),
        sa.Column("certificate_serial", sa.String(length=64), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("expires", UTC_DT, nullable=False),
        sa.Column("created_at", UTC_DT, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_acme_orders")),
    )
    op.create_index("ix_acme_orders_account_id", "acme_orders", ["account_id"])
    op.create_table(
        "acme_authzs",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("order_id", sa.String(length=32), nullable=False),
        sa.Column("account_id", sa.String(length=32), nullable=False),
        sa.Column("type", sa.String(length=8), nullable=False),
        sa.Column("value", sa.String(length=255), nullable=False),
        sa.Column("wildcard", sa.Boolean(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("expires", UTC_DT, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_acme_authzs")),
    )
    op.create_index("ix_acme_authzs_order_id", "acme_authzs", ["order_id"])
    op.create_table(
        "acme_challenges",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("authz_id", sa.String(length=32), nullable=False),
        sa.Column("type", sa.String(length=16), nullable=False),
        sa.Column("token", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("validated_at", UTC_DT, nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_acme_challenges")),
    )
    op.create_index("ix_acme_challenges_authz_id", "acme_challenges", ["authz_id"])
    op.create_table(
        "acme_eab_keys",
        sa.Column("kid", sa.String(length=64), nullable=False),
        sa.Column("endpoint", sa.String(length=64), nullable=False),
        sa.Column("allow", sa.Text(), nullable=True),
        sa.Column("account_id", sa.String(length=32), nullable=True),
        sa.Column("created_at", UTC_DT, nullable=False),
        sa.Column("used_at", UTC_DT, nullable=True),
        sa.PrimaryKeyConstraint("kid", name=op.f("pk_acme_eab_keys")),
    )


def downgrade() -> None:
    op.drop_table("acme_eab_keys")
    op.drop_index("ix_acme_challenges_authz_id", table_name="acme_challenges")
    op.drop_table("acme_challenges")
    op.drop_index("ix_acme_authzs_order_id", table_name="acme_authzs")
    op.drop_table("acme_authzs")
    op.drop_index("ix_acme_orders_account_id", table_name="acme_orders")
    op.drop_table("acme_orders")
    op.drop_table("acme_accounts")
    op.drop_table("acme_used_nonces")
    op.drop_table("acme_secrets")
