"""Alembic environment: uses the connection handed over by ``storage.migrate`` or $CRM_DATABASE_URL."""

from __future__ import annotations

from alembic import context

from crm_pipelines.storage.engine import make_engine
from crm_pipelines.storage.schema import metadata

target_metadata = metadata


def run_migrations_online() -> None:
    connection = context.config.attributes.get("connection")
    if connection is not None:
        context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()
        return
    engine = make_engine()
    with engine.begin() as connection:
        context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()


run_migrations_online()
