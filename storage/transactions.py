"""What every repository shares: one short transaction per call, retried while the database is busy."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

from sqlalchemy import ColumnElement, delete, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.orm import InstrumentedAttribute

from storage.errors import DatabaseUnreachable
from storage.retry import Backoff, exponential_backoff, retry_on_locked

T = TypeVar("T")
Clock = Callable[[], datetime]
Work = Callable[[AsyncSession], Awaitable[T]]
PRUNE_BATCH = 900  # rows deleted per transaction (SQLite holds its one write lock meanwhile), each a bound
# variable: SQLite before 3.32 takes at most 999 in one statement


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

    async def _last_id_before(self, key: InstrumentedAttribute[int], stamp: InstrumentedAttribute[datetime],
                              when: datetime) -> int | None:
        """The highest `key` a row stamped before `when` can have: one below the first row stamped at or after it,
        read in `key` order (ids grow with their stamps), which stops there instead of reading the whole table; the
        table's last row at most (never deleting the newest row, SQLite never hands its id out again). None
        without rows."""

        async def work(session: AsyncSession) -> int | None:
            first = await session.scalar(select(key).where(stamp >= when).order_by(key).limit(1))
            last = await session.scalar(select(key).order_by(key.desc()).limit(1))
            if last is None:
                return None
            return (last if first is None else min(first, last)) - 1

        return await self._run(work)

    async def _delete_old(self, key: InstrumentedAttribute[int], *criteria: ColumnElement[bool],
                          batch: int = PRUNE_BATCH) -> int:
        """Delete the rows matching `criteria`, lowest `key` (an integer primary key) first, `batch` rows per
        transaction, so the writes of others wait at most one batch; the number deleted."""
        table, deleted, after = key.class_, 0, 0
        while True:
            async def work(session: AsyncSession, after: int = after) -> list[int]:
                ids = list((await session.scalars(select(key).where(key > after, *criteria).order_by(key)
                                                  .limit(batch))).all())
                if ids:
                    await session.execute(delete(table).where(key.in_(ids)))
                return ids

            ids = await self._run(work)
            deleted += len(ids)
            if len(ids) < batch:
                return deleted
            after = ids[-1]
