"""core: indexes for a store of a million certificates

`enroll certs list` and `enroll requests list` order by created_at (optionally filtered
by status and/or CA) with a LIMIT; without an index in that order the whole table was
scanned and sorted (1-14 s with 1,000,000 certificates). (ca, status) becomes
(ca, status, created_at). A partial index over revoked certificates only carries every
column a CRL needs, so a CRL rebuild reads 100,000 entries without a row lookup each.

Revision ID: 0003_core_growth_indexes
Revises: 0001_core
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003_core_growth_indexes"
down_revision: str | Sequence[str] | None = "0001_core"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

REVOKED = "status = 'revoked'"


def upgrade() -> None:
    op.create_index("ix_certificates_ca_status_created_at", "certificates",
                    ["ca", "status", "created_at"])
    op.drop_index("ix_certificates_ca_status", table_name="certificates")
    op.create_index("ix_certificates_status_created_at", "certificates",
                    ["status", "created_at"])
    op.create_index("ix_certificates_ca_created_at", "certificates", ["ca", "created_at"])
    op.create_index("ix_certificates_created_at", "certificates", ["created_at"])
    op.create_index("ix_certificates_revoked", "certificates",
                    ["ca", "not_after", "serial", "revoked_at", "revocation_reason"],
                    sqlite_where=sa.text(REVOKED), postgresql_where=sa.text(REVOKED))
    op.create_index("ix_requests_status_created_at", "requests", ["status", "created_at"])
    op.drop_index("ix_requests_status", table_name="requests")
    op.create_index("ix_requests_created_at", "requests", ["created_at"])


def downgrade() -> None:
    op.create_index("ix_requests_status", "requests", ["status"])
    op.drop_index("ix_requests_created_at", table_name="requests")
    op.drop_index("ix_requests_status_created_at", table_name="requests")
    op.drop_index("ix_certificates_revoked", table_name="certificates")
    op.drop_index("ix_certificates_created_at", table_name="certificates")
    op.drop_index("ix_certificates_ca_created_at", table_name="certificates")
    op.drop_index("ix_certificates_status_created_at", table_name="certificates")
    op.create_index("ix_certificates_ca_status", "certificates", ["ca", "status"])
    op.drop_index("ix_certificates_ca_status_created_at", table_name="certificates")
