"""The alembic history matches the declared schema, on SQLite and PostgreSQL."""

from __future__ import annotations

import importlib
from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

from enroll.store import migrate
from enroll.store.db import Database
from enroll.store.schema import metadata

PROTOCOL_STORES = ("enroll.protocols.scep.store", "enroll.protocols.est.store",
                   "enroll.protocols.acme.store")


def _import_protocol_tables() -> list[str]:
    """Protocol tables register on the shared metadata when their module is imported;
    a protocol whose store does not exist yet is skipped."""
    loaded = []
    for name in PROTOCOL_STORES:
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
            continue
        loaded.append(name)
    return loaded


def test_upgrade_heads_leaves_no_difference_from_the_metadata(db_url: str) -> None:
    _import_protocol_tables()
    db = Database(db_url)
    try:
        migrate.upgrade(db)
        migrate.upgrade(db)  # idempotent
        with db.engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), metadata)
            tables = set(inspect(conn).get_table_names())
        assert diff == []
        assert {"cas", "requests", "certificates", "audit_events", "crls"} <= tables
        heads = migrate.current_heads(db)
        assert "0001_core" in heads or any(h.startswith("0002_") for h in heads)
    finally:
        db.dispose()


def test_each_protocol_migration_is_its_own_branch_off_the_core() -> None:
    from alembic.script import ScriptDirectory

    from enroll.store.migrate import alembic_config

    db = Database("sqlite://")
    try:
        scripts = ScriptDirectory.from_config(alembic_config(db))
    finally:
        db.dispose()
    revisions = {r.revision: r for r in scripts.walk_revisions()}
    assert revisions["0001_core"].down_revision is None
    for rev, script in revisions.items():
        if rev == "0001_core":
            continue
        protocol = rev.split("_", 1)[1]
        if not rev.startswith("0002_"):
            continue
        assert script.down_revision == "0001_core", rev
        assert script.branch_labels == {protocol}, rev


def test_migrations_ship_inside_the_package() -> None:
    import enroll.migrations

    versions = Path(enroll.migrations.__file__).parent / "versions"
    assert (versions / "0001_core.py").is_file()
