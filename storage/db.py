"""Async engine setup (SQLite WAL, busy timeout, foreign keys) and programmatic Alembic migrations."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import event
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

log = logging.getLogger(__name__)

DEFAULT_URL = "sqlite+aiosqlite:///videobot.db"
MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"

# Plain driver names people write in settings, mapped to the asyncio drivers SQLAlchemy needs.
_ASYNC_DRIVERS = {"sqlite": "sqlite+aiosqlite", "postgresql": "postgresql+asyncpg"}


def create_engine(url: str = DEFAULT_URL, *, busy_timeout_ms: int = 5000, echo: bool = False) -> AsyncEngine:
    """Create an AsyncEngine; on SQLite every connection gets WAL, a busy timeout and foreign keys."""
    if busy_timeout_ms < 0:
        raise ValueError(f"busy_timeout_ms must be >= 0, got {busy_timeout_ms}")
    parsed = make_url(url)
    parsed = parsed.set(drivername=_ASYNC_DRIVERS.get(parsed.drivername, parsed.drivername))
    engine = create_async_engine(parsed, echo=echo, pool_pre_ping=parsed.get_backend_name() != "sqlite")
    if engine.dialect.name == "sqlite":
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas(busy_timeout_ms))
    log.debug("database engine for %s", parsed.render_as_string(hide_password=True))
    return engine


def shown_url(url: str) -> str:
    """The database URL as logs may show it: the password hidden."""
    return make_url(url).render_as_string(hide_password=True)


def _sqlite_pragmas(busy_timeout_ms: int) -> Any:
    """A connect listener that sets the per-connection SQLite pragmas."""

    def on_connect(dbapi_connection: Any, _connection_record: Any) -> None:
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
            cursor.execute("PRAGMA foreign_keys=ON")
        finally:
            cursor.close()

    return on_connect


def alembic_config() -> Config:
    """An Alembic config pointing at the migrations shipped inside this package (no alembic.ini needed)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR).replace("%", "%%"))
    return config


async def migrate(engine_or_url: AsyncEngine | str, revision: str = "head", *,
                  home_guild_id: int | None = None) -> None:
    """Run `alembic upgrade <revision>` on the engine (or a temporary engine for the URL). `home_guild_id` is the
    server that moderation rows from before servers had their own belong to (migration 0004), when there is one."""
    if isinstance(engine_or_url, str):
        engine = create_engine(engine_or_url)
        try:
            await migrate(engine, revision, home_guild_id=home_guild_id)
        finally:
            await engine.dispose()
        return
    async with engine_or_url.begin() as connection:
        await connection.run_sync(_upgrade, revision, home_guild_id)
    log.info("database schema upgraded to %s", revision)


def _upgrade(connection: Connection, revision: str, home_guild_id: int | None) -> None:
    """Alembic's synchronous upgrade command on a connection we already hold."""
    config = alembic_config()
    config.attributes["connection"] = connection
    config.attributes["home_guild_id"] = home_guild_id
    command.upgrade(config, revision)
