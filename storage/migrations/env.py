"""Alembic environment: migrate the connection `storage.db.migrate` hands in, or `sqlalchemy.url` from the CLI."""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy.engine import Connection

import storage.moderation_models  # noqa: F401  (its tables join Base.metadata, which autogenerate compares)
from storage.db import DEFAULT_URL, create_engine
from storage.models import Base

config = context.config
target_metadata = Base.metadata


def run_on_connection(connection: Connection) -> None:
    """Run the pending migrations on an open synchronous connection, all in one transaction: a migration that fails
    or is killed half-way leaves the database as it was before it (PostgreSQL's DDL is transactional anyway)."""
    sqlite = connection.dialect.name == "sqlite"
    # Python's sqlite3 opens transactions only before INSERT/UPDATE/DELETE, so each CREATE, ALTER and DROP would
    # be saved as it ran (and a migration stopped half-way would fail at every later start). SQLite's DDL is
    # transactional once a transaction is open: open it before the first statement; the connection's commit or
    # rollback ends it (a caller's open transaction, as in a test's downgrade after its INSERTs, is used as is).
    if sqlite and not getattr(connection.connection.driver_connection, "in_transaction", False):
        connection.exec_driver_sql("BEGIN")
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=sqlite,  # SQLite alters tables by copying them
        transactional_ddl=True,
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


async def run_on_url(url: str) -> None:
    """Open an engine for `url` and migrate it (the `alembic upgrade` CLI path)."""
    engine = create_engine(url)
    try:
        async with engine.begin() as connection:  # committed at the end, rolled back on an error
            await connection.run_sync(run_on_connection)
    finally:
        await engine.dispose()


def run_offline(url: str) -> None:
    """Emit the migration SQL instead of running it (`alembic upgrade --sql`)."""
    context.configure(url=url, target_metadata=target_metadata, literal_binds=True, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


_url = config.get_main_option("sqlalchemy.url") or DEFAULT_URL
if context.is_offline_mode():
    run_offline(_url)
elif (_connection := config.attributes.get("connection")) is not None:
    run_on_connection(_connection)
else:
    asyncio.run(run_on_url(_url))
