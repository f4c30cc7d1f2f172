"""A moderator's stop of a running job, a block's, or the bot's removal from the job's server, outlives a crash: the
job's row says who asked, so the next start cancels it uncharged and tells its requester who or what stopped it, as the
stop itself would have. The requester's own cancel still counts, as before (its GPU time was spent)."""

import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta
from pathlib import Path

import pytest

from storage import JobState, StopRequester
from tests.bot.conftest import Database, Harness
from tests.bot.helpers import NOW, PROMPTS
from tests.clocks import Clock

MODERATOR = 9  # moderates the requester's server (user 1's jobs are asked in server 600)


@pytest.fixture
async def crashed(database: Database, tmp_path: Path) -> AsyncIterator[Callable[[], Database]]:
    """The database as a crash would leave it now: a copy of the test's, which the first service never writes again."""
    copies: list[Database] = []

    def crash() -> Database:
        copy = tmp_path / f"crashed-{len(copies)}.db"
        source, target = sqlite3.connect(database.url.removeprefix("sqlite+aiosqlite:///")), sqlite3.connect(copy)
        try:
            source.backup(target)  # committed rows, the WAL's too, as the next process would read them
        finally:
            source.close()
            target.close()
        copies.append(Database(copy))
        return copies[-1]

    yield crash
    for copy in copies:
        await copy.close()


async def stopping(make_service: Callable[..., Awaitable[Harness]], stop: Callable[[Harness, int], Awaitable[object]],
                   crashed: Callable[[], Database]) -> tuple[int, Harness, Callable[[], Awaitable[int]]]:
    """A job of user 1 stopped by `stop` while it runs, the process dying before its next step; then a new start on
    what the crash left. The job's id, the new service, and user 1's quota used there today."""
    first = await make_service()
    first.pipeline.hold.clear()
    first.pipeline.deaf_while_held = True  # the step never ends: the stop is asked, never carried out
    running = await first.submit(1, PROMPTS[0], steps=20)
    await first.events.wait("progress", running.job.id)
    await stop(first, running.job.id)
    copy = crashed()
    second = await make_service(repo=copy.repo(clock=Clock(NOW)))
    return running.job.id, second, lambda: copy.moderation().count_usage(1, NOW - timedelta(days=1), guild_id=600)


async def test_a_moderators_stop_asked_before_a_crash_is_not_charged_after_the_restart(crashed, make_service):
    async def moderator_stops(h: Harness, job_id: int) -> object:
        return await h.service.cancel(MODERATOR, job_id, moderates=lambda job: True)

    job_id, after, used = await stopping(make_service, moderator_stops, crashed)

    await after.events.wait("ended", job_id)
    assert await used() == 0  # as if it had been cancelled before it ran: the moderator's doing, not the member's
    assert after.events.of(job_id) == ["cancelled by a moderator"]
    job = await after.repo.get_job(job_id)
    assert (job.state, job.started_at, job.stop_requested_by) == (JobState.CANCELLED, None, StopRequester.MODERATOR)
    assert after.pipeline.steps_run == {}  # never run again


async def test_a_blocks_stop_asked_before_a_crash_is_not_charged_after_the_restart(crashed, make_service):
    async def block(h: Harness, job_id: int) -> object:
        return await h.service.cancel_blocked(1, 600)

    job_id, after, used = await stopping(make_service, block, crashed)

    await after.events.wait("ended", job_id)
    assert await used() == 0
    assert after.events.of(job_id) == ["cancelled by a block"]
    job = await after.repo.get_job(job_id)
    assert (job.state, job.started_at, job.stop_requested_by) == (JobState.CANCELLED, None, StopRequester.BLOCK)


async def test_a_running_job_of_a_server_the_bot_is_removed_from_is_not_charged(make_service, database):
    h = await make_service()
    h.pipeline.hold.clear()
    running = await h.submit(1, PROMPTS[0], steps=20)  # asked in server 600
    await h.events.wait("progress", running.job.id)

    assert await h.service.cancel_server(600) == (0, 1)
    h.pipeline.hold.set()
    await h.events.wait("ended", running.job.id)

    assert await database.moderation().count_usage(1, NOW - timedelta(days=1), guild_id=600) == 0  # not their doing
    assert h.events.of(running.job.id)[-1] == "cancelled by the server's removal"  # its requester is told why
    job = await h.repo.get_job(running.job.id)
    assert (job.state, job.started_at, job.stop_requested_by) == (JobState.CANCELLED, None, StopRequester.SERVER_LEFT)


async def test_a_server_removals_stop_asked_before_a_crash_is_not_charged_after_the_restart(crashed, make_service):
    async def removed(h: Harness, job_id: int) -> object:
        return await h.service.cancel_server(600)

    job_id, after, used = await stopping(make_service, removed, crashed)

    await after.events.wait("ended", job_id)
    assert await used() == 0
    assert after.events.of(job_id) == ["cancelled by the server's removal"]
    job = await after.repo.get_job(job_id)
    assert (job.state, job.started_at, job.stop_requested_by) == (JobState.CANCELLED, None, StopRequester.SERVER_LEFT)
    assert after.pipeline.steps_run == {}


async def test_the_requesters_own_stop_asked_before_a_crash_still_counts_after_the_restart(crashed, make_service):
    async def own_cancel(h: Harness, job_id: int) -> object:
        return await h.service.cancel(1, job_id)

    job_id, after, used = await stopping(make_service, own_cancel, crashed)

    await after.events.wait("ended", job_id)
    assert after.events.of(job_id) == ["cancelled"]
    job = await after.repo.get_job(job_id)
    assert (job.state, job.stop_requested_by) == (JobState.CANCELLED, None) and job.started_at is not None
    assert await used() == 1  # its GPU time was spent at the member's asking
