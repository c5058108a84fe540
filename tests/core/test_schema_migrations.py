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
        assert "0001_core" in heads or any(h[:4].isdigit() and h[:4] >= "0002" for h in heads)
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


_RACER = """
import sys, time
from pathlib import Path
from enroll.store import migrate
from enroll.store.db import Database

go = Path(sys.argv[2])
db = Database(sys.argv[1])
migrate.alembic_config(db)  # imports done before the start line
while not go.exists():
    time.sleep(0.005)
migrate.upgrade(db)
db.dispose()
"""


def test_hosts_migrating_a_fresh_database_together_each_wait_their_turn(
        db_url: str, tmp_path: Path) -> None:
    """Several hosts started at once: every upgrade succeeds (no duplicate-table error)
    and the schema is at head once, because `upgrade` holds the migration lock."""
    import subprocess
    import sys
    import time

    from harness import child_env

    go = tmp_path / "go"
    racers = [subprocess.Popen([sys.executable, "-c", _RACER, db_url, str(go)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env=child_env()) for _ in range(3)]
    time.sleep(3)  # every racer has imported alembic and waits for the start line
    go.touch()
    results = [(p.wait(timeout=120), p.stderr.read() if p.stderr else "") for p in racers]
    for p in racers:
        for stream in (p.stdout, p.stderr):
            if stream:
                stream.close()
    assert [code for code, _ in results] == [0, 0, 0], [err for _, err in results]
    db = Database(db_url)
    try:
        assert migrate.current_heads(db) == migrate.expected_heads(db)
        with db.engine.connect() as conn:
            rows = conn.exec_driver_sql("SELECT version_num FROM alembic_version").all()
        assert len(rows) == len(migrate.expected_heads(db))
    finally:
        db.dispose()
