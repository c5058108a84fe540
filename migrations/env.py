"""Alembic environment: runs against the `Database` handed in by enroll.store.migrate."""

from __future__ import annotations

from alembic import context

from enroll.store.schema import metadata

config = context.config
target_metadata = metadata


def run_migrations_online() -> None:
    # Plugins' tables registered on `metadata` through `enroll_tables` (called by
    # enroll.store.migrate.alembic_config); run from the alembic CLI, load them here.
    if "database" not in config.attributes:
        from enroll.plugin_loader import build_plugin_manager

        build_plugin_manager((), (), ()).hook.enroll_tables()
    db = config.attributes.get("database")
    if db is not None:
        engine = db.engine
    else:
        from enroll.store.db import Database

        engine = Database(config.get_main_option("sqlalchemy.url") or "").engine
    with engine.connect() as connection:
        context.configure(connection=connection, target_metadata=target_metadata,
                          render_as_batch=engine.dialect.name == "sqlite")
        with context.begin_transaction():
            context.run_migrations()
        connection.commit()


run_migrations_online()
