"""Alembic history for enroll (core tables and each protocol's own tables)."""
