"""Who asked to stop a running job, when not its requester (`jobs.stop_requested_by`, revision 0007): kept on the row
with its cancel flag on both backends, and named by a downgrade, whose older release would charge the stop."""

from sqlalchemy import inspect
from sqlalchemy.engine import Connection

from storage import JobState, Repository, StopRequester
from tests.storage.test_tenancy_migration import downgrade_to


async def test_a_stop_asked_by_a_moderator_a_block_or_a_servers_removal_is_kept_with_the_cancel_flag(
        repo: Repository, make_job) -> None:
    jobs = [await make_job() for _ in range(4)]
    for job, by in zip(jobs, (StopRequester.MODERATOR, StopRequester.BLOCK, StopRequester.SERVER_LEFT, None),
                       strict=True):
        await repo.mark_running(job.id)
        await repo.request_cancel(job.id, by=by)

    stored = [await repo.get_job(job.id) for job in jobs]  # what a start after a crash reads

    assert [(job.state, job.cancel_requested, job.stop_requested_by) for job in stored] == [
        (JobState.RUNNING, True, StopRequester.MODERATOR), (JobState.RUNNING, True, StopRequester.BLOCK),
        (JobState.RUNNING, True, StopRequester.SERVER_LEFT), (JobState.RUNNING, True, None)]  # None: its requester's
    assert (await repo.get_job((await make_job()).id)).stop_requested_by is None  # nobody asked


async def test_a_downgrade_below_0007_names_the_jobs_a_moderator_is_stopping_and_drops_the_column(
        engine, repo: Repository, make_job, caplog) -> None:
    stopping, stopped = await make_job(), await make_job()
    for job in (stopping, stopped):
        await repo.mark_running(job.id)
        await repo.request_cancel(job.id, by=StopRequester.MODERATOR)
    await repo.mark_cancelled(stopped.id, charged=False)  # done with: nothing for the older release to charge

    def columns(connection: Connection) -> set[str]:
        return {column["name"] for column in inspect(connection).get_columns("jobs")}

    async with engine.begin() as connection:
        await connection.run_sync(downgrade_to, "0006")
        assert "stop_requested_by" not in await connection.run_sync(columns)

    assert ("the older release will charge the requesters of the jobs being stopped by a moderator, a block or the "
            f"bot's removal from their server, if it cancels them at its start (1: jobs {stopping.id})") in caplog.text
