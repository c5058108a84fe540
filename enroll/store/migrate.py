"""Running the alembic history shipped inside the wheel (``enroll db upgrade``)."""

from __future__ import annotations

import os
from pathlib import Path

import pluggy
from alembic import command
from alembic.config import Config as AlembicConfig

import enroll.migrations
from enroll.store.db import Database


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


def upgrade(db: Database, pm: pluggy.PluginManager | None = None) -> None:
    """Bring the schema to every head (each protocol keeps its own branch). Without
    `pm`, the plugins installed under the ``enroll`` entry point contribute tables."""
    command.upgrade(alembic_config(db, pm), "heads")


def current_heads(db: Database) -> set[str]:
    from alembic.runtime.migration import MigrationContext

    with db.engine.connect() as conn:
        return set(MigrationContext.configure(conn).get_current_heads())
