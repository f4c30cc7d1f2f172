"""Faults the bot survives: CUDA out-of-memory, runaway jobs, Discord 429s and 413s, gateway reconnects, a locked DB.

The Discord-facing ones run the real discord.py client against the fake Discord; the rest drive VideoService on a
temporary SQLite file with an injected clock. Nothing sleeps: the tests wait on events and requests.
"""

from __future__ import annotations

import asyncio
import copy
import sqlite3
import threading
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import torch
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.gpu import work as render
from bot.gpu.executor import GPUExecutor
from bot.jobs.queue import FairQueue
from bot.jobs.service import VideoService
from bot.moderation.policy import PolicyGate
from storage import JobState, Repository, create_engine, migrate
from t2v import GenerationRequest, GenerationResult, encode_mp4
from tests.bot.conftest import WAIT, ScriptedPipeline, Stacks, tiny_pipeline
from tests.bot.test_e2e_video import decoded_frames, has_video, video
from tests.bot.test_service import Events, options, requester
from tests.fakediscord import FakeDiscord, FakeMessage

pytestmark = pytest.mark.usefixtures("logged_errors")

PROMPT = "a kite flying over a windy beach"
OOM = "CUDA out of memory. Tried to allocate 2.00 GiB (GPU 0; 79.11 GiB total capacity)"


def out_of_memory_when_decoding_more_than(fits: int) -> Any:
    """The tiny model, whose VAE decode runs out of GPU memory (torch's own error) above `fits` frames a chunk."""
    pipeline = copy.copy(tiny_pipeline())  # its own vae_chunk; the modules are shared
    pipeline.fits, pipeline.decodes = fits, []
    decode = pipeline.decode

    def decode_or_run_out(latents: torch.Tensor) -> torch.Tensor:
        pipeline.decodes.append(pipeline.vae_chunk)
        if pipeline.vae_chunk > pipeline.fits:
            raise torch.cuda.OutOfMemoryError(OOM)
        return decode(latents)

    pipeline.decode = decode_or_run_out
    return pipeline


def failure(message: FakeMessage) -> bool:
    return message.content.startswith("Sorry")


async def test_out_of_memory_is_retried_once_with_half_the_vae_chunk_and_the_video_lands(stacks: Stacks):
    pipeline = out_of_memory_when_decoding_more_than(4)
    pipeline.vae_chunk = 8
    async with stacks.run(lambda device: pipeline) as stack:
        result = await (await video(stack.fake, PROMPT, frames=2)).wait_original(has_video)
        job = await stack.job(1)

    assert pipeline.decodes == [8, 4] and pipeline.vae_chunk == 4  # later jobs decode in the smaller chunks too
    assert len(decoded_frames(result.attachments[0].data)) == 2
    assert (job.state, job.attempts) == (JobState.DONE, 1)


async def test_a_second_out_of_memory_fails_the_job_with_a_clear_message_and_the_worker_keeps_serving(
    stacks: Stacks, logged_errors
):
    logged_errors.expect("job 1 failed")
    pipeline = out_of_memory_when_decoding_more_than(0)
    pipeline.vae_chunk = 8
    async with stacks.run(lambda device: pipeline) as stack:
        fake = stack.fake
        answer = await (await video(fake, PROMPT)).wait_original(failure)
        pipeline.fits = 8  # memory freed up: the same worker serves the next request
        result = await (await video(fake, "a kite landing on the sand")).wait_original(has_video)
        first, second = await stack.jobs()

    assert answer.content == "Sorry — job #1 failed (the GPU ran out of memory). Nothing was charged."
    assert pipeline.decodes == [8, 4, 4] and result.attachments
    assert (first.state, second.state) == (JobState.FAILED, JobState.DONE)
    assert first.error.startswith("OutOfMemoryError: CUDA out of memory")


def test_on_cuda_the_cache_is_emptied_after_each_out_of_memory(monkeypatch: pytest.MonkeyPatch):
    emptied: list[int] = []
    monkeypatch.setattr(torch.cuda, "empty_cache", lambda: emptied.append(len(calls)))
    calls: list[int] = []

    def generate(request: GenerationRequest, on_step: Any, should_cancel: Any, on_preview: Any = None) -> Any:
        calls.append(pipeline.vae_chunk)
        if len(calls) == 1:
            raise torch.cuda.OutOfMemoryError(OOM)
        return GenerationResult(np.zeros((1, 64, 64, 3), np.uint8), 1, {})

    pipeline = SimpleNamespace(device=torch.device("cuda", 0), vae_chunk=3, generate=generate)
    render.generate(pipeline, GenerationRequest(PROMPT, frames=1), lambda step, total: None, lambda: False)
    cpu = SimpleNamespace(device=torch.device("cpu"))
    render.free_gpu_memory(cpu)

    assert calls == [3, 1] and emptied == [1]  # emptied once, after the failed attempt; never for the CPU


# --- time limit ---------------------------------------------------------------------------------------------------


class MovableClock:
    """The service's UTC clock, moved by the test."""

    def __init__(self) -> None:
        self.now = datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture(scope="module")
def gate() -> PolicyGate:
    return PolicyGate()  # the real English detectors and the shipped denylist


@pytest.fixture
async def database(tmp_path: Path) -> AsyncIterator[Callable[..., Repository]]:
    """Repositories on one migrated SQLite file (tmp_path / "videobot.db"), each with its own engine options."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'videobot.db'}"
    await migrate(url)
    engines: list[AsyncEngine] = []

    def repository(busy_timeout_ms: int = 5000, **options: Any) -> Repository:
        engines.append(create_engine(url, busy_timeout_ms=busy_timeout_ms))
        return Repository(engines[-1], **options)

    yield repository
    for engine in engines:
        await engine.dispose()


@pytest.fixture
async def services(database: Callable[..., Repository], gate: PolicyGate) -> AsyncIterator[Callable[..., Any]]:
    """Start VideoServices (stopped at the end, before the database goes away); shutdown stops jobs at once."""
    started: list[VideoService] = []

    async def start(pipeline: Any, events: Events, repo: Repository, **kwargs: Any) -> VideoService:
        executor = GPUExecutor(["cpu"], lambda device: pipeline)
        service = VideoService(repo, gate, FairQueue(3, 100), executor, events, shutdown_grace_s=0, **kwargs)
        await service.start()
        started.append(service)
        return service

    yield start
    for service in started:
        await service.stop()


async def test_a_job_past_its_time_limit_is_stopped_at_its_next_step_and_refunded(services, database, scripted):
    clock, events, repo = MovableClock(), Events(), database()
    steps = scripted.gate(PROMPT, permits=1)
    service = await services(scripted, events, repo, clock=clock, job_time_limit_s=60)
    job = (await service.submit(requester(), options(PROMPT, steps=10))).job
    await scripted.finished_step(PROMPT, 1)

    clock.now += timedelta(seconds=61)
    steps.release()  # step 2 runs; its progress event finds the job past the limit
    message = await events.wait("failed", job.id)
    record = await repo.get_job(job.id)

    assert message == (f"Sorry — job #{job.id} failed (it was still rendering 60 s after it started, past the time "
                       "limit). Nothing was charged.")
    assert scripted.steps_done[PROMPT] == 2  # stopped at the step after the one that crossed the limit
    assert (record.state, record.error) == (JobState.FAILED, "JobTimedOut: still running 60 s after it started")


class Timers:
    """The service's time-limit timer: each `sleep(s)` waits until the test fires it (`fire()`: the oldest)."""

    def __init__(self) -> None:
        self.waiting: list[tuple[float, asyncio.Event]] = []
        self._armed = asyncio.Condition()

    async def sleep(self, seconds: float) -> None:
        event = asyncio.Event()
        async with self._armed:
            self.waiting.append((seconds, event))
            self._armed.notify_all()
        await event.wait()

    async def fire(self) -> float:
        """Wait for a timer to be armed, then let the oldest one run out; its seconds."""
        async with self._armed:
            await asyncio.wait_for(self._armed.wait_for(lambda: self.waiting), WAIT)
            seconds, event = self.waiting.pop(0)
        event.set()
        return seconds


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
    events, repo, timers, pipeline = Events(), database(), Timers(), StuckOutsideSteps()
    service = await services(pipeline, events, repo, job_time_limit_s=60, sleep=timers.sleep)
    stuck = (await service.submit(requester(), options(STUCK_PROMPT, steps=10))).job
    assert await asyncio.to_thread(pipeline.entered.wait, WAIT)
    behind = (await service.submit(requester(2), options(PROMPT, steps=2))).job

    assert await timers.fire() == 60  # the limit runs out while no step has been reached
    message = await events.wait("failed", stuck.id)
    assert message == (f"Sorry — job #{stuck.id} failed (it was still rendering 60 s after it started, past the "
                       "time limit). Nothing was charged.")
    assert (await repo.get_job(stuck.id)).state == JobState.FAILED
    assert pipeline.started == [STUCK_PROMPT] and (await repo.get_job(behind.id)).state == JobState.QUEUED

    pipeline.release.set()  # the worker comes back: its late result is dropped, and the next job runs
    delivered = await events.wait("done", behind.id)
    assert pipeline.started == [STUCK_PROMPT, PROMPT] and delivered.video[4:8] == b"ftyp"
    assert events.of(stuck.id) == ["started", "failed"] and service.stuck is None


async def test_a_worker_that_never_comes_back_is_reported_stuck(services, database, logged_errors):
    logged_errors.expect("has not come back")
    events, repo, timers, pipeline = Events(), database(), Timers(), StuckOutsideSteps()
    service = await services(pipeline, events, repo, job_time_limit_s=60, sleep=timers.sleep)
    reported: list[str] = []
    service.on_stuck = reported.append
    stuck = (await service.submit(requester(), options(STUCK_PROMPT, steps=10))).job
    assert await asyncio.to_thread(pipeline.entered.wait, WAIT)
    await timers.fire()
    await events.wait("failed", stuck.id)
    await timers.fire()  # another time limit passes without the work coming back
    while not reported:
        await asyncio.sleep(0)
    assert reported == [f"a GPU worker has not come back from job {stuck.id} 120 s after it started"]
    assert service.stuck == reported[0]
    pipeline.release.set()


async def test_the_gpu_thread_starts_the_next_job_while_the_last_one_s_mp4_is_encoded(services, database, scripted):
    class HeldEncoder(render.Encoder):
        """Encodes only when the test lets it."""

        def __init__(self) -> None:
            super().__init__()
            self.go = asyncio.Event()

        async def encode(self, frames: Any, max_bytes: int) -> Any:
            await self.go.wait()
            return await super().encode(frames, max_bytes)

    events, repo, encoder = Events(), database(), HeldEncoder()
    service = await services(scripted, events, repo, encoder=encoder)
    first = (await service.submit(requester(), options(PROMPT, steps=2))).job
    second = (await service.submit(requester(2), options("a red fox in the snow", steps=2))).job
    await scripted.finished_step("a red fox in the snow", 2)  # rendered while the first MP4 is not yet encoded

    assert "done" not in events.of(first.id)
    encoder.go.set()
    assert (await events.wait("done", first.id)).video[4:8] == b"ftyp"
    await events.wait("done", second.id)


# --- Discord faults -----------------------------------------------------------------------------------------------


def retried_after(fake: FakeDiscord, pattern: str, retry_after: float) -> bool:
    """The first matching request got a 429, and the next one came no sooner than Retry-After and succeeded."""
    first, second = fake.requests_to(pattern)[:2]
    return (first.status, second.status) == (429, 200) and second.time - first.time >= retry_after


async def test_rate_limited_edits_and_uploads_are_retried_after_retry_after_and_the_video_lands(stacks: Stacks,
                                                                                               scripted):
    gate = scripted.gate(PROMPT)
    async with stacks.run(lambda device: scripted) as stack:
        fake = stack.fake
        fake.rate_limit_next("PATCH /webhooks/*/messages/@original", retry_after=0.05)  # the queue-place edit
        handle = await video(fake, PROMPT)
        await handle.wait_original(lambda m: m.content.startswith("Starting"))
        fake.expire_token(handle)  # the result now goes up as a channel message: the upload route
        fake.rate_limit_next(f"POST /channels/{fake.channel.id}/messages", retry_after=0.05)
        gate.release(100)
        posted = await fake.wait_for_message(lambda m: m.kind == "channel" and has_video(m))

    assert retried_after(fake, "PATCH /webhooks/*/messages/@original", 0.05)
    assert retried_after(fake, f"POST /channels/{fake.channel.id}/messages", 0.05)
    assert handle.original.content.startswith("Finished · job #1")
    assert posted.content.startswith(f"<@{handle.record.user.id}> here is your video · job #1")


def noise(request: GenerationRequest) -> np.ndarray:
    """Frames that compress badly, so halving the MP4's size takes a real re-encode."""
    return np.random.default_rng(request.seed).integers(0, 256, (request.frames, 64, 64, 3), np.uint8)


class NoisePipeline(ScriptedPipeline):
    def generate(self, request: Any, latents: Any = None, on_step: Any = None, should_cancel: Any = None,
                 on_preview: Any = None) -> Any:
        super().generate(request, latents, on_step, should_cancel, on_preview)
        return GenerationResult(noise(request), request.seed, {"total_s": 0.01})


@pytest.mark.parametrize("route", ["interaction", "channel"])
async def test_a_video_discord_refuses_as_too_large_is_reencoded_at_half_the_size_and_posted(stacks: Stacks,
                                                                                             route: str):
    pipeline = NoisePipeline()
    full = len(encode_mp4(noise(GenerationRequest(PROMPT, seed=5, frames=4, width=64, height=64)), 8))
    gate = pipeline.gate(PROMPT)
    async with stacks.run(lambda device: pipeline) as stack:
        fake = stack.fake
        handle = await video(fake, PROMPT, seed=5, frames=4)
        await handle.wait_original(lambda m: m.content.startswith("Starting"))
        if route == "interaction":  # Discord takes less than the interaction's attachment_size_limit said
            handle.record.attachment_size_limit = full * 3 // 4
        else:
            fake.expire_token(handle)
            fake.max_attachment_size = full * 3 // 4
        gate.release(100)
        posted = await fake.wait_for_message(has_video)

    uploads = [(r.status, f.size) for r in fake.requests for f in r.files if f.filename.endswith(".mp4")]
    [(refused, too_large), (accepted, smaller)] = uploads
    assert (refused, accepted) == (413, 200) and smaller <= too_large // 2  # one retry, at most half the size
    assert len(decoded_frames(posted.attachments[0].data)) == 4 and "here is your video" in posted.content


@pytest.mark.parametrize("fault", ["reconnect", "invalidate_session", "disconnect"])
async def test_video_works_after_a_gateway_reconnect_or_invalid_session(stacks: Stacks, scripted, fault: str):
    async with stacks.run(lambda device: scripted) as stack:
        fake = stack.fake

        async def identify_at_once(shard_id: int | None, *, initial: bool = False) -> None:
            """discord.py waits 5 s before a re-IDENTIFY, out of courtesy to the real Discord."""

        stack.bot.before_identify_hook = identify_at_once
        before = await (await video(fake, PROMPT)).wait_original(has_video)
        await getattr(fake, fault)()
        await fake.wait_for(lambda: fake.gateway.connections == 2 and fake.gateway.connected, what="a new session")
        after = await (await video(fake, "a kite caught in a tree")).wait_original(has_video)
        jobs = await stack.jobs()

    assert before.attachments and after.attachments
    assert [job.state for job in jobs] == [JobState.DONE, JobState.DONE]
    assert (fake.gateway.identifies, fake.gateway.resumes) == ((2, 0) if fault == "invalidate_session" else (1, 1))


# --- database ---------------------------------------------------------------------------------------------------


async def test_a_write_that_finds_the_database_locked_is_retried_and_the_job_still_lands(services, database,
                                                                                           tmp_path: Path):
    holder = sqlite3.connect(tmp_path / "videobot.db", isolation_level=None)  # another writer, e.g. a backup job
    backoffs: list[int] = []

    async def release_then_retry(attempt: int) -> None:
        backoffs.append(attempt)
        holder.execute("COMMIT")

    repo = database(busy_timeout_ms=0, backoff=release_then_retry)  # "database is locked" at once, not in 5 s
    events = Events()
    service = await services(ScriptedPipeline(), events, repo)
    try:
        holder.execute("BEGIN IMMEDIATE")
        submitted = await service.submit(requester(), options(PROMPT))
        delivered = await events.wait("done", submitted.job.id)
        rows = await repo.list_jobs()
    finally:
        holder.close()

    assert backoffs == [1]  # the insert hit the lock once, and the retry after the backoff went through
    assert [(row.id, row.state) for row in rows] == [(submitted.job.id, JobState.DONE)]
    assert delivered.video[4:8] == b"ftyp"
