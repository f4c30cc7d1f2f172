"""Domain errors raised by the storage layer, free of SQLAlchemy types so callers can catch them plainly.

    StorageError
    ├── JobNotFoundError        no job has this id
    ├── InvalidTransitionError  a job cannot move to that state from the one it is in
    ├── DuplicateEntryError     a server's denylist (or the shared one) already has that pattern
    ├── DriverMissing           the database's asyncio driver cannot be imported (before any engine is made)
    ├── FileHeld                another process holds a lock file (storage.locks)
    └── ShowcaseError           a nomination or decision that cannot be met; `message` is for the user

`sqlstate` reads the PostgreSQL error code a driver error carries: storage.db and storage.retry tell the
server's answers apart by it.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from pathlib import Path

from storage.records import DenyKind, JobState


class StorageError(Exception):
    """Base class for storage domain errors."""


class JobNotFoundError(StorageError, LookupError):
    """No job has this id."""

    def __init__(self, job_id: int) -> None:
        super().__init__(f"job {job_id} does not exist")
        self.job_id = job_id


class InvalidTransitionError(StorageError):
    """A job was asked to move to a state its current state does not allow."""

    def __init__(self, job_id: int, current: JobState, target: str, allowed: Iterable[JobState]) -> None:
        self.job_id = job_id
        self.current = current
        self.target = target
        self.allowed = frozenset(allowed)
        allowed_text = ", ".join(sorted(self.allowed))
        super().__init__(f"job {job_id} cannot go from {current} to {target}; allowed only from: {allowed_text}")


class DuplicateEntryError(StorageError):
    """A server's denylist (or the shared one) already holds this pattern with this kind."""

    def __init__(self, pattern: str, kind: DenyKind, guild_id: int = 0) -> None:
        super().__init__(f"the denylist already has a {kind} entry for {pattern!r}")
        self.pattern = pattern
        self.kind = kind
        self.guild_id = guild_id


class InvalidDatabaseURL(StorageError, ValueError):
    """A DATABASE_URL the storage layer cannot use; the message says what is wrong and what would be right."""


class DatabaseUnreachable(StorageError):
    """The database server could not be reached (refused, unresolvable, silent, starting up): worth trying again.
    `reason` is a few words on what happened."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class DatabaseRefused(StorageError):
    """The database answered, and said no (a wrong password, a database that does not exist, a file SQLite cannot
    open): trying again will not help. `reason` is what it said."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class FileHeld(StorageError):
    """Another process holds a lock file (`storage.locks.hold_file`): `path` is the file, `holder` the process id it
    wrote there ("unknown" when it wrote none)."""

    def __init__(self, path: Path, holder: str) -> None:
        super().__init__(f"another process (pid {holder}) holds {path}")
        self.path, self.holder = path, holder


class DatabaseInUse(StorageError):
    """Another process holds the database as its bot's (`storage.db.held_alone`): two bots on one database would
    each run the other's queued jobs, and deliver them twice."""


class SchemaTooNew(StorageError):
    """The database's schema is at a revision this code does not ship: a newer version migrated it. Migrating would
    fail, and running on it could lose data."""

    def __init__(self, revision: str, newest: str) -> None:
        super().__init__(f"the database's schema is at revision {revision}, newer than this code's newest, {newest}")
        self.revision, self.newest = revision, newest


class DriverMissing(StorageError):
    """The asyncio driver of DATABASE_URL's database cannot be imported (not installed, or a broken install): no
    engine can be made. The message names it and how to install it."""

    def __init__(self, driver: str, backend: str, reason: str) -> None:
        super().__init__(f"{backend} is reached through the {driver} driver, which cannot be imported here ({reason}); "
                         f"install it into this Python: {sys.executable} -m pip install {driver}")
        self.driver, self.backend, self.reason = driver, backend, reason


class UsageError(StorageError):
    """A value `python -m storage` cannot use; the message says which and what would be right (exit status 2)."""


class ShowcaseError(StorageError):
    """A showcase request that cannot be met; `code` is for logs and tests, `message` for the user."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def sqlstate(error: BaseException) -> str | None:
    """The PostgreSQL SQLSTATE of a driver error SQLAlchemy wrapped (a DBAPIError's `orig`: asyncpg names it
    `sqlstate`, psycopg `pgcode`), or None: SQLite, or no answer from a server."""
    orig = getattr(error, "orig", None)
    return getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)


def said(error: BaseException) -> str:
    """The database's own first line of an error (the driver's error a DBAPIError wraps, `orig`), else the error's;
    its type's name when either has no words."""
    orig = getattr(error, "orig", None) or error
    text = str(orig).strip()
    return text.splitlines()[0] if text else type(orig).__name__


# SQLite's words for a database that cannot serve now, as against a bug in the SQL (no such column, a syntax error:
# OperationalErrors too): locked past the retries, its disk failing or full, its file gone or read-only
SQLITE_OUT_OF_SERVICE = ("database is locked", "database table is locked", "disk i/o error", "database or disk is full",
                         "unable to open database file", "readonly database")
# PostgreSQL's SQLSTATE classes for the same: connection exception, insufficient resources (a full disk, too many
# connections), operator intervention (a shutdown); and the codes storage.retry runs again (serialization, deadlock)
POSTGRES_OUT_OF_SERVICE = ("08", "53", "57", "40001", "40P01")


def unavailable(error: BaseException) -> bool:
    """Whether `error` says the database cannot serve right now — locked past the retries, its disk full or failing,
    its file gone, its server down or the connection lost, no connection free in the pool's time — rather than a bug:
    DatabaseUnreachable, SQLAlchemy's pool TimeoutError, or its OperationalError or InterfaceError (told by their
    names: this module imports no SQLAlchemy) whose SQLite message (SQLITE_OUT_OF_SERVICE) or PostgreSQL SQLSTATE
    (POSTGRES_OUT_OF_SERVICE; none: no answer from the server) says so. SQLite's "no such column" or a syntax error
    is an OperationalError too, and a bug."""
    if isinstance(error, DatabaseUnreachable):
        return True
    if any(cls.__name__ == "TimeoutError" and cls.__module__.startswith("sqlalchemy") for cls in type(error).__mro__):
        return True  # the connection pool had none free in its timeout: a burst of work, or the server slow to answer
    if not any(cls.__name__ in ("OperationalError", "InterfaceError") and cls.__module__.startswith("sqlalchemy")
               for cls in type(error).__mro__):
        return False
    orig = getattr(error, "orig", None)
    if type(orig).__module__ == "sqlite3":
        return any(words in str(orig).lower() for words in SQLITE_OUT_OF_SERVICE)
    code = sqlstate(error)
    return code is None or code.startswith(POSTGRES_OUT_OF_SERVICE)
