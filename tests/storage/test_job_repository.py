"""The jobs usage log: lifecycle, refusals, guarded transitions, queue rebuild and restart recovery."""

import asyncio
from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from storage import (
    MAX_JOB_ID,
    Delivery,
    InvalidTransitionError,
    JobNotFoundError,
    JobState,
    Repository,
    ShowcaseRepository,
    create_engine,
)
from tests.storage.conftest import START


async def test_a_job_goes_from_queued_to_running_to_done_with_its_timings(repo, make_job, clock, job_params) -> None:
    job = await make_job(user_id=42, negative_prompt="blurry", interaction_token="tok", application_id=7)
    assert (job.state, job.attempts, job.created_at, job.started_at) == (JobState.QUEUED, 0, clock.now, None)

    running = await repo.mark_running(job.id, now=clock.advance(12.5))
    assert running.state is JobState.RUNNING
    assert (running.started_at, running.queue_wait_s, running.attempts) == (clock.now, 12.5, 1)

    done = await repo.mark_done(job.id, seed=1234, gpu_s=3.25, output_bytes=512_000, result_message_id=99)
    assert done.state is JobState.DONE
    assert (done.seed, done.gpu_s, done.output_bytes, done.result_message_id) == (1234, 3.25, 512_000, 99)
    assert done.finished_at == clock.now
    assert await repo.get_job(job.id) == done
    assert (done.negative_prompt, done.params, done.interaction_token) == ("blurry", job_params, "tok")
    assert done.application_id == 7


async def test_job_ids_count_up_from_one(make_job) -> None:
    assert [(await make_job()).id for _ in range(3)] == [1, 2, 3]


async def test_a_refused_request_is_logged_finished_and_not_active(repo, make_job, clock) -> None:
    refused = await make_job(user_id=5, refusal_reason="denylist:sexual")
    assert (refused.state, refused.refusal_reason) == (JobState.REFUSED, "denylist:sexual")
    assert refused.finished_at == refused.created_at == clock.now
    assert not refused.state.is_active
    assert await repo.list_jobs([JobState.QUEUED, JobState.RUNNING]) == []
    with pytest.raises(InvalidTransitionError):
        await repo.mark_running(refused.id)


async def test_mark_done_on_a_queued_job_names_the_job_and_states(repo, make_job) -> None:
    job = await make_job()
    with pytest.raises(InvalidTransitionError, match=rf"job {job.id} cannot go from queued to done.*running") as info:
        await repo.mark_done(job.id, seed=1, gpu_s=1.0, output_bytes=1)
    assert (info.value.job_id, info.value.current, info.value.allowed) == (job.id, "queued", {JobState.RUNNING})
    assert (await repo.get_job(job.id)).state is JobState.QUEUED


@pytest.mark.parametrize("finish", ["done", "failed", "cancelled"])
async def test_finished_jobs_cannot_be_restarted_cancelled_or_requeued(repo, make_job, finish) -> None:
    job = await make_job()
    await repo.mark_running(job.id)
    if finish == "done":
        await repo.mark_done(job.id, seed=1, gpu_s=1.0, output_bytes=1)
    elif finish == "failed":
        await repo.mark_failed(job.id, "CUDA out of memory")
    else:
        await repo.mark_cancelled(job.id)
    for change in (repo.mark_running, repo.requeue, repo.request_cancel, repo.mark_cancelled):
        with pytest.raises(InvalidTransitionError, match=f"from {finish}"):
            await change(job.id)


async def test_a_missing_job_is_none_or_not_found(repo) -> None:
    assert await repo.get_job(404) is None
    with pytest.raises(JobNotFoundError, match="job 404 does not exist"):
        await repo.mark_running(404)
    with pytest.raises(JobNotFoundError):
        await repo.set_status_message(404, 1)


async def test_failure_keeps_the_error_text(repo, make_job, clock) -> None:
    job = await make_job()
    await repo.mark_running(job.id)
    failed = await repo.mark_failed(job.id, "decoder crashed", now=clock.advance(2))
    assert (failed.state, failed.error, failed.finished_at) == (JobState.FAILED, "decoder crashed", clock.now)


async def test_cancel_is_requested_then_confirmed(repo, make_job) -> None:
    job = await make_job()
    await repo.mark_running(job.id)
    flagged = await repo.request_cancel(job.id)
    assert (flagged.state, flagged.cancel_requested) == (JobState.RUNNING, True)
    cancelled = await repo.mark_cancelled(job.id)
    assert (cancelled.state, cancelled.cancel_requested) == (JobState.CANCELLED, True)


async def test_a_queued_job_can_be_cancelled_directly(repo, make_job) -> None:
    job = await make_job()
    assert (await repo.mark_cancelled(job.id)).state is JobState.CANCELLED


async def test_list_jobs_filters_by_state_in_id_order(repo, make_job) -> None:
    first, second, third, refused = [await make_job(user_id=n) for n in (1, 2, 1)] + [
        await make_job(user_id=3, refusal_reason="not_english")
    ]
    await repo.mark_running(second.id)
    active = await repo.list_jobs([JobState.RUNNING, JobState.QUEUED])
    assert [job.id for job in active] == [first.id, second.id, third.id]
    assert [job.id for job in await repo.list_jobs()] == [first.id, second.id, third.id, refused.id]
    assert [job.id for job in await repo.list_jobs(["queued"])] == [first.id, third.id]


async def test_requeue_after_a_crash_keeps_the_attempt_count(repo, make_job, clock) -> None:
    job = await make_job()
    await repo.mark_running(job.id, now=clock.advance(1))
    requeued = await repo.requeue(job.id)
    assert (requeued.state, requeued.started_at, requeued.attempts) == (JobState.QUEUED, None, 1)
    again = await repo.mark_running(job.id, now=clock.advance(10))
    assert (again.attempts, again.queue_wait_s, again.started_at) == (2, 11.0, clock.now)
    with pytest.raises(InvalidTransitionError, match="from queued to queued"):
        await repo.requeue((await make_job()).id)


async def test_a_large_seed_is_kept_and_the_status_and_result_messages_can_be_set_in_any_state(repo,
                                                                                              make_job) -> None:
    job = await make_job(seed=2**40)
    await repo.set_status_message(job.id, 1_234_567_890_123_456_789)
    updated = await repo.set_result_message(job.id, 1_234_567_890_123_456_790)
    assert (updated.status_message_id, updated.result_message_id) == (1_234_567_890_123_456_789,
                                                                     1_234_567_890_123_456_790)
    assert (updated.seed, updated.state) == (2**40, "queued")


async def test_datetimes_come_back_aware_utc_whatever_zone_they_went_in(repo, make_job) -> None:
    tokyo = timezone(timedelta(hours=9))
    job = await make_job(now=datetime(2026, 5, 1, 18, 0, tzinfo=tokyo))
    running = await repo.mark_running(job.id, now=datetime(2026, 5, 1, 9, 0, 30, tzinfo=UTC))
    stored = await repo.get_job(job.id)
    assert stored.created_at == datetime(2026, 5, 1, 9, 0, tzinfo=UTC)
    assert stored.created_at.tzinfo is UTC and stored.started_at.tzinfo is UTC
    assert running.queue_wait_s == 30.0


async def test_naive_times_are_refused(repo, make_job) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        await make_job(now=datetime(2026, 1, 1))  # noqa: DTZ001 - naive on purpose


async def test_discord_snowflakes_survive_as_integers(repo, make_job) -> None:
    snowflake = 1_180_000_000_000_000_000
    job = await make_job(user_id=snowflake, guild_id=snowflake + 1, channel_id=snowflake + 2)
    stored = await repo.get_job(job.id)
    assert (stored.user_id, stored.guild_id, stored.channel_id) == (snowflake, snowflake + 1, snowflake + 2)
    assert [queued.user_id for queued in await repo.list_jobs([JobState.QUEUED])] == [snowflake]


async def test_records_are_detached_copies(repo, make_job, job_params) -> None:
    job = await make_job(interaction_token="secret-webhook-token")
    job.params["steps"] = 1
    assert (await repo.get_job(job.id)).params["steps"] == job_params["steps"]
    assert "secret-webhook-token" not in repr(job)


async def test_a_second_engine_on_the_same_file_sees_committed_jobs(engine: AsyncEngine, db_url, make_job) -> None:
    queued, running = await make_job(), await make_job()
    await Repository(engine).mark_running(running.id)
    await engine.dispose()  # the bot stops

    restarted = create_engine(db_url)
    try:
        unfinished = await Repository(restarted).list_jobs([JobState.QUEUED, JobState.RUNNING])
    finally:
        await restarted.dispose()
    assert [(job.id, job.state) for job in unfinished] == [(queued.id, "queued"), (running.id, "running")]


async def test_two_tasks_starting_the_same_job_let_exactly_one_win(repo, make_job) -> None:
    job = await make_job()
    outcomes = await asyncio.gather(repo.mark_running(job.id), repo.mark_running(job.id), return_exceptions=True)
    assert sorted(type(outcome).__name__ for outcome in outcomes) == ["InvalidTransitionError", "JobRecord"]
    assert (await repo.get_job(job.id)).attempts == 1


async def test_the_result_message_is_remembered_after_the_job_is_done(repo, make_job) -> None:
    job = await make_job()
    await repo.mark_running(job.id)
    await repo.mark_done(job.id, seed=1, gpu_s=1.0, output_bytes=10)
    updated = await repo.set_result_message(job.id, 1_234_567_890_123_456_789)
    assert (updated.result_message_id, updated.state) == (1_234_567_890_123_456_789, JobState.DONE)
    assert updated.delivery is Delivery.POSTED


async def test_a_done_video_is_pending_until_posted_or_refused_and_only_pending_ones_are_undelivered(
        repo, make_job, clock) -> None:
    jobs = [await make_job() for _ in range(4)]
    for job in jobs:
        await repo.mark_running(job.id)
    assert jobs[0].delivery is None
    pending = await repo.mark_done(jobs[0].id, seed=1, gpu_s=1.0, output_bytes=10)
    assert pending.delivery is Delivery.PENDING
    assert (await repo.mark_done(jobs[1].id, seed=1, gpu_s=1.0, output_bytes=10, result_message_id=5)).delivery \
        is Delivery.POSTED
    await repo.mark_done(jobs[2].id, seed=1, gpu_s=1.0, output_bytes=10)
    assert (await repo.mark_undelivered(jobs[2].id, "refused")).delivery is Delivery.UNPOSTED
    await repo.mark_failed(jobs[3].id, "boom")
    assert await repo.undelivered() == [pending]

    failed = await repo.mark_undelivered(jobs[0].id, "its post was cut short", now=clock.advance(60))
    assert (failed.state, failed.error, failed.delivery, failed.finished_at) == (
        JobState.FAILED, "its post was cut short", Delivery.UNPOSTED, clock.now)
    assert await repo.undelivered() == []
    with pytest.raises(InvalidTransitionError):
        await repo.mark_undelivered(jobs[3].id, "not done")


async def test_recent_render_seconds_are_the_last_finished_videos_oldest_first(repo, make_job, clock) -> None:
    for gpu_s in (9.0, 2.0, 3.0, 4.0):
        job = await make_job()
        await repo.mark_running(job.id)
        await repo.mark_done(job.id, seed=1, gpu_s=gpu_s, output_bytes=10, now=clock.advance(1))
    failed = await make_job()
    await repo.mark_failed(failed.id, "boom", now=clock.advance(1))
    await make_job()  # still queued

    assert await repo.recent_render_seconds(3) == [2.0, 3.0, 4.0]
    assert await repo.recent_render_seconds(10) == [9.0, 2.0, 3.0, 4.0]


async def test_pruning_deletes_old_finished_jobs_in_batches_and_keeps_what_is_still_needed(repo, make_job, clock,
                                                                                           engine) -> None:
    async def finished(how: str) -> int:
        job = await make_job()
        if how != "refused":
            await repo.mark_running(job.id)
        if how == "done":
            await repo.mark_done(job.id, seed=1, gpu_s=1.0, output_bytes=10, result_message_id=5)
        elif how == "pending":
            await repo.mark_done(job.id, seed=1, gpu_s=1.0, output_bytes=10)
        elif how == "failed":
            await repo.mark_failed(job.id, "boom")
        return job.id

    old = [await finished(how) for how in ("done", "failed", "done", "done", "done")]
    refused = (await make_job(refusal_reason="not_english")).id
    queued, running, pending, showcased = (await make_job()).id, await finished("running"), await finished("pending"), \
        await finished("done")
    await ShowcaseRepository(engine, clock=clock).nominate(showcased, user_id=2)
    cutoff = clock.advance(3600)
    recent = await finished("done")

    assert await repo.prune_jobs(cutoff, batch=2) == 6
    left = {job.id for job in await repo.list_jobs()}
    assert left == {queued, running, pending, showcased, recent} and not left & {*old, refused}
    assert await repo.prune_jobs(cutoff, batch=2) == 0
    assert await repo.prune_jobs(clock.advance(1)) == 0  # the newest row stays, old or not: its id is never reused
    assert (await make_job()).id == recent + 1
    assert await Repository(engine).prune_jobs(START) == 0


async def test_pruning_an_empty_jobs_log_deletes_nothing(repo, clock) -> None:
    assert await repo.prune_jobs(clock.now) == 0


async def test_max_job_id_is_the_last_id_a_query_may_name_on_every_backend(repo, engine) -> None:
    """What people type is checked against MAX_JOB_ID before it reaches a query (/cancel, the showcase's commands,
    the gallery's paths): one past it is an error on PostgreSQL, not a missing row."""
    from sqlalchemy.exc import DBAPIError

    assert await repo.get_job(MAX_JOB_ID) is None
    if engine.dialect.name == "postgresql":
        with pytest.raises(DBAPIError, match="out of int32 range"):
            await repo.get_job(MAX_JOB_ID + 1)


async def test_a_resize_changes_only_the_jobs_size_and_is_stored(repo: Repository, make_job) -> None:
    job, other = await make_job(), await make_job()
    resized = await repo.resize(job.id, 576, 320)

    assert resized.params == {**job.params, "width": 576, "height": 320}
    assert (await repo.get_job(job.id)).params == resized.params
    assert (await repo.get_job(other.id)).params == other.params
