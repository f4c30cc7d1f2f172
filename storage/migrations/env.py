"""Alembic environment: migrate the connection `storage.db.migrate` hands in, or `sqlalchemy.url` from the CLI."""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy.engine import Connection

from storage.db import DEFAULT_URL, create_engine
from storage.models import Base

config = context.config
target_metadata = Base.metadata


def run_on_connection(connection: Connection) -> None:
    """Run the pending migrations on an open synchronous connection."""
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",  # SQLite alters tables by copying them
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


async def run_on_url(url: str) -> None:
    """Open an engine for `url` and migrate it (the `alembic upgrade` CLI path)."""
    engine = create_engine(url)
    try:
        async with engine.connect() as connection:
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
