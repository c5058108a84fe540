"""Running the alembic history shipped inside the wheel, and checking it was run.

Only ``enroll init``, ``enroll serve`` (and `enroll.create_app`) and ``enroll db
upgrade`` migrate; every other command opens the store as it is and `require_head`
refuses a database with no enroll schema or an older one. `upgrade` holds a lock while
alembic runs, so hosts starting together migrate one after the other: on PostgreSQL a
session advisory lock (`MIGRATION_LOCK`, database-wide), on SQLite the database's
writer lock (`enroll.store.writer_lock`).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pluggy
from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.script import ScriptDirectory
from sqlalchemy.engine import make_url

import enroll.migrations
from enroll.errors import NotInitialised
from enroll.store.db import Database

MIGRATION_LOCK = 0x656E726F6C6C  # = 111525040712812 ("enroll"), the pg_advisory_lock key


def plugin_schema(pm: pluggy.PluginManager) -> list[Path]:
    """Let every plugin register its tables (`enroll_tables`) and name its extra
    revision folders (`enroll_migration_dirs`)."""
    pm.hook.enroll_tables()
    return [Path(d) for dirs in pm.hook.enroll_migration_dirs() for d in dirs or ()]


def alembic_config(db: Database, pm: pluggy.PluginManager | None = None) -> AlembicConfig:
    if pm is None:
        from enroll.plugin_loader import build_plugin_manager

        pm = build_plugin_manager((), (), ())
    here = Path(enroll.migrations.__file__).parent
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(here))
    extra = plugin_schema(pm)
    if extra:
        cfg.set_main_option("version_path_separator", "os")
        cfg.set_main_option("version_locations", os.pathsep.join(
            str(p) for p in [here / "versions", *extra]))
    cfg.set_main_option("sqlalchemy.url", db.url.replace("%", "%%"))
    cfg.attributes["database"] = db
    return cfg


@contextmanager
def migration_lock(db: Database) -> Iterator[None]:
    """Exclusive across processes and hosts for as long as the block runs."""
    if db.is_sqlite:
        with db.writer_lock:
            yield
        return
    with db.engine.connect() as conn:
        conn.exec_driver_sql(f"SELECT pg_advisory_lock({MIGRATION_LOCK})")
        conn.commit()
        try:
            yield
        finally:
            conn.exec_driver_sql(f"SELECT pg_advisory_unlock({MIGRATION_LOCK})")
            conn.commit()


def upgrade(db: Database, pm: pluggy.PluginManager | None = None) -> None:
    """Bring the schema to every head (each protocol keeps its own branch), under
    `migration_lock`. Without `pm`, the plugins installed under the ``enroll`` entry
    point contribute tables."""
    cfg = alembic_config(db, pm)
    with migration_lock(db):
        command.upgrade(cfg, "heads")


def current_heads(db: Database) -> set[str]:
    from alembic.runtime.migration import MigrationContext

    with db.engine.connect() as conn:
        return set(MigrationContext.configure(conn).get_current_heads())


def expected_heads(db: Database, pm: pluggy.PluginManager | None = None) -> set[str]:
    """The heads of every history this installation ships (core and plugins)."""
    return set(ScriptDirectory.from_config(alembic_config(db, pm)).get_heads())


def location(url: str) -> str:
    """Where a database URL points, without its password (for messages)."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return parsed.database or ":memory:"
    return parsed.render_as_string(hide_password=True)


def sqlite_file_missing(url: str) -> bool:
    """A SQLite URL whose file does not exist (opening it would create it)."""
    parsed = make_url(url)
    name = parsed.database
    return (parsed.get_backend_name() == "sqlite" and name is not None and name != ""
            and name != ":memory:" and not Path(name).exists())


def not_initialised(url: str) -> NotInitialised:
    return NotInitialised(f"the database at {location(url)} has no enroll schema: run "
                          '"enroll init" or "enroll serve" first')


def require_head(db: Database, pm: pluggy.PluginManager | None = None) -> None:
    """Raise `NotInitialised` unless the schema is at every head. Creates nothing."""
    current = current_heads(db)
    if not current:
        raise not_initialised(db.url)
    wanted = expected_heads(db, pm)
    if current != wanted:
        raise NotInitialised(
            f"the database at {location(db.url)}: schema is at revision "
            f"{', '.join(sorted(current))}, this enroll needs {', '.join(sorted(wanted))}: "
            'run "enroll db upgrade"')
