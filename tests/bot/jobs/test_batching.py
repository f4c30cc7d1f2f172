"""Batching: same-shape jobs next in fair order render as one unit of work, and each is still its own job.

Real storage, FairQueue and GPUExecutor on "cpu"; the pipeline is a fake with `generate_batch` that records every
call and holds after each step while a prompt of the call is gated, so "one running, the rest queued" and "a batch
mid-run" are deterministic. One test renders with the tiny random model.
"""

from __future__ import annotations

import io
import random
import threading
from dataclasses import replace
from types import SimpleNamespace
from typing import Any

import av
import numpy as np
import pytest
import torch

from bot.gpu.models import ASPECTS, Models
from bot.gpu.work import batch_work, render_work
from bot.jobs.batching import shape_of, take_batch
from bot.jobs.queue import FairQueue
from bot.jobs.spec import Queued, UpscaleOf
from storage import JobState
from t2v import GenerationCancelled, GenerationRequest
from t2v.preview import preview_due
from t2v.request import GenerationResult
from tests.bot.conftest import tiny_pipeline
from tests.bot.helpers import PROMPTS, STYLES, WAIT, FakePipeline, StyledPipeline, spec, styled_models

pytestmark = pytest.mark.usefixtures("logged_errors")

BLOCKER = "A lone tree on a hill under a starry sky."  # the job that keeps the worker busy while others queue


class OutOfMemoryError(RuntimeError):
    """Named like torch's, which is how bot.gpu.work recognises it."""


class BatchPipeline(StyledPipeline):
    """Stands in for t2v.VideoPipeline with batches: a batch's members step together; black 64x64 frames, every
    call's prompts recorded in order (`calls`).

    Gates, `steps_done` and styles are ScriptedPipeline's and StyledPipeline's: a call waits before each step while
    one of its prompts is gated, honouring cancellation while it waits (`gate(prompt, permits=1)` lets step 1 run,
    `open` the rest). A call with a prompt in `oom` runs out of GPU memory after its steps, as many times as the
    count there says.
    """

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[str, tuple[str, ...]]] = []  # ("generate" | "generate_batch", prompts)
        self.vae_chunk = 8
        self.oom: dict[str, int] = {}  # prompt -> calls with it that still run out of memory

    def generate(self, request: GenerationRequest, latents=None, on_step=None, should_cancel=None,
                 on_preview=None) -> Any:
        return self._run("generate", [request], on_step, should_cancel)[0]

    def generate_batch(self, requests: list[GenerationRequest], on_step=None, should_cancel=None,
                       on_preview=None) -> list[Any]:
        return self._run("generate_batch", requests, on_step, should_cancel)

    def _run(self, name: str, requests: list[GenerationRequest], on_step: Any, should_cancel: Any) -> list[Any]:
        prompts = tuple(request.prompt for request in requests)
        self.calls.append((name, prompts))
        steps = requests[0].steps
        for step in range(1, steps + 1):
            for prompt in prompts:
                self._hold(prompt, should_cancel, step)
            if should_cancel():
                raise GenerationCancelled(step - 1, steps)
            on_step(step, steps)
            for prompt in prompts:
                self._finished(prompt, step)
        short = next((prompt for prompt in prompts if self.oom.get(prompt)), None)
        if short is not None:
            self.oom[short] -= 1
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        timings = {"total_s": 0.5, "batch": len(requests)}
        return [GenerationResult(np.zeros((r.frames, 64, 64, 3), np.uint8), r.seed, timings, is_noise=True)
                for r in requests]


@pytest.fixture
def make(make_service: Any) -> Any:
    """Start a service (BATCH_MAX 4 unless given) on a BatchPipeline or the given pipeline."""

    async def start(pipeline: Any = None, **kwargs: Any) -> Any:
        return await make_service(pipeline or BatchPipeline(), **{"shutdown_grace_s": 0, "batch_max": 4, **kwargs})

    return start


async def busy(h: Any) -> int:
    """Start the blocker job (user 9) and wait until it runs, so the next submits queue behind it."""
    h.pipeline.gate(BLOCKER, permits=1)  # step 1 runs, then it holds
    blocker = await h.job_id(9, BLOCKER)
    await h.events.wait("progress", blocker)
    return blocker


async def test_same_shape_jobs_queued_behind_a_running_one_render_as_one_batch(make):
    h = await make()
    blocker = await busy(h)
    jobs = [await h.job_id(user, prompt, seed=user) for user, prompt in zip((1, 2, 3), PROMPTS, strict=False)]
    h.pipeline.open(BLOCKER)
    delivered = [await h.events.wait("done", job) for job in jobs]

    assert h.pipeline.calls == [("generate", (BLOCKER,)), ("generate_batch", tuple(PROMPTS[:3]))]
    assert h.events.started() == [blocker, *jobs]
    for user, job, video in zip((1, 2, 3), jobs, delivered, strict=True):
        assert h.events.of(job) == ["started", "progress", "done"]
        assert video.video[4:8] == b"ftyp" and video.seed == user and video.gpu_s == pytest.approx(0.5 / 3)
        assert (await h.repo.get_job(job)).state == JobState.DONE


async def test_jobs_of_another_shape_or_behind_one_do_not_join_the_batch(make):
    h = await make()
    await busy(h)
    first = await h.job_id(1, PROMPTS[0])
    other = await h.job_id(2, PROMPTS[1], steps=4)  # next in fair order, another shape: the batch ends here
    behind = await h.job_id(3, PROMPTS[2])  # the first one's shape, but behind `other`
    h.pipeline.open(BLOCKER)
    for job in (first, other, behind):
        await h.events.wait("done", job)

    assert [name for name, _ in h.pipeline.calls] == ["generate"] * 4
    assert [prompts for _, prompts in h.pipeline.calls][1:] == [(PROMPTS[0],), (PROMPTS[1],), (PROMPTS[2],)]


async def test_batches_follow_the_fair_round_robin_order(make):
    h = await make()
    blocker = await busy(h)
    a = [await h.job_id(1, prompt) for prompt in PROMPTS[:3]]
    b = [await h.job_id(2, prompt) for prompt in PROMPTS[3:5]]
    h.pipeline.open(BLOCKER)
    for job in a + b:
        await h.events.wait("done", job)

    fair = [a[0], b[0], a[1], b[1], a[2]]
    assert h.events.started() == [blocker, *fair]
    assert h.pipeline.calls[1:] == [("generate_batch", (PROMPTS[0], PROMPTS[3], PROMPTS[1], PROMPTS[4])),
                                    ("generate", (PROMPTS[2],))]


async def test_cancelling_one_member_cancels_it_at_once_and_the_rest_of_the_batch_finishes(make):
    h = await make(per_user_cap=1)
    await busy(h)
    for prompt in PROMPTS[:2]:
        h.pipeline.gate(prompt, permits=1)
    mine, theirs = await h.job_id(1, PROMPTS[0], steps=5), await h.job_id(2, PROMPTS[1], steps=5)
    h.pipeline.open(BLOCKER)
    await h.events.wait("progress", theirs)

    cancelled = await h.service.cancel(1, mine)
    assert cancelled.state == JobState.CANCELLED and h.events.of(mine) == ["started", "progress", "cancelled"]
    again = await h.job_id(1, PROMPTS[2], steps=5)  # the cancelled job no longer counts against the cap of 1
    h.pipeline.open(PROMPTS[0], PROMPTS[1])
    await h.events.wait("done", theirs)
    await h.events.wait("done", again)

    assert h.pipeline.calls[1] == ("generate_batch", (PROMPTS[0], PROMPTS[1]))
    assert h.pipeline.steps_done[PROMPTS[1]] == 5  # the batch ran to the end for the other member
    assert h.events.of(mine) == ["started", "progress", "cancelled"]  # its video was discarded
    assert (await h.repo.get_job(mine)).state == JobState.CANCELLED


async def test_cancelling_every_member_stops_the_batch_at_the_next_step(make):
    h = await make()
    await busy(h)
    for prompt in PROMPTS[:2]:
        h.pipeline.gate(prompt, permits=1)
    first, second = await h.job_id(1, PROMPTS[0], steps=20), await h.job_id(2, PROMPTS[1], steps=20)
    h.pipeline.open(BLOCKER)
    await h.events.wait("progress", second)

    assert (await h.service.cancel(1, first)).state == JobState.CANCELLED
    flagged = await h.service.cancel(2, second)  # the last member: the batch stops at its next step
    assert flagged.cancel_requested
    await h.events.wait("cancelled", second)

    assert h.pipeline.steps_done[PROMPTS[1]] == 1
    assert [h.events.of(job) for job in (first, second)] == [["started", "progress", "cancelled"]] * 2
    after = await h.job_id(1, PROMPTS[2])  # the worker is free again
    await h.events.wait("done", after)


async def test_batch_max_1_runs_one_job_at_a_time_as_before(make):
    pipeline = FakePipeline()  # no generate_batch at all
    h = await make(pipeline, batch_max=1)
    pipeline.hold.clear()
    blocker = await h.job_id(9, BLOCKER)
    await h.events.wait("progress", blocker)
    a = [await h.job_id(1, prompt) for prompt in PROMPTS[:2]]
    b = [await h.job_id(2, prompt) for prompt in PROMPTS[2:4]]
    pipeline.hold.set()
    for job in a + b:
        await h.events.wait("done", job)
    assert h.events.started() == [blocker, a[0], b[0], a[1], b[1]]


async def test_a_batch_out_of_memory_twice_renders_its_jobs_one_at_a_time(make):
    h = await make()
    await busy(h)
    h.pipeline.oom[PROMPTS[0]] = 2  # the batch, twice
    jobs = [await h.job_id(user, prompt) for user, prompt in zip((1, 2), PROMPTS, strict=False)]
    h.pipeline.open(BLOCKER)
    for job in jobs:
        await h.events.wait("done", job)

    batch = ("generate_batch", tuple(PROMPTS[:2]))
    assert h.pipeline.calls[1:] == [batch, batch, ("generate", (PROMPTS[0],)), ("generate", (PROMPTS[1],))]
    assert h.pipeline.vae_chunk == 4  # halved once by the retry; the single renders kept it
    assert [h.events.of(job) for job in jobs] == [["started", "progress", "done"]] * 2


async def test_a_batch_that_stays_out_of_memory_fails_each_member_with_a_clear_message(make, logged_errors):
    logged_errors.expect("jobs 2, 3 failed")
    h = await make()
    await busy(h)
    h.pipeline.oom[PROMPTS[0]] = 4  # the batch twice, then its first job alone twice
    jobs = [await h.job_id(user, prompt) for user, prompt in zip((1, 2), PROMPTS, strict=False)]
    h.pipeline.open(BLOCKER)
    messages = [await h.events.wait("failed", job) for job in jobs]
    assert all("the GPU ran out of memory" in message and "Nothing was charged" in message for message in messages)
    assert [(await h.repo.get_job(job)).state for job in jobs] == [JobState.FAILED] * 2


def test_upscales_and_jobs_of_other_shapes_never_batch():
    def job(job_id: int, user_id: int, upscale: UpscaleOf | None = None, **fields: Any) -> Queued:
        return Queued(SimpleNamespace(id=job_id, user_id=user_id), replace(spec(**fields), upscale=upscale))

    upscale = UpscaleOf(1, "media/1.mp4", 0.7)
    queue: FairQueue[Any] = FairQueue(10, 100)
    for item in [job(1, 1), job(2, 2, frames=4), job(3, 3), job(4, 4, upscale=upscale), job(5, 5, upscale=upscale),
                 job(6, 6), job(7, 7), job(8, 8)]:
        queue.push(item)
    assert shape_of(job(9, 9, upscale=upscale)) is None
    assert [[j.id for j in take_batch(queue, 2)] for _ in range(6)] == [[1], [2], [3], [4], [5], [6, 7]]
    assert [j.id for j in take_batch(queue, 1)] == [8] and take_batch(queue, 4) == []


def test_each_member_of_a_batch_gets_its_own_live_preview_and_mp4():
    class Previewing:
        def generate_batch(self, requests, on_step=None, should_cancel=None, on_preview=None):
            steps, n = requests[0].steps, len(requests)
            for step in range(1, steps + 1):
                on_step(step, steps)  # member i's frames are all grey level 100·i + step
                if preview_due(on_preview, step, steps):
                    grey = (np.arange(n) * 100 + step).astype(np.uint8)
                    on_preview(step, steps, np.broadcast_to(grey[:, None, None, None, None], (n, 2, 8, 64, 3)))
            return [GenerationResult(np.full((2, 64, 64, 3), 60 * i, np.uint8), r.seed, {"total_s": 1.0, "batch": n})
                    for i, r in enumerate(requests)]

    requests = [spec(prompt, seed=i, steps=8).request for i, prompt in enumerate(PROMPTS[:2])]
    reports: list[tuple[Any, ...]] = []
    at_every_chance = Models(Previewing(), preview_interval_s=0.0)
    rendered = batch_work(requests)(at_every_chance, lambda *report: reports.append(report), lambda: False)

    assert [report for report in reports if len(report) == 2] == [(step, 8) for step in range(1, 9)]  # everyone's
    previews = [report for report in reports if len(report) == 4]
    assert [(step, member) for step, _, _, member in previews] == [(s, m) for s in range(1, 8) for m in (0, 1)]
    assert previews[0][2].gif() != previews[1][2].gif() and all(p[2].step == p[0] for p in previews)
    assert [r.seed for r in rendered] == [0, 1] and [r.gpu_s for r in rendered] == [0.5, 0.5]
    black, grey = (mp4_frames(r.mp4(10**7)).mean() for r in rendered)  # each member's own frames: black, grey 60
    assert black < 10 and 50 < grey < 70


async def test_batched_tiny_random_jobs_deliver_the_videos_they_would_get_alone(make, monkeypatch):
    cloudpickle = pytest.importorskip("cloudpickle")
    monkeypatch.setitem(ASPECTS, "tiny", (64, 64))  # the tiny model's native size keeps the test fast
    pipeline = HeldFirst(tiny_pipeline())
    h = await make(pipeline)
    size = {"steps": 2, "frames": 2, "aspect": "tiny"}
    blocker = await h.job_id(9, BLOCKER, **size)
    await h.events.wait("started", blocker)
    jobs = [await h.job_id(1, PROMPTS[0], seed=3, **size), await h.job_id(2, PROMPTS[1], seed=4, guidance=5.0, **size)]
    pipeline.release.set()
    await h.events.wait("done", blocker)
    batched = [await h.events.wait("done", job) for job in jobs]

    assert pipeline.batches == [2]
    requests = [spec(PROMPTS[0], seed=3, **size).request, spec(PROMPTS[1], seed=4, guidance=5.0, **size).request]
    alone = [render_work(request)(Models(tiny_pipeline()), lambda *_: None, lambda: False) for request in requests]
    shipped = cloudpickle.loads(cloudpickle.dumps(batch_work(requests)))  # as a Ray worker gets it
    again = shipped(Models(tiny_pipeline()), lambda *_: None, lambda: False)
    for video, single, copy in zip(batched, alone, again, strict=True):
        frames = mp4_frames(video.video)
        assert frames.shape == (2, 64, 64, 3) and video.seed == single.seed
        assert np.abs(frames.astype(int) - mp4_frames(single.mp4(10**7)).astype(int)).mean() <= 0.1  # fp rounding
        assert np.array_equal(mp4_frames(copy.mp4(10**7)), frames)


class HeldFirst:
    """The tiny model behind a worker whose first job waits for `release`, so the next jobs queue up."""

    def __init__(self, pipeline: Any) -> None:
        self.pipeline, self.config = pipeline, pipeline.config
        self.release, self.batches = threading.Event(), []

    def generate(self, request: GenerationRequest, **kwargs: Any) -> Any:
        assert self.release.wait(WAIT)
        return self.pipeline.generate(request, **kwargs)

    def generate_batch(self, requests: list[GenerationRequest], **kwargs: Any) -> list[Any]:
        self.batches.append(len(requests))
        return self.pipeline.generate_batch(requests, **kwargs)


def mp4_frames(video: bytes) -> np.ndarray:
    with av.open(io.BytesIO(video)) as container:
        return np.stack([frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)])


def test_a_batch_reports_each_member_its_share_of_the_time_for_the_eta():
    class Timed:
        def generate_batch(self, requests, on_step=None, should_cancel=None, on_preview=None):
            return [GenerationResult(np.zeros((2, 64, 64, 3), np.uint8), i, {"total_s": 6.0, "batch": 3})
                    for i in range(len(requests))]

    requests = [GenerationRequest(PROMPTS[i], seed=i, steps=2, frames=2, width=64, height=64) for i in range(3)]
    rendered = batch_work(requests)(Models(Timed()), lambda *_: None, lambda: False)
    assert [r.gpu_s for r in rendered] == [2.0, 2.0, 2.0]
    walls = {r.wall_s for r in rendered}
    assert len(walls) == 1  # one batch: the seconds per job the ETA learns are its time over its members


# --- styles ---------------------------------------------------------------------------------------------------------


def styled_job(job_id: int, user_id: int, style: str | None) -> Queued:
    return Queued(SimpleNamespace(id=job_id, user_id=user_id), spec(style=style))


def test_a_batch_gathers_its_style_stepping_over_other_styles_and_keeps_each_users_order():
    queue: FairQueue[Any] = FairQueue(10, 100)
    # fair order: 1a 2b 3a 4a | 1b 2a 3a ...: user 1's second job (b) is behind its first
    for item in [styled_job(1, 1, "a"), styled_job(2, 2, "b"), styled_job(3, 3, "a"), styled_job(4, 4, "a"),
                 styled_job(5, 1, "b"), styled_job(6, 2, "a"), styled_job(7, 3, "a")]:
        queue.push(item)
    first = [j.id for j in take_batch(queue, 4)]
    assert first == [1, 3, 4, 7]  # 2 is another style: stepped over, and with it user 2's later job 6 (its order)
    assert [j.id for j in take_batch(queue, 4)] == [2, 5]  # the stepped-over job starts the next unit, with its style
    assert [j.id for j in take_batch(queue, 4)] == [6] and take_batch(queue, 4) == []


def test_three_users_each_with_their_own_style_get_one_batch_each_in_fair_order():
    queue: FairQueue[Any] = FairQueue(10, 100)
    jobs = [styled_job(i + 1, user, style) for i, (user, style) in
            enumerate([(user, style) for _ in range(4) for user, style in ((1, "a"), (2, "b"), (3, "c"))])]
    for item in jobs:
        queue.push(item)
    batches = [[j.id for j in take_batch(queue, 4)] for _ in range(3)]
    assert batches == [[1, 4, 7, 10], [2, 5, 8, 11], [3, 6, 9, 12]]
    assert [shape_of(job)[-1] for job in jobs[:3]] == ["a", "b", "c"]  # the style is the last part of the shape


def test_a_job_of_another_size_still_ends_a_batch_of_one_style():
    queue: FairQueue[Any] = FairQueue(10, 100)
    other = Queued(SimpleNamespace(id=3, user_id=3), spec(style="a", frames=4))
    for item in [styled_job(1, 1, "a"), styled_job(2, 2, "b"), other, styled_job(4, 4, "a")]:
        queue.push(item)
    assert [j.id for j in take_batch(queue, 4)] == [1]
    assert [j.id for j in take_batch(queue, 1)] == [2]  # BATCH_MAX 1: one job at a time, as before


async def test_jobs_of_one_style_batch_together_and_the_worker_switches_only_between_batches(make):
    pipeline = BatchPipeline()
    h = await make(pipeline, factory=lambda device: styled_models(pipeline))
    await busy(h)
    styles = ["claymation", "watercolor", "claymation", "watercolor", None]
    jobs = [await h.job_id(user, prompt, style=style) for user, prompt, style in zip((1, 2, 3, 4, 5), PROMPTS, styles,
                                                                                     strict=False)]
    h.pipeline.open(BLOCKER)
    for job in jobs:
        await h.events.wait("done", job)

    clay, water = STYLES["claymation"], STYLES["watercolor"]
    assert h.pipeline.calls[1:] == [
        ("generate_batch", tuple(clay.prompt(p) for p in (PROMPTS[0], PROMPTS[2]))),
        ("generate_batch", tuple(water.prompt(p) for p in (PROMPTS[1], PROMPTS[3]))),
        ("generate", (PROMPTS[4],)),
    ]
    assert pipeline.switches == [("claymation", 0.8), ("watercolor", 1.0), (None, 1.0)]
    assert [(await h.repo.get_job(job)).prompt for job in jobs] == PROMPTS[:5]  # as typed


@pytest.mark.parametrize("seed", range(40))
def test_stepping_over_styles_keeps_each_members_order_and_no_job_waits_more_units_than_jobs_ahead(seed):
    rng = random.Random(seed)
    queue: FairQueue[Any] = FairQueue(100, 1000)
    backlog = [Queued(SimpleNamespace(id=i, user_id=rng.randrange(5)),
                      spec(style=rng.choice(["a", "b", "c", None]), frames=rng.choice([2, 2, 2, 4])))
               for i in range(1, rng.randrange(2, 30))]
    for job in backlog:
        queue.push(job)
    ahead = {job.id: place for place, job in enumerate(queue.service_order())}  # jobs ahead of each in fair order
    limit = rng.choice([2, 3, 4])
    unit_of, order = {}, []
    while batch := take_batch(queue, limit):
        assert len(batch) <= limit and len({shape_of(job) for job in batch}) == 1
        for job in batch:
            unit_of[job.id] = len(order)
            queue.finish(job.id)
        order.append(batch)

    assert sorted(unit_of) == [job.id for job in backlog]  # every job, once
    for user in {job.user_id for job in backlog}:
        mine = [job.id for job in backlog if job.user_id == user]
        assert [unit_of[job] for job in mine] == sorted(unit_of[job] for job in mine)  # a member's order kept
    assert all(unit_of[job] <= ahead[job] for job in unit_of)
