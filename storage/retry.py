"""Retry a short transaction when SQLite reports the database as locked (another writer held it too long)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

from sqlalchemy.exc import OperationalError

log = logging.getLogger(__name__)

T = TypeVar("T")
Backoff = Callable[[int], Awaitable[None]]

# SQLITE_BUSY and SQLITE_LOCKED as the sqlite3 module words them.
_LOCKED_MESSAGES = ("database is locked", "database table is locked")


async def exponential_backoff(attempt: int) -> None:
    """Sleep 50 ms, 100 ms, 200 ms, ... (at most 1 s) after failed attempt number `attempt`."""
    await asyncio.sleep(min(0.05 * 2 ** (attempt - 1), 1.0))


def is_locked_error(error: BaseException) -> bool:
    """True for the OperationalError SQLite raises when another connection holds the write lock."""
    if not isinstance(error, OperationalError):
        return False
    message = str(error.orig).lower()
    return any(text in message for text in _LOCKED_MESSAGES)


async def retry_on_locked(
    operation: Callable[[], Awaitable[T]], *, attempts: int = 5, backoff: Backoff = exponential_backoff
) -> T:
    """Await `operation()`, retrying it up to `attempts` times in all while the database is locked."""
    if attempts < 1:
        raise ValueError(f"attempts must be at least 1, got {attempts}")
    for attempt in range(1, attempts):
        try:
            return await operation()
        except OperationalError as error:
            if not is_locked_error(error):
                raise
            log.warning("database locked (attempt %d of %d), retrying: %s", attempt, attempts, error.orig)
            await backoff(attempt)
    return await operation()
