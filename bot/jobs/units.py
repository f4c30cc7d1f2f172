"""One unit of work — a job, or a batch of same-shape jobs — from its worker to each job's recorded outcome.

The jobs are marked running and handed to a worker as one unit (bot.gpu.work); the worker's frames are encoded on
the CPU pool while the worker takes its next unit. The work races the time limit (an injectable timer): a unit still
not back JOB_TIME_LIMIT_S after it started fails its jobs then, wherever it is stuck (a step, a decode, a hung
kernel), and its worker's slot stays taken until the work comes back; if it does not within another limit, the
worker is stuck and `on_stuck` says so (the bot restarts to recover the GPU). A worker whose GPU an error left unusable
(the executor's `on_broken`: a lost CUDA context) takes the same path.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any

from bot.errors import JobFailed, JobTimedOut
from bot.gpu.executor import CancelToken, Executor
from bot.gpu.work import Frames, batch_work, render_work, upscale_work
from bot.jobs.encoder import Encoder, Rendered
from bot.jobs.outcomes import Outcomes
from bot.jobs.progress import Progress
from bot.jobs.running import RunningJob, jobs_named
from bot.jobs.spec import DEFAULT_UPLOAD_LIMIT
from bot.jobs.upscale import source_frames
from storage import JobRecord, JobState, Repository
from t2v.errors import GenerationCancelled, InvalidRequest, NonFiniteOutput, VideoTooLargeError

log = logging.getLogger(__name__)

Sleep = Callable[[float], Awaitable[Any]]
UPLOAD_MARGIN = 16 * 1024  # bytes kept free under the upload limit for the multipart envelope


class Units:
    """Runs units of work on the executor and records each job's outcome."""

    def __init__(self, repo: Repository, executor: Executor, encoder: Encoder, progress: Progress,
                 outcomes: Outcomes, clock: Callable[[], datetime], *, time_limit_s: float, sleep: Sleep,
                 worker_free: Callable[[], None]) -> None:
        self._repo, self._executor, self._encoder = repo, executor, encoder
        self._progress, self._outcomes, self._clock = progress, outcomes, clock
        self.time_limit_s, self._sleep, self._worker_free = time_limit_s, sleep, worker_free
        self.on_stuck: Callable[[str], None] = _log_stuck  # a worker is stuck or broken: only a restart helps
        self.stuck: str | None = None  # why a worker is stuck or broken, once one is
        # where the media directory keeps a job's video now (bot.media's MediaStore.path): an upscale reads its
        # source there by the source job's id, wherever MEDIA_DIR was when it was queued; None: the path its row keeps
        self.kept_video: Callable[[int], Path] | None = None
        executor.on_broken = self._broken  # a worker whose CUDA context an error left unusable

    async def run(self, entries: list[RunningJob]) -> None:
        """Run the jobs as one unit and record each one's outcome (at the time limit if they are still not done);
        the worker's slot is released when its work comes back."""
        work = asyncio.ensure_future(self._render(entries))
        work.add_done_callback(lambda _: self._worker_free())  # its MP4s are encoded while the worker goes on
        try:
            outputs = await self._outputs(work, entries)
            for entry, output in zip(entries, outputs, strict=True):
                if not entry.recorded:  # else a cancel recorded it already, and its video is discarded
                    await self._outcomes.record(entry, output)
            if not work.done():
                await self._wait_for_worker(work, entries)
        except asyncio.CancelledError:  # stop(): the work stops at its next step
            work.cancel()
            raise

    async def _render(self, entries: list[RunningJob]) -> list[Frames | None]:
        """Mark the jobs running, hand those still wanted to a worker as one unit of work, and wait for their frames;
        None for a job cancelled before the unit reached the worker (recorded as never started: the others render
        without it)."""
        for entry in entries:
            if not entry.user_cancelled:
                entry.job = await self._repo.mark_running(entry.job.id, now=self._clock())
        started = [entry for entry in entries if not entry.user_cancelled]  # every start of the unit is written
        for entry in started:
            entry.submitted = True  # from here a cancel stops it as a running job (a batch member at once)
        never = [entry for entry in entries if not entry.submitted]
        if not started:
            for entry in never:
                await self._never_started(entry)
            return [None] * len(entries)
        for entry in started:
            if entry.spec is None:  # a stored row t2v no longer accepts: it fails with t2v's words (it runs alone,
                assert entry.invalid is not None and not never  # so no member of its unit is left to record)
                raise entry.invalid
            self._progress.started(entry)  # announced before any progress can arrive
        submitting = asyncio.ensure_future(self._submit(started))
        try:  # the members cancelled meanwhile are recorded (a write, a status post) while the others render
            for entry in never:
                await self._never_started(entry)
            frames = await submitting
        finally:
            submitting.cancel()  # nothing once it is done; else (a stop, a failed record) the work stops too
        if len(frames) != len(started):
            raise RuntimeError(f"the work returned {len(frames)} videos for {len(started)} jobs")
        rendered = iter(frames)
        return [next(rendered) if entry.submitted else None for entry in entries]

    async def _submit(self, entries: list[RunningJob]) -> list[Frames]:
        """The started jobs' frames, rendered by a worker as one unit of work."""
        requests = [replace(entry.spec.request, seed=entry.job.seed) for entry in entries if entry.spec is not None]
        if len(entries) > 1:
            assert entries[0].shared is not None
            style = entries[0].spec.style if entries[0].spec is not None else None  # one style per batch (batching)
            return await self._executor.submit(batch_work(requests, style), self._progress.of_batch(entries),
                                               should_cancel=entries[0].shared)
        [entry], [request] = entries, requests
        assert entry.spec is not None
        upscale = entry.spec.upscale
        if upscale is None:
            work = render_work(request, entry.spec.style)
        else:
            kept = Path(upscale.video) if self.kept_video is None else self.kept_video(upscale.job_id)
            source = await asyncio.to_thread(source_frames, kept)
            work = upscale_work(request, source, upscale.strength, entry.spec.style)
        return [await self._executor.submit(work, self._progress.of(entry), should_cancel=entry.token)]

    async def _never_started(self, entry: RunningJob) -> None:
        """A job cancelled before its unit reached the worker (since the dispatcher took it, while its start or a
        batch partner's was written) is recorded as cancelled without a start: it never ran, so it costs nothing, as
        a queued job's cancel does."""
        entry.recorded = True  # recorded here, whatever cancels it again meanwhile
        if entry.job.state == JobState.RUNNING:  # its start was written: undone (started_at cleared)
            try:
                entry.job = await self._repo.requeue(entry.job.id)
            except Exception:
                log.exception("job %d: its start could not be undone; its cancel counts as one after it started",
                              entry.job.id)
        log.info("job %d cancelled before it started", entry.job.id)
        await self._outcomes.record(entry, GenerationCancelled(0, 0))

    async def _outputs(self, work: asyncio.Future[list[Frames | None]],
                       entries: list[RunningJob]) -> list[Rendered | BaseException]:
        """Each job's video or error; JobTimedOut for every job still not done at the time limit."""
        if not await self._back_within_limit(work):
            for entry in entries:
                entry.timed_out = True
                entry.token.cancel()
            log.warning("%s still running %.0f s after it started: failed by the time limit", jobs_named(entries),
                        self.time_limit_s)
            return [JobTimedOut(self.time_limit_s)] * len(entries)
        try:
            frames = work.result()  # one per job (`_render` checks the worker's count)
        except Exception as error:
            if not isinstance(error, GenerationCancelled):
                _log_failure(f"{jobs_named(entries)} failed", error)
            return [error] * len(entries)
        rendered = [(entry, one) for entry, one in zip(entries, frames, strict=True) if one is not None]
        encodes = (self._encoder.encode(one, upload_limit(entry.job)) for entry, one in rendered)
        encoded = dict(zip((entry for entry, _ in rendered), await asyncio.gather(*encodes, return_exceptions=True),
                           strict=True))
        for entry, output in encoded.items():
            if isinstance(output, BaseException):
                _log_failure(f"encoding the video of job {entry.job.id} failed", output)
        return [_output(encoded.get(entry, GenerationCancelled(0, 0))) for entry in entries]  # not there: never ran

    async def _wait_for_worker(self, work: asyncio.Future[Any], entries: list[RunningJob]) -> None:
        """Hold the worker's slot until the timed-out work comes back; if it does not within another time limit,
        the worker is stuck (a hung kernel): say so through `on_stuck`."""
        if await self._back_within_limit(work):
            log.info("the worker of %s came back after its time limit", jobs_named(entries))
            return
        self._stuck(jobs_named(entries))
        await asyncio.wait({work})

    async def watch(self, work: asyncio.Future[Any], stop: CancelToken, what: str) -> None:
        """Work a worker was handed outside a job (its warm-up), under a job's time limit: asked to `stop` at the
        limit (it ends at its next step), and the worker stuck if it is still not back after another."""
        if await self._back_within_limit(work):
            return
        stop.cancel()
        log.warning("%s still running %.0f s after it started: asked to stop", what, self.time_limit_s)
        if not await self._back_within_limit(work):
            self._stuck(what)

    def _stuck(self, what: str) -> None:
        self._broken(f"a GPU worker has not come back from {what} {2 * self.time_limit_s:.0f} s after it started")

    def _broken(self, reason: str) -> None:
        """A worker takes no more work until the bot restarts (stuck in its work, or its GPU unusable): say why."""
        self.stuck = reason
        self.on_stuck(reason)

    async def _back_within_limit(self, work: asyncio.Future[Any]) -> bool:
        """Wait for the work, at most one time limit (on the injected timer); whether it came back."""
        timer = asyncio.ensure_future(self._sleep(self.time_limit_s))
        try:
            await asyncio.wait({work, timer}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            timer.cancel()
        return work.done()


def _output(encoded: Rendered | BaseException) -> Rendered | Exception:
    """A job's outcome as `Outcomes.record` takes it: its video, or the exception that ended it (a BaseException that
    is not an Exception made one)."""
    return encoded if isinstance(encoded, Rendered | Exception) else RuntimeError(repr(encoded))


def upload_limit(job: JobRecord) -> int:
    """The most bytes the job's MP4 may have: its channel's upload limit less the multipart envelope."""
    limit = int(job.params.get("upload_limit", DEFAULT_UPLOAD_LIMIT))
    return max(limit - UPLOAD_MARGIN, limit // 2)


def _log_failure(what: str, error: BaseException) -> None:
    """A failure the job's user is told of: a foreseen one (JobFailed, a video over the upload limit, a render that
    overflowed, a stored request no longer valid here: the user is told why) in one line, anything else with its
    traceback for the operator ("the bot's logs have the details")."""
    if isinstance(error, JobFailed | VideoTooLargeError | NonFiniteOutput | InvalidRequest):
        log.warning("%s: %s", what, error)
    else:
        log.error("%s", what, exc_info=error)


def _log_stuck(reason: str) -> None:
    """The default `on_stuck`: say it loudly."""
    log.critical("%s; restart the bot to recover the GPU", reason)
