"""Faults the service survives: runaway jobs (the time limit, a worker that never comes back), a slow encoder, a locked
database. VideoService on a temporary SQLite file with an injected clock and timer; nothing sleeps.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bot.jobs.encoder import Encoder
from storage import JobState
from t2v import GenerationResult
from tests.bot.helpers import WAIT, Events, ScriptedPipeline, Timers, requester, spec
from tests.clocks import Clock, Monotonic

pytestmark = pytest.mark.usefixtures("logged_errors")

PROMPT = "a kite flying over a windy beach"


# --- time limit ---------------------------------------------------------------------------------------------------


@pytest.fixture
def services(make_service: Any, database: Any) -> Any:
    """Start VideoServices on `repo` (the test's database by default); a shutdown stops their jobs at once."""

    async def start(pipeline: Any, events: Events, repo: Any = None, **kwargs: Any) -> Any:
        harness = await make_service(pipeline, events=events, repo=repo or database.repo(), shutdown_grace_s=0,
                                     **kwargs)
        return harness.service

    return start


async def test_a_job_past_its_time_limit_is_stopped_at_its_next_step_and_refunded(services, database, scripted):
    monotonic, events, repo = Monotonic(), Events(), database.repo()
    steps = scripted.gate(PROMPT, permits=1)
    service = await services(scripted, events, repo, monotonic=monotonic, job_time_limit_s=60)
    job = (await service.submit(requester(), spec(PROMPT, steps=10))).job
    await scripted.finished_step(PROMPT, 1)

    monotonic.t += 61
    steps.release()  # step 2 runs; its progress event finds the job past the limit
    message = await events.wait("failed", job.id)
    record = await repo.get_job(job.id)

    assert message == (f"Sorry, job #{job.id} failed (it was still rendering 60 s after it started, past the time "
                       "limit). Nothing was charged.")
    assert scripted.steps_done[PROMPT] == 2  # stopped at the step after the one that crossed the limit
    assert (record.state, record.error) == (JobState.FAILED, "JobTimedOut: still running 60 s after it started")


async def test_a_wall_clock_jump_does_not_fail_a_running_job_and_the_limit_still_counts_monotonic_time(
    services, database, scripted
):
    clock, monotonic, events, repo = Clock(), Monotonic(), Events(), database.repo()
    steps = scripted.gate(PROMPT, permits=1)
    service = await services(scripted, events, repo, clock=clock, monotonic=monotonic, job_time_limit_s=60)
    job = (await service.submit(requester(), spec(PROMPT, steps=10))).job
    await scripted.finished_step(PROMPT, 1)

    clock.now += timedelta(hours=2)  # an NTP correction or a resumed VM: the wall clock leaps, 10 s really pass
    monotonic.t += 10
    steps.release()  # step 2's progress event checks the limit: 10 s of 60
    await scripted.finished_step(PROMPT, 2)  # its progress event has been handled by now (it was queued first)
    running = service.running.get(job.id)
    assert running is not None and not running.timed_out and not running.token.is_set()
    assert (await repo.get_job(job.id)).state == JobState.RUNNING and "failed" not in events.of(job.id)

    monotonic.t += 51  # 61 s since the job started, on the clock that does not jump
    steps.release()
    message = await events.wait("failed", job.id)
    assert message == (f"Sorry, job #{job.id} failed (it was still rendering 60 s after it started, past the time "
                       "limit). Nothing was charged.")
    assert scripted.steps_done[PROMPT] == 3


class StuckOutsideSteps:
    """A pipeline whose job for STUCK_PROMPT blocks before any step (a compile, a load, a hung kernel) until
    `release`; other prompts render at once."""

    def __init__(self) -> None:
        self.entered, self.release = threading.Event(), threading.Event()
        self.started: list[str] = []

    def generate(self, request: Any, on_step: Any = None, should_cancel: Any = None, on_preview: Any = None) -> Any:
        self.started.append(request.prompt)
        if request.prompt == STUCK_PROMPT:
            self.entered.set()
            assert self.release.wait(WAIT)
        return GenerationResult(np.zeros((request.frames, 64, 64, 3), np.uint8), request.seed or 0,
                                {"total_s": 0.01})


STUCK_PROMPT = "a lighthouse in a storm at night"


async def test_a_job_stuck_outside_its_steps_fails_at_the_time_limit_and_the_worker_then_serves_the_next(
    services, database
):
    events, repo, timers, pipeline = Events(), database.repo(), Timers(), StuckOutsideSteps()
    service = await services(pipeline, events, repo, job_time_limit_s=60, sleep=timers.sleep)
    stuck = (await service.submit(requester(), spec(STUCK_PROMPT, steps=10))).job
    assert await asyncio.to_thread(pipeline.entered.wait, WAIT)
    behind = (await service.submit(requester(2), spec(PROMPT, steps=2))).job

    assert await timers.fire() == 60  # the limit runs out while no step has been reached
    message = await events.wait("failed", stuck.id)
    assert message == (f"Sorry, job #{stuck.id} failed (it was still rendering 60 s after it started, past the "
                       "time limit). Nothing was charged.")
    assert (await repo.get_job(stuck.id)).state == JobState.FAILED
    assert pipeline.started == [STUCK_PROMPT] and (await repo.get_job(behind.id)).state == JobState.QUEUED

    pipeline.release.set()  # the worker comes back: its late result is dropped, and the next job runs
    delivered = await events.wait("done", behind.id)
    assert pipeline.started == [STUCK_PROMPT, PROMPT] and delivered.video[4:8] == b"ftyp"
    assert events.of(stuck.id) == ["started", "failed"] and service.stuck is None


async def test_a_worker_that_never_comes_back_is_reported_stuck(services, database, logged_errors):
    logged_errors.expect("has not come back")
    events, repo, timers, pipeline = Events(), database.repo(), Timers(), StuckOutsideSteps()
    service = await services(pipeline, events, repo, job_time_limit_s=60, sleep=timers.sleep)
    reported: list[str] = []
    said = asyncio.Event()

    def report(reason: str) -> None:
        reported.append(reason)
        said.set()

    service.on_stuck = report
    stuck = (await service.submit(requester(), spec(STUCK_PROMPT, steps=10))).job
    assert await asyncio.to_thread(pipeline.entered.wait, WAIT)
    await timers.fire()
    await events.wait("failed", stuck.id)
    await timers.fire()  # another time limit passes without the work coming back
    await asyncio.wait_for(said.wait(), WAIT)
    assert reported == [f"a GPU worker has not come back from job {stuck.id} 120 s after it started"]
    assert service.stuck == reported[0]
    pipeline.release.set()


async def test_the_gpu_thread_starts_the_next_job_while_the_last_one_s_mp4_is_encoded(services, database, scripted):
    class HeldEncoder(Encoder):
        """Encodes only when the test lets it."""

        def __init__(self) -> None:
            super().__init__()
            self.go = asyncio.Event()

        async def encode(self, frames: Any, max_bytes: int) -> Any:
            await self.go.wait()
            return await super().encode(frames, max_bytes)

    events, repo, encoder = Events(), database.repo(), HeldEncoder()
    service = await services(scripted, events, repo, encoder=encoder)
    first = (await service.submit(requester(), spec(PROMPT, steps=2))).job
    second = (await service.submit(requester(2), spec("a red fox in the snow", steps=2))).job
    await scripted.finished_step("a red fox in the snow", 2)  # rendered while the first MP4 is not yet encoded

    assert "done" not in events.of(first.id)
    encoder.go.set()
    assert (await events.wait("done", first.id)).video[4:8] == b"ftyp"
    await events.wait("done", second.id)


# --- database ---------------------------------------------------------------------------------------------------


async def test_a_write_that_finds_the_database_locked_is_retried_and_the_job_still_lands(services, database,
                                                                                           tmp_path: Path):
    holder = sqlite3.connect(tmp_path / "videobot.db", isolation_level=None)  # another writer, e.g. a backup job
    backoffs: list[int] = []

    async def release_then_retry(attempt: int) -> None:
        backoffs.append(attempt)
        holder.execute("COMMIT")

    repo = database.repo(busy_timeout_ms=0, backoff=release_then_retry)  # "database is locked" at once, not in 5 s
    events = Events()
    service = await services(ScriptedPipeline(), events, repo)
    try:
        holder.execute("BEGIN IMMEDIATE")
        submitted = await service.submit(requester(), spec(PROMPT))
        delivered = await events.wait("done", submitted.job.id)
        rows = await repo.list_jobs()
    finally:
        holder.close()

    assert backoffs == [1]  # the insert hit the lock once, and the retry after the backoff went through
    assert [(row.id, row.state) for row in rows] == [(submitted.job.id, JobState.DONE)]
    assert delivered.video[4:8] == b"ftyp"
