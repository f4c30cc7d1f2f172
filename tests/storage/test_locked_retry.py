"""A transaction that finds SQLite locked, or loses a race on PostgreSQL, is retried with backoff, not lost."""

import sqlite3

import pytest
from sqlalchemy import select, update
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from storage import Repository, create_engine, retry_on_locked
from storage.models import Job


def locked() -> OperationalError:
    return OperationalError("INSERT INTO jobs ...", {}, sqlite3.OperationalError("database is locked"))


class PostgresError(Exception):
    """What a PostgreSQL driver error carries that matters here: its SQLSTATE."""

    def __init__(self, message: str, sqlstate: str) -> None:
        super().__init__(message)
        self.sqlstate = sqlstate


def postgres_error(message: str, sqlstate: str) -> DBAPIError:
    return DBAPIError("UPDATE jobs ...", {}, PostgresError(message, sqlstate))


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


async def test_postgres_serialization_failures_and_deadlocks_are_retried() -> None:
    operation = Flaky(postgres_error("could not serialize access due to concurrent update", "40001"),
                      postgres_error("deadlock detected", "40P01"))
    backoff = RecordedBackoff()
    assert await retry_on_locked(operation, backoff=backoff) == "ok"
    assert (operation.calls, backoff.attempts) == (3, [1, 2])


async def test_other_postgres_errors_are_not_retried_even_if_their_text_says_locked() -> None:
    operation = Flaky(postgres_error('duplicate key "database is locked"', "23505"))
    with pytest.raises(DBAPIError, match="duplicate key"):
        await retry_on_locked(operation, backoff=RecordedBackoff())
    assert operation.calls == 1


async def test_attempts_must_be_positive() -> None:
    with pytest.raises(ValueError, match="attempts must be at least 1, got 0"):
        await retry_on_locked(Flaky(), attempts=0)


@pytest.mark.backends("sqlite")
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


@pytest.mark.backends("postgres")
async def test_a_transaction_that_loses_a_postgres_race_runs_again_and_lands(engine, repo, make_job) -> None:
    job = await make_job(seed=1)
    attempts = 0

    async def bump_seed() -> int:
        """Read the seed, then write seed + 1, in one REPEATABLE READ transaction."""
        nonlocal attempts
        attempts += 1
        async with engine.connect() as connection:
            connection = await connection.execution_options(isolation_level="REPEATABLE READ")
            async with connection.begin():
                seed = (await connection.execute(select(Job.seed).where(Job.id == job.id))).scalar_one()
                if attempts == 1:  # another transaction changes the row after this one's snapshot
                    async with engine.begin() as other:
                        await other.execute(update(Job).where(Job.id == job.id).values(seed=7))
                await connection.execute(update(Job).where(Job.id == job.id).values(seed=seed + 1))
        return seed

    backoff = RecordedBackoff()
    assert await retry_on_locked(bump_seed, backoff=backoff) == 7
    assert (attempts, backoff.attempts) == (2, [1])
    assert (await repo.get_job(job.id)).seed == 8


@pytest.mark.parametrize(("error", "cannot_serve"), [
    (locked(), True),
    (OperationalError("UPDATE", {}, sqlite3.OperationalError("database or disk is full")), True),
    (OperationalError("SELECT", {}, sqlite3.OperationalError("disk I/O error")), True),
    (OperationalError("UPDATE", {}, sqlite3.OperationalError("attempt to write a readonly database")), True),
    (OperationalError("SELECT", {}, sqlite3.OperationalError("no such column: jobs.nope")), False),  # a bug
    (OperationalError("SELECT", {}, sqlite3.OperationalError('near "SELEC": syntax error')), False),
    (OperationalError("SELECT", {}, PostgresError("connection refused", "08006")), True),
    (OperationalError("INSERT", {}, PostgresError("could not extend file: No space left on device", "53100")), True),
    (OperationalError("SELECT", {}, PostgresError("terminating connection due to administrator command", "57P01")),
     True),
    (OperationalError("SELECT", {}, PostgresError('column "nope" does not exist', "42703")), False),
    (OperationalError("SELECT", {}, ConnectionResetError("connection lost")), True),  # no answer: no SQLSTATE
    (ValueError("not the database's"), False),
    (PoolTimeout("QueuePool limit of size 5 overflow 10 reached, connection timed out, timeout 30.00"), True),
    (TimeoutError("not the database's"), False),
])
def test_a_database_that_cannot_serve_now_is_told_from_a_bug_in_the_sql(error, cannot_serve):
    from storage.errors import unavailable

    assert unavailable(error) is cannot_serve
