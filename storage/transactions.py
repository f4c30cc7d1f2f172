"""What every repository shares: one short transaction per call, retried while the database is busy."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from storage.errors import DatabaseUnreachable
from storage.retry import Backoff, exponential_backoff, retry_on_locked

T = TypeVar("T")
Clock = Callable[[], datetime]
Work = Callable[[AsyncSession], Awaitable[T]]


def utc_now() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC)


class Transactional:
    """Base of the repositories: sessions on one engine, an injectable clock, busy-retry of whole transactions."""

    def __init__(
        self, engine: AsyncEngine, *, clock: Clock = utc_now, backoff: Backoff = exponential_backoff, attempts: int = 5
    ) -> None:
        self._sessions = async_sessionmaker(engine, expire_on_commit=False)
        self._dialect = engine.dialect.name
        database = engine.url.database if self._dialect == "sqlite" else None
        self._file = Path(database).absolute() if database and database != ":memory:" else None  # a SQLite file
        self._clock = clock
        self._backoff = backoff
        self._attempts = attempts

    async def check_file(self) -> None:
        """DatabaseUnreachable when the SQLite file is gone from where it was opened (deleted, or its volume
        unmounted): its open connections would still answer, writing into a file no restart finds."""
        if self._file is not None and not await asyncio.to_thread(self._file.exists):
            raise DatabaseUnreachable(f"its file {self._file} is gone (deleted, or its volume unmounted)")

    async def _run(self, work: Work[T]) -> T:
        """Run `work` in one transaction, retrying it while SQLite is locked or Postgres reports a lost race."""

        async def attempt() -> T:
            async with self._sessions.begin() as session:
                return await work(session)

        return await retry_on_locked(attempt, attempts=self._attempts, backoff=self._backoff)

    def _now(self, now: datetime | None) -> datetime:
        """`now` or the clock's time, refusing naive datetimes."""
        now = self._clock() if now is None else now
        if now.tzinfo is None:
            raise ValueError(f"now must be timezone-aware, got naive {now.isoformat()}")
        return now
