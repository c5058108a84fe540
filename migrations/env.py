"""Alembic environment: runs against the `Database` handed in by enroll.store.migrate."""

from __future__ import annotations

from alembic import context

from enroll.store.schema import metadata

config = context.config
target_metadata = metadata


def _import_protocol_tables() -> None:
    """Make protocol tables visible to autogenerate (they register on `metadata`)."""
    import importlib

    for module in ("enroll.protocols.scep.store", "enroll.protocols.est.store",
                   "enroll.protocols.acme.store"):
        try:
            importlib.import_module(module)
        except ModuleNotFoundError:
            pass


def run_migrations_online() -> None:
    _import_protocol_tables()
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
