"""Retry a short transaction the database refused only because of a concurrent one (SQLite locked, Postgres races).

SQLite reports another writer holding the lock too long as "database is locked"; PostgreSQL reports a transaction
that lost a race as a serialization failure or a deadlock and expects the client to run it again. Either way the
whole transaction is run again after a short backoff.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

from sqlalchemy.exc import DBAPIError

from storage.errors import sqlstate

log = logging.getLogger(__name__)

T = TypeVar("T")
Backoff = Callable[[int], Awaitable[None]]

# SQLITE_BUSY and SQLITE_LOCKED as the sqlite3 module words them.
_LOCKED_MESSAGES = ("database is locked", "database table is locked")
# PostgreSQL's SQLSTATEs for "run the transaction again": serialization_failure, deadlock_detected.
_RETRY_SQLSTATES = frozenset({"40001", "40P01"})


async def exponential_backoff(attempt: int) -> None:
    """Sleep 50 ms, 100 ms, 200 ms, ... (at most 1 s) after failed attempt number `attempt`."""
    await asyncio.sleep(min(0.05 * 2 ** (attempt - 1), 1.0))


def is_locked_error(error: BaseException) -> bool:
    """True when only a concurrent transaction made this one fail: SQLite locked, Postgres serialization/deadlock."""
    if not isinstance(error, DBAPIError):
        return False
    code = sqlstate(error)
    if code is not None:
        return code in _RETRY_SQLSTATES
    message = str(error.orig).lower()
    return any(text in message for text in _LOCKED_MESSAGES)


async def retry_on_locked(
    operation: Callable[[], Awaitable[T]], *, attempts: int = 5, backoff: Backoff = exponential_backoff
) -> T:
    """Await `operation()`, retrying it up to `attempts` times in all while `is_locked_error` says so."""
    if attempts < 1:
        raise ValueError(f"attempts must be at least 1, got {attempts}")
    for attempt in range(1, attempts):
        try:
            return await operation()
        except DBAPIError as error:
            if not is_locked_error(error):
                raise
            log.warning("database busy (attempt %d of %d), retrying: %s", attempt, attempts, error.orig)
            await backoff(attempt)
    return await operation()
