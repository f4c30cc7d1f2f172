"""Container health check until the bot serves /healthz: the database named by DATABASE_URL answers with its jobs table.

What it proves, honestly: the store the bot keeps its queue in is reachable, readable and migrated (it catches a
missing or unreadable /data volume, a corrupt SQLite file, a stopped or unreachable PostgreSQL). What it cannot
see: a hung event loop, a lost Discord gateway connection or dead GPU workers. When the bot grows its /healthz
endpoint, replace the HEALTHCHECK (Dockerfile and compose.yaml) with an HTTP GET of it and delete this file.

It never writes to the database: SQLite is opened read-only and a missing file is reported, not created. Exit
status 0 healthy, 1 unhealthy with one line on stderr (Docker keeps it in `docker inspect`'s health log).
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import sys
from contextlib import closing
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

DEFAULT_URL = "sqlite+aiosqlite:///videobot.db"  # the bot's own default (bot.settings), relative to its cwd
PROBE = "SELECT 1 FROM jobs LIMIT 1"  # cheap at any table size; fails until the migrations have run


def check_sqlite(path: Path) -> None:
    """Open the file read-only (it must exist) and query the jobs table."""
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist")
    with closing(sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=5)) as database:
        database.execute(PROBE).fetchall()


async def check_server(url: str) -> None:
    """Connect with the bot's own engine settings (postgresql:// → asyncpg) and query the jobs table."""
    from storage import create_engine  # only here: a SQLite check does not need the package

    engine = create_engine(url)
    try:
        async with engine.connect() as connection:
            await connection.execute(text(PROBE))
    finally:
        await engine.dispose()


def check(url: str) -> None:
    """Raise when the database behind `url` cannot serve the bot."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        check_sqlite(Path(parsed.database or ""))
    else:
        asyncio.run(check_server(url))


def main() -> int:
    """Check DATABASE_URL (or the bot's default); 0 healthy, 1 unhealthy."""
    url = os.environ.get("DATABASE_URL", "").strip() or DEFAULT_URL
    try:
        check(url)
    except Exception as error:
        print(f"unhealthy: {_without_password(url)}: {type(error).__name__}: {error}", file=sys.stderr)
        return 1
    return 0


def _without_password(url: str) -> str:
    """The URL with its password masked, for the health log."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "DATABASE_URL (not a database URL)"


if __name__ == "__main__":
    sys.exit(main())
