"""A transaction that finds SQLite locked by another writer is retried with backoff, not lost."""

import sqlite3

import pytest
from sqlalchemy.exc import OperationalError

from storage import Repository, create_engine, retry_on_locked


def locked() -> OperationalError:
    return OperationalError("INSERT INTO jobs ...", {}, sqlite3.OperationalError("database is locked"))


class Flaky:
    """An operation that fails with the given errors, then returns "ok"."""

    def __init__(self, *errors: Exception) -> None:
        self.errors = list(errors)
        self.calls = 0

    async def __call__(self) -> str:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return "ok"


class RecordedBackoff:
    """A backoff that records the attempt numbers instead of sleeping, and can run a hook."""

    def __init__(self, hook=None) -> None:
        self.attempts: list[int] = []
        self.hook = hook

    async def __call__(self, attempt: int) -> None:
        self.attempts.append(attempt)
        if self.hook:
            self.hook()


async def test_two_locked_failures_are_retried_then_succeed() -> None:
    operation, backoff = Flaky(locked(), locked()), RecordedBackoff()
    assert await retry_on_locked(operation, backoff=backoff) == "ok"
    assert (operation.calls, backoff.attempts) == (3, [1, 2])


async def test_it_gives_up_after_the_last_attempt_with_the_original_error() -> None:
    operation, backoff = Flaky(*[locked() for _ in range(3)]), RecordedBackoff()
    with pytest.raises(OperationalError, match="database is locked"):
        await retry_on_locked(operation, attempts=3, backoff=backoff)
    assert (operation.calls, backoff.attempts) == (3, [1, 2])


async def test_other_database_errors_are_not_retried() -> None:
    broken = OperationalError("SELECT", {}, sqlite3.OperationalError("no such table: jobs"))
    operation, backoff = Flaky(broken), RecordedBackoff()
    with pytest.raises(OperationalError, match="no such table"):
        await retry_on_locked(operation, backoff=backoff)
    assert (operation.calls, backoff.attempts) == (1, [])


async def test_attempts_must_be_positive() -> None:
    with pytest.raises(ValueError, match="attempts must be at least 1, got 0"):
        await retry_on_locked(Flaky(), attempts=0)


async def test_a_write_blocked_by_another_writer_lands_once_the_lock_is_released(engine, db_url, tmp_path) -> None:
    holder = sqlite3.connect(tmp_path / "videobot.db", isolation_level=None)
    impatient = create_engine(db_url, busy_timeout_ms=0)  # fail at once instead of waiting
    try:
        holder.execute("BEGIN IMMEDIATE")  # another process holds the write lock
        backoff = RecordedBackoff(hook=lambda: holder.execute("ROLLBACK"))
        repo = Repository(impatient, backoff=backoff)
        job = await repo.create_job(user_id=1, user_name="u", channel_id=2, prompt="a cat", params={})
        assert backoff.attempts == [1]
        assert [found.id for found in await repo.list_jobs()] == [job.id]
    finally:
        holder.close()
        await impatient.dispose()
