"""Async engine setup (SQLite WAL and its size limit, busy timeout, foreign keys), the first connection's check, and
programmatic Alembic migrations."""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import secrets
import socket
from collections.abc import AsyncIterator
from contextlib import ExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import event, text
from sqlalchemy.engine import URL, Connection, make_url
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from storage import sqlite_file, urls
from storage.errors import (
    DatabaseInUse,
    DatabaseRefused,
    DatabaseUnreachable,
    DriverMissing,
    FileHeld,
    SchemaTooNew,
    sqlstate,
)
from storage.locks import hold_file

log = logging.getLogger(__name__)

DEFAULT_URL = "sqlite+aiosqlite:///videobot.db"
MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
LOCK_KEY = 0x76696465_6F626F74  # PostgreSQL advisory lock key of the bot's database ("videobot")
# SQLite's -wal file, cut back to this size each time a checkpoint resets it: commits while a read stays open (a
# long scan of a big jobs log) grow it past the ≈4 MB its checkpoints keep it to (1,500 requests: 41 MB), and SQLite
# leaves a WAL file at its largest size until the last connection closes (for a bot up for months, never)
WAL_SIZE_LIMIT_BYTES = 16 * 2**20
CONNECT_TIMEOUT_S = 10.0  # one connection attempt; a server that takes longer to answer counts as unreachable
ENDED_POLL_S = 0.1  # how often a lock a terminated backend holds is tried again, for at most CONNECT_TIMEOUT_S

# Plain driver names people write in settings, mapped to the asyncio drivers SQLAlchemy needs.
_ASYNC_DRIVERS = {backend: f"{backend}+{driver}" for backend, driver in urls.DRIVERS.items()}
# PostgreSQL's SQLSTATEs of a server that cannot take this connection yet: cannot_connect_now (starting up or
# shutting down), too_many_connections. Any other answer at connect time (auth, missing database) is final.
_NOT_YET_SQLSTATES = frozenset({"57P03", "53300"})


def create_engine(url: str = DEFAULT_URL, *, busy_timeout_ms: int = 5000, echo: bool = False) -> AsyncEngine:
    """Create an AsyncEngine; on SQLite every connection gets WAL (cut back to WAL_SIZE_LIMIT_BYTES), a busy timeout
    and foreign keys."""
    if busy_timeout_ms < 0:
        raise ValueError(f"busy_timeout_ms must be >= 0, got {busy_timeout_ms}")
    parsed = _async_url(url)
    _import_driver(parsed)
    engine = create_async_engine(parsed, echo=echo, pool_pre_ping=parsed.get_backend_name() != "sqlite")
    if engine.dialect.name == "sqlite":
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas(busy_timeout_ms))
    log.debug("database engine for %s", parsed.render_as_string(hide_password=True))
    return engine


def check_driver(url: str) -> None:
    """Import the asyncio driver the database of `url` (a URL storage.urls reads) runs on, as create_engine will:
    DriverMissing, one line naming it and how to install it, for a driver that is not installed or cannot load."""
    _import_driver(_async_url(url))


def _async_url(url: str) -> URL:
    """`url` as SQLAlchemy reads it, with the asyncio driver of a plain backend name (`postgresql://`)."""
    parsed = make_url(url)
    return parsed.set(drivername=_ASYNC_DRIVERS.get(parsed.drivername, parsed.drivername))


def _import_driver(url: URL) -> None:
    """The dialect's driver imported (SQLAlchemy imports it the same way when it makes the engine)."""
    try:
        url.get_dialect().import_dbapi()
    except ImportError as error:
        raise DriverMissing(url.get_driver_name(), url.get_backend_name(), str(error) or type(error).__name__) from None


async def check_connection(engine: AsyncEngine, timeout_s: float = CONNECT_TIMEOUT_S) -> None:
    """Open one connection and run SELECT 1 within `timeout_s`: DatabaseUnreachable when the server could not be
    reached (worth another try), DatabaseRefused when it answered no (a wrong password, a missing database)."""
    try:
        async with asyncio.timeout(timeout_s):
            async with engine.connect() as connection:
                await connection.execute(text("SELECT 1"))
    except TimeoutError:
        raise DatabaseUnreachable(f"no answer within {timeout_s:g} s") from None
    except OSError as error:
        raise DatabaseUnreachable(_network_reason(error)) from None
    except DBAPIError as error:
        said = str(error.orig).strip().splitlines()[0] if str(error.orig).strip() else type(error.orig).__name__
        if sqlstate(error) in _NOT_YET_SQLSTATES:
            raise DatabaseUnreachable(said) from None
        raise DatabaseRefused(said) from None


def _network_reason(error: OSError) -> str:
    """A few words for a failed connect: refused, a name that does not resolve, or the system's own words."""
    if isinstance(error, socket.gaierror):
        return f"the host name does not resolve ({error.strerror or error})"
    if isinstance(error, ConnectionRefusedError) or error.errno == errno.ECONNREFUSED:
        return "connection refused (nothing listens there)"
    return error.strerror or str(error) or type(error).__name__


class Hold:
    """This process's hold on its database, from `held_alone`. On PostgreSQL the advisory lock lives as long as the
    session that took it: `check()` finds a session a server restart or a network cut ended, and takes the lock
    again on a new one before another bot can (or says that one did). Each lock session is named (application_name)
    for this hold, so a session of its own that the server still keeps after the network cut it off is told from
    another bot's, and ended."""

    def __init__(self, engine: AsyncEngine, *, locks: bool = False) -> None:
        self._engine, self._locks = engine, locks  # locks False: SQLite's file lock, held by the process itself
        self._name = f"videobot {socket.gethostname()} pid {os.getpid()} {secrets.token_hex(4)}"
        self._connection: AsyncConnection | None = None

    async def take(self) -> None:
        """Take the advisory lock on a session of its own (PostgreSQL), or raise DatabaseInUse."""
        self._connection = await _locked_connection(self._engine, self._name)

    async def check(self) -> bool:
        """True when the hold is as it was; False when its session had ended and the lock is taken again. Raises
        DatabaseInUse when another process took it meanwhile, and the database's own errors when it cannot be
        reached now (the next check tries again: the hold has no session until one takes the lock)."""
        if not self._locks:
            return True
        if self._connection is not None:
            try:
                await asyncio.wait_for(self._connection.execute(text("SELECT 1")), CONNECT_TIMEOUT_S)
                return True
            except (SQLAlchemyError, OSError, TimeoutError) as error:  # any failed ping: the session is unusable
                said = (_first_line(error) if isinstance(error, DBAPIError) else
                        f"no answer in {CONNECT_TIMEOUT_S:g} s" if isinstance(error, TimeoutError) else str(error))
                log.warning("the database lock's session ended (%s); taking the lock again on a new one", said)
                connection, self._connection = self._connection, None
                await _close_quietly(connection)
        await self.take()
        return False

    async def release(self) -> None:
        """Let the lock go (the process's end would too)."""
        connection, self._connection = self._connection, None
        if connection is None:
            return
        try:
            await connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": LOCK_KEY})
        except DBAPIError as error:  # the session is gone (a server restart): so is its lock
            log.warning("the database lock's session ended before the bot did: %s", _first_line(error))
        await _close_quietly(connection)


@asynccontextmanager
async def held_alone(engine: AsyncEngine) -> AsyncIterator[Hold]:
    """Hold the database for this process alone while the block runs, or raise DatabaseInUse at once: an exclusive
    lock on `<file>.lock` beside a SQLite file, a session advisory lock on PostgreSQL (its connection stays open
    meanwhile; `Hold.check` renews a lost one). The system frees either when the process ends, however it ends: no
    stale lock is left behind. The lock file is beside the file a link names, where SQLite keeps its journals too: a
    second bot that reaches the database through a link to it is refused as well."""
    url = urls.parse(engine.url.render_as_string(hide_password=False))
    if url.sqlite_file is not None:
        with ExitStack() as held:
            try:
                held.enter_context(hold_file(sqlite_file.lock_file(url.sqlite_file)))
            except FileHeld as error:
                raise DatabaseInUse(f"another process (pid {error.holder}) holds this database as its bot's "
                                    f"({error.path} is locked)") from None
            yield Hold(engine)
        return
    if engine.dialect.name != "postgresql":
        yield Hold(engine)  # an in-memory SQLite database is this process's alone anyway
        return
    hold = Hold(engine, locks=True)
    await hold.take()
    try:
        yield hold
    finally:
        await hold.release()


async def _locked_connection(engine: AsyncEngine, name: str) -> AsyncConnection:
    """A connection named `name` holding the bot's advisory lock, or DatabaseInUse (the connection closed). A holder
    of the same name is this hold's own old session, which the server kept after the network lost it: it is ended,
    and the lock taken."""
    connection = await engine.connect()
    try:
        # autocommit: a session left idle in a transaction for the bot's life would hold back VACUUM on every table
        # (and a server's idle_in_transaction_session_timeout would end it, and the lock with it)
        await connection.execution_options(isolation_level="AUTOCOMMIT")
        await connection.execute(text("SELECT set_config('application_name', :name, false)"), {"name": name})
        if await _try_lock(connection):
            return connection
        holder = await connection.scalar(text(
            "SELECT a.pid FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid WHERE l.locktype = 'advisory' "
            "AND l.granted AND a.application_name = :name AND a.pid <> pg_backend_pid()"), {"name": name})
        if holder is not None:
            log.warning("the database lock is held by this bot's own earlier session (backend %d), which the server "
                        "still keeps; ending it", holder)
            await connection.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": holder})
            for _ in range(int(CONNECT_TIMEOUT_S / ENDED_POLL_S)):  # the lock goes when that backend has ended
                if await _try_lock(connection):
                    return connection
                await asyncio.sleep(ENDED_POLL_S)
        raise DatabaseInUse("another process holds this database as its bot's (a PostgreSQL advisory lock, "
                            f"key {LOCK_KEY}: pg_locks shows its backend's pid)")
    except BaseException:
        await _close_quietly(connection)
        raise


async def _try_lock(connection: AsyncConnection) -> bool:
    return bool((await connection.execute(text("SELECT pg_try_advisory_lock(:key)"), {"key": LOCK_KEY})).scalar())


async def _close_quietly(connection: AsyncConnection) -> None:
    """Close a connection whose session may be gone already."""
    try:
        await connection.close()
    except DBAPIError as error:
        log.debug("closing a lost connection: %s", _first_line(error))


def _first_line(error: DBAPIError) -> str:
    """The database's own first line of an error."""
    return str(error.orig).splitlines()[0] if str(error.orig) else type(error.orig).__name__


def _sqlite_pragmas(busy_timeout_ms: int) -> Any:
    """A connect listener that sets the per-connection SQLite pragmas."""

    def on_connect(dbapi_connection: Any, _connection_record: Any) -> None:
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute(f"PRAGMA journal_size_limit={WAL_SIZE_LIMIT_BYTES}")
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
    _said("upgraded", *await _run(engine_or_url, command.upgrade, revision, home_guild_id))


async def downgrade(engine_or_url: AsyncEngine | str, revision: str) -> None:
    """Run `alembic downgrade <revision>` on the engine (or a temporary engine for the URL), in one transaction as
    `migrate` does: back to an older schema, to run an older version of the bot on it (`python -m storage`)."""
    _said("downgraded", *await _run(engine_or_url, command.downgrade, revision, None))


def _said(done: str, before: str | None, after: str | None) -> None:
    """One INFO line when the schema changed revision (each start migrates: most find nothing to do)."""
    if before == after:
        log.debug("database schema at revision %s already", after)
    else:
        log.info("database schema %s from revision %s to %s", done, before or "none", after or "none")


async def current_revision(engine: AsyncEngine) -> str | None:
    """The revision the database's schema is at; None for a database no migration has run on."""
    async with engine.connect() as connection:
        return await connection.run_sync(_revision_of)


def _revision_of(connection: Connection) -> str | None:
    """Alembic's record of the schema's revision on a connection (None: no migration has run)."""
    return MigrationContext.configure(connection, opts={"transactional_ddl": True}).get_current_revision()


async def _run(engine_or_url: AsyncEngine | str, alembic_command: Any, revision: str,
               home_guild_id: int | None) -> tuple[str | None, str | None]:
    """An Alembic command (upgrade or downgrade) in one transaction on the engine, or on a temporary one for a URL;
    the schema's revisions before and after it."""
    if isinstance(engine_or_url, str):
        engine = create_engine(engine_or_url)
        try:
            return await _run(engine, alembic_command, revision, home_guild_id)
        finally:
            await engine.dispose()
    async with engine_or_url.begin() as connection:
        return await connection.run_sync(_alembic, alembic_command, revision, home_guild_id)


def _alembic(connection: Connection, alembic_command: Any, revision: str,
             home_guild_id: int | None) -> tuple[str | None, str | None]:
    """Alembic's synchronous command on a connection we already hold, and the revisions before and after it;
    SchemaTooNew for a database a newer version of this code migrated (Alembic would fail with a traceback on the
    revision it cannot find)."""
    config = alembic_config()
    script = ScriptDirectory.from_config(config)
    current = _revision_of(connection)
    if current is not None and current not in {known.revision for known in script.walk_revisions()}:
        raise SchemaTooNew(current, script.get_current_head() or "none")
    config.attributes["connection"] = connection
    config.attributes["home_guild_id"] = home_guild_id
    alembic_command(config, revision)
    return current, _revision_of(connection)
