"""The video service: checks and queues /video requests, and one dispatcher task feeds them to the GPU workers.

The database is the truth across restarts; the fair queue is rebuilt from it at start. The GPU threads only run
`bot.gpu.work`'s work (generate the frames); a CPU pool encodes the MP4s (`bot.gpu.work.Encoder`), and every database
write and every event happens on the event loop. A job still running JOB_TIME_LIMIT_S after it started is failed
then, wherever it is stuck (a step, a decode, an encode, a hung kernel); its worker's slot is held until the work
comes back, and a worker that never does is reported through `on_stuck` (the bot restarts to recover the GPU).
A free worker gets the next job in fair order together with the same-shape jobs right behind it (`bot.jobs.batching`, up
to BATCH_MAX) as one unit of work; each job of a batch still starts, progresses, ends and is recorded on its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import weakref
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any, NoReturn, Protocol

from bot.gpu.executor import CancelToken, Executor, GPUExecutor, devices_for
from bot.gpu.models import ModelInfo, ModelSource, learn
from bot.gpu.previews import Preview
from bot.gpu.work import Encoder, Frames, Rendered, batch_work, is_out_of_memory, render_work
from bot.jobs.batching import shared_token, take_batch
from bot.jobs.queue import FairQueue, QueueFull, UserQueueFull, eta_seconds
from bot.jobs.spec import (
    DEFAULT_UPLOAD_LIMIT,
    Delivered,
    NothingToCancel,
    RefusalReason,
    Refused,
    Requester,
    Submitted,
    VideoOptions,
)
from bot.jobs.upscale import read_source, read_video, upscale_work
from bot.moderation.policy import MAX_PROMPT_CHARS, PolicyGate
from bot.moderation.rules import Moderation
from bot.settings import JOB_TIME_LIMIT_S, SHUTDOWN_GRACE_S, Settings
from bot.web.metrics import Metrics
from storage import InvalidTransitionError, JobRecord, JobState, Repository, utc_now
from t2v import GenerationCancelled, InvalidRequest
from t2v.pipeline import LIMITS

log = logging.getLogger(__name__)

UPLOAD_MARGIN = 16 * 1024  # bytes kept free under the upload limit for the multipart envelope
EMA_WEIGHT = 0.3  # weight of the newest finished job in the seconds-per-job estimate
MAX_ATTEMPTS = 2  # a job interrupted by a restart runs once more, then fails
STOP_GRACE_S = SHUTDOWN_GRACE_S  # the default: how long stop() lets running jobs finish or stop (deploy/ waits 90)
CHECKPOINT_S = 10.0  # the last part of the grace (at least this long): running jobs stop at their next step and requeue
ERROR_CHARS = 500  # longest error text kept in a job row
_OUTCOMES = {"job_done": "done", "job_failed": "failed", "job_cancelled": "cancelled"}  # event -> metrics outcome
_SHORT_REASONS = {  # exception type name (t2v.video's, matched by name) -> what the user is told
    "VideoTooLargeError": "the video would not fit under Discord's upload limit",
    "SourceVideoGone": "the video to upscale was deleted before the upscale ran",
    "NoUpscaler": "no upscaler is configured",
    "WorkerLost": "its GPU worker stopped twice while rendering it",
}


class JobTimedOut(Exception):
    """A job ran past the time limit and was stopped."""

    def __init__(self, limit_s: float) -> None:
        super().__init__(f"still running {limit_s:g} s after it started")
        self.limit_s = limit_s


class JobEvents(Protocol):
    """What the Discord layer hears about jobs; called on the event loop, failures are logged and swallowed."""

    async def job_started(self, job: JobRecord) -> None: ...

    async def job_progress(self, job: JobRecord, step: int, total: int, preview: Preview | None = None) -> None: ...

    async def job_done(self, delivered: Delivered) -> None: ...

    async def job_failed(self, job: JobRecord, message: str) -> None: ...

    async def job_cancelled(self, job: JobRecord) -> None: ...


@dataclass(eq=False)
class _Running:
    """A job handed to a worker: its latest row, its cancel token, and its in-flight event call."""

    job: JobRecord
    token: CancelToken = field(default_factory=CancelToken)
    shared: CancelToken | None = None  # in a batch: the batch's token, set once every member's is; None: alone
    recorded: bool = False  # its outcome is being recorded (a batch member may be cancelled before the batch ends)
    user_cancelled: bool = False
    timed_out: bool = False  # stopped for running past the time limit
    finished: bool = False  # no more progress events once the outcome is being recorded
    event: asyncio.Task[None] | None = None  # job_started or the latest job_progress call
    preview: Preview | None = None  # the newest live preview, shown with the next progress event
    task: asyncio.Task[None] | None = None


class VideoService:
    """Accepts, queues, runs and cancels video jobs; talks to Discord only through `JobEvents`."""

    def __init__(
        self,
        repo: Repository,
        gate: PolicyGate,
        queue: FairQueue[JobRecord],
        executor: Executor,
        events: JobEvents,
        *,
        clock: Callable[[], datetime] = utc_now,
        seconds_per_job: float = 5.0,
        max_steps: int = LIMITS["steps"][1],
        max_frames: int = LIMITS["frames"][1],
        moderation: Moderation | None = None,
        shutdown_grace_s: float = STOP_GRACE_S,
        job_time_limit_s: float = JOB_TIME_LIMIT_S,
        metrics: Metrics | None = None,
        batch_max: int = 1,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
        encoder: Encoder | None = None,
        compile_status: Callable[[], dict[str, Any]] | None = None,
    ) -> None:
        self._repo, self._gate, self._queue, self._executor = repo, gate, queue, executor
        self.moderation = moderation  # blocks, channel rules and quotas; None: none of them apply
        self.model = ModelInfo()  # sizes, default frames and upscaler of the loaded models, learned in start()
        self._admitting: weakref.WeakValueDictionary[int, asyncio.Lock] = weakref.WeakValueDictionary()
        self._events, self._clock = events, clock
        self.seconds_per_job = seconds_per_job  # learned from finished jobs (exponential moving average)
        self.max_steps, self.max_frames = max_steps, max_frames
        self.shutdown_grace_s, self.job_time_limit_s = shutdown_grace_s, job_time_limit_s
        self._running: dict[int, _Running] = {}  # job id -> entry, from pop_next until its outcome is recorded
        self._units = 0  # units of work (a job or a batch) handed to the workers and not yet back from them
        self.batch_max = batch_max  # jobs per unit of work; 1 (here the default) never batches: BATCH_MAX sets it
        self._reserved: Counter[int] = Counter()  # user id -> submits between their cap check and their push
        self._wake = asyncio.Event()
        executor.on_capacity = self._wake.set  # a lost Ray worker that is back can take the next job
        self._dispatcher: asyncio.Task[None] | None = None
        self._stopping = False
        self.metrics = metrics or Metrics()  # requests by outcome, queue, timings; served at /metrics
        self.metrics.track_queue(lambda: len(self._queue), lambda: len(self._running))
        self._sleep = sleep  # the time limit's timer (tests pass one they fire by hand)
        self._encoder = encoder or Encoder()
        self.on_stuck: Callable[[str], None] = _log_stuck  # a worker never came back from a timed-out job
        self.stuck: str | None = None  # why a worker is stuck, once one is
        self.compile_status = compile_status  # the workers' background compiles (bot.gpu.compiles), when visible here

    @property
    def gate(self) -> PolicyGate:
        """The prompt gate; moderators' denylist edits replace its entries in place."""
        return self._gate

    @property
    def available(self) -> bool:
        """Whether new requests can be accepted."""
        return self.unavailable_reason is None

    @property
    def unavailable_reason(self) -> str | None:
        """Why requests are refused (model failed to load, shutting down), or None."""
        if self._executor.load_error is not None:
            return f"the model failed to load ({self._executor.load_error})"
        if self._stopping:
            return "the bot is shutting down"
        return None

    @property
    def workers(self) -> int:
        """GPU workers with the model loaded and taking jobs: 0 before start(), after stop(), or if loading failed."""
        return 0 if self._dispatcher is None or self._stopping else self._executor.workers

    # --- lifecycle --------------------------------------------------------------------------------------------

    async def start(self) -> None:
        """Load the model on every device, recover jobs from the database, and start the dispatcher."""
        if self._dispatcher is not None:
            raise RuntimeError("VideoService.start() was already called")
        try:
            await self._executor.start()
        except RuntimeError as error:
            if "already" not in str(error):
                raise
            log.debug("the executor was started by the caller")
        self.model = await learn(self._executor)
        await self._recover_interrupted()
        queued = await self._repo.list_jobs([JobState.QUEUED])
        self._queue.restore(sorted(queued, key=lambda job: (job.attempts == 0, job.id)))  # interrupted ones first
        self._dispatcher = asyncio.create_task(self._dispatch(), name="video-dispatcher")
        self._wake.set()

    async def stop(self) -> None:
        """Stop taking and dispatching jobs; running ones may finish within the grace, else stop at their next step
        (they run again after a restart); queued ones stay queued. Then close the workers."""
        if self._stopping:
            return
        self._stopping = True
        if self._dispatcher is not None:
            self._dispatcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._dispatcher
        tasks = {entry.task for entry in self._running.values() if entry.task is not None}
        finish_s = max(self.shutdown_grace_s - CHECKPOINT_S, 0.0)
        if tasks and finish_s:
            log.info("letting %d running jobs finish for up to %.0f s", len(tasks), finish_s)
            _, tasks = await asyncio.wait(tasks, timeout=finish_s)
        for entry in self._running.values():
            entry.token.cancel()
        if tasks:
            _, late = await asyncio.wait(tasks, timeout=CHECKPOINT_S)
            for task in late:
                log.warning("%s did not stop within the grace; it will be retried after restart", task.get_name())
                task.cancel()
        await self._executor.close()
        await asyncio.to_thread(self._encoder.close)
        log.info("video service stopped; %d queued jobs wait for the next start", len(self._queue))

    async def _recover_interrupted(self) -> None:
        """Jobs left `running` by a crash: cancel if asked, retry once, else fail them ("interrupted twice")."""
        for job in await self._repo.list_jobs([JobState.RUNNING]):
            if job.cancel_requested:
                await self._emit("job_cancelled", await self._repo.mark_cancelled(job.id, now=self._clock()))
            elif job.attempts < MAX_ATTEMPTS:
                await self._repo.requeue(job.id)
                log.warning("job %d was interrupted by a restart; running it again", job.id)
            else:
                record = await self._repo.mark_failed(job.id, "interrupted twice", now=self._clock())
                log.warning("job %d was interrupted twice; giving up on it", job.id)
                await self._emit("job_failed", record, f"Sorry — job #{job.id} was interrupted twice by bot restarts "
                                                       "and was dropped. Nothing was charged.")

    # --- requests ---------------------------------------------------------------------------------------------

    async def submit(self, requester: Requester, options: VideoOptions) -> Submitted:
        """Queue a request (at the loaded model's size for its aspect), or log it as `refused` and raise Refused."""
        options = self.model.sized(options)
        async with self._admission(requester.user_id):  # a user's quota is counted and charged one request at a time
            refusal = await self._refusal(requester, options)
            if refusal is not None:
                await self._refuse(requester, options, *refusal)
            seed = options.seed if options.seed is not None else secrets.randbelow(2**32)
            self._reserved[requester.user_id] += 1
            try:
                job = await self._repo.create_job(**self._row(requester, options), seed=seed,
                                                  interaction_token=requester.interaction_token, now=self._clock())
                position = self._queue.push(job)  # the caps were checked with this job reserved
            finally:
                self._reserved[requester.user_id] -= 1
                if not self._reserved[requester.user_id]:
                    del self._reserved[requester.user_id]
        self._wake.set()
        self.metrics.record_outcome("accepted")
        now = self._clock()
        return Submitted(job, position, now + timedelta(seconds=self._eta_seconds(position, now)))

    def _admission(self, user_id: int) -> asyncio.Lock:
        """The user's admission lock (kept while some submit holds or awaits it)."""
        lock = self._admitting.get(user_id)
        if lock is None:
            lock = self._admitting[user_id] = asyncio.Lock()
        return lock

    async def _refusal(self, requester: Requester, options: VideoOptions) -> tuple[RefusalReason, str, str] | None:
        """(reason, logged, message) of the first failed check: block/channel, prompt/options, quota, capacity."""
        moderation = self.moderation
        refusal = None if moderation is None else await moderation.access_refusal(requester)
        refusal = refusal or self._policy_refusal(requester.user_id, options)
        if refusal is None and moderation is not None:
            refusal = await moderation.quota_refusal(requester, options.cost)
        return refusal or self._capacity_refusal(requester.user_id)

    def _policy_refusal(self, user_id: int, options: VideoOptions) -> tuple[RefusalReason, str, str] | None:
        """Why the prompt or the options are refused, or None."""
        verdict = self._gate.check_prompt(options.prompt)
        if not verdict.allowed:
            assert verdict.reason is not None
            if verdict.reason == "denylist":
                log.info("prompt of user %d refused by denylist entry %r", user_id, verdict.matched)
                return "denylist", f"denylist:{verdict.category}", verdict.message
            return verdict.reason, verdict.reason, verdict.message
        if len(options.negative) > MAX_PROMPT_CHARS:
            return "too_long", "too_long", (f"Your negative prompt is {len(options.negative)} characters long; "
                                            f"the limit is {MAX_PROMPT_CHARS}. Please shorten it.")
        for name, value, cap in (("steps", options.steps, self.max_steps), ("frames", options.frames, self.max_frames)):
            if value > cap:
                return "invalid", f"invalid:{name}", f"{name}={value} is above this server's limit of {cap}."
        return None

    def _capacity_refusal(self, user_id: int) -> tuple[RefusalReason, str, str] | None:
        """Why the service cannot take the request now (down, user at the cap, queue full), or None."""
        if not self.available:
            message = f"Video generation is unavailable right now: {self.unavailable_reason}."
            return "unavailable", "unavailable", message
        pending = self._queue.pending_count(user_id) + self._reserved[user_id]
        if pending >= self._queue.per_user_cap:
            message = str(UserQueueFull(user_id, self._queue.per_user_cap))
            return "user_cap", "user_cap", f"{message[0].upper()}{message[1:]}. Wait for one to finish or cancel one."
        if len(self._queue) + self._reserved.total() >= self._queue.global_cap:
            message = str(QueueFull(self._queue.global_cap))
            return "global_cap", "global_cap", f"{message[0].upper()}{message[1:]}."
        return None

    async def _refuse(
        self, requester: Requester, options: VideoOptions, reason: RefusalReason, logged: str, message: str
    ) -> NoReturn:
        """Write the refused row and raise Refused."""
        job = await self._repo.create_job(**self._row(requester, options), refusal_reason=logged, now=self._clock())
        self.metrics.record_outcome(f"refused:{reason}")
        raise Refused(reason, message, job.id)

    @staticmethod
    def _row(requester: Requester, options: VideoOptions) -> dict[str, Any]:
        """The job-row fields shared by accepted and refused requests."""
        return {
            "user_id": requester.user_id,
            "user_name": requester.user_name[:100],
            "channel_id": requester.channel_id,
            "guild_id": requester.guild_id,
            "prompt": options.prompt,
            "negative_prompt": options.negative,
            "params": {**options.to_params(), "upload_limit": requester.upload_limit},
            "application_id": requester.application_id,
        }

    def _eta_seconds(self, position: int, now: datetime) -> float:
        """Seconds until the job at `position` should be done, from the learned seconds per job."""
        workers = max(self._executor.workers, 1)
        remaining = 0.0
        if self._units >= workers:  # every worker busy: the first free one frees up soonest
            remaining = min((self._remaining(entry, now) for entry in self._running.values()), default=0.0)
        return eta_seconds(position, self.seconds_per_job, remaining, workers)

    def _remaining(self, entry: _Running, now: datetime) -> float:
        """Expected seconds left for a running job."""
        started = entry.job.started_at or now
        return max(self.seconds_per_job - (now - started).total_seconds(), 0.0)

    async def cancel(self, user_id: int, job_id: int | None = None) -> JobRecord:
        """Cancel the user's job (their newest active one when job_id is None); raise NothingToCancel."""
        job = self._newest_active(user_id) if job_id is None else await self._own_active(user_id, job_id)
        entry = self._running.get(job.id)
        if entry is None:
            self._queue.cancel(job.id)
            try:
                record = await self._repo.mark_cancelled(job.id, now=self._clock())
            except InvalidTransitionError:
                raise NothingToCancel(f"Job #{job.id} has already finished.") from None
            log.info("job %d cancelled by its user while queued", job.id)
            await self._emit("job_cancelled", record)
            return record
        entry.user_cancelled = True
        entry.token.cancel()
        log.info("job %d cancel requested by its user while running", job.id)
        if self._batch_runs_on_without(entry):
            return await self._drop_member(entry)
        try:
            return await self._repo.request_cancel(job.id)
        except InvalidTransitionError:  # it finished while we wrote the flag
            return await self._repo.get_job(job.id) or entry.job

    def _newest_active(self, user_id: int) -> JobRecord:
        """The user's newest queued or running job not already being cancelled."""
        jobs = [job for job, _ in self._queue.jobs_of(user_id)]
        jobs += [e.job for e in self._running.values() if e.job.user_id == user_id and not e.user_cancelled]
        if not jobs:
            raise NothingToCancel("You have no queued or running videos to cancel.")
        return max(jobs, key=lambda job: job.id)

    async def _own_active(self, user_id: int, job_id: int) -> JobRecord:
        """The job if it exists, belongs to the user and is still active; else NothingToCancel saying which."""
        job = await self._repo.get_job(job_id)
        if job is None:
            raise NothingToCancel(f"There is no job #{job_id}.")
        if job.user_id != user_id:
            raise NothingToCancel(f"Job #{job_id} is not yours; you can only cancel your own videos.")
        if not job.is_active:
            raise NothingToCancel(f"Job #{job_id} is already {job.state}.")
        return job

    def jobs_of(self, user_id: int) -> list[tuple[JobRecord, int | None]]:
        """The user's running jobs (position None) then queued jobs with their 1-based positions."""
        running = sorted((e.job for e in self._running.values() if e.job.user_id == user_id), key=lambda j: j.id)
        return [(job, None) for job in running] + [(job, pos) for job, pos in self._queue.jobs_of(user_id)]

    # --- dispatching ------------------------------------------------------------------------------------------

    async def _dispatch(self) -> None:
        """The one dispatcher task: whenever woken, start queued jobs in fair order while a worker is free, with
        the same-shape jobs right behind each (up to `batch_max`) in the same unit of work."""
        while True:
            await self._wake.wait()
            self._wake.clear()
            while not self._stopping and self._units < self._executor.workers:
                jobs = take_batch(self._queue, self.batch_max)
                if not jobs:
                    break
                entries = [_Running(job) for job in jobs]
                if len(entries) > 1:
                    shared = shared_token([entry.token for entry in entries])
                    for entry in entries:
                        entry.shared = shared
                self._running.update((entry.job.id, entry) for entry in entries)
                self._units += 1
                name = f"video-job-{'-'.join(str(job.id) for job in jobs)}"
                task = asyncio.create_task(self._run_batch(entries), name=name)
                for entry in entries:
                    entry.task = task

    async def _run_batch(self, entries: list[_Running]) -> None:
        """Run jobs on a worker as one unit and record each one's outcome (at the time limit if they are still not
        done); the worker's slot is released when its work comes back. The dispatcher survives any failure."""
        work = asyncio.ensure_future(self._render(entries))
        work.add_done_callback(self._worker_free)  # its MP4s are encoded while the worker takes the next job
        try:
            outputs = await self._outputs(work, entries)
            for entry, output in zip(entries, outputs, strict=True):
                if not entry.recorded:  # else a cancel recorded it already, and its video is discarded
                    await self._record(entry, output)
            if not work.done():
                await self._wait_for_worker(work, entries)
        except asyncio.CancelledError:  # stop(): the work stops at its next step
            work.cancel()
            raise

    def _worker_free(self, work: asyncio.Future[Any]) -> None:
        """A unit's work came back (frames, an error, or cancelled): its worker can take the next job."""
        self._units -= 1
        self._wake.set()

    async def _outputs(self, work: asyncio.Future[list[Frames]], entries: list[_Running]) -> list[Rendered | Exception]:
        """Each job's video or error; JobTimedOut for every job still not done at the time limit."""
        timer = asyncio.ensure_future(self._sleep(self.job_time_limit_s))
        try:
            await asyncio.wait({work, timer}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            timer.cancel()
        if not work.done():
            for entry in entries:
                entry.timed_out = True
                entry.token.cancel()
            log.warning("%s still running %.0f s after it started: failed by the time limit", _jobs_named(entries),
                        self.job_time_limit_s)
            return [JobTimedOut(self.job_time_limit_s)] * len(entries)
        try:
            frames = work.result()
            if len(frames) != len(entries):
                raise RuntimeError(f"the work returned {len(frames)} videos for {len(entries)} jobs")
        except Exception as error:
            if not isinstance(error, GenerationCancelled):
                log.exception("%s failed", _jobs_named(entries))
            return [error] * len(entries)
        limits = [_upload_limit(entry.job) for entry in entries]
        encodes = (self._encoder.encode(one, limit) for one, limit in zip(frames, limits, strict=True))
        encoded = await asyncio.gather(*encodes, return_exceptions=True)
        return [output if isinstance(output, Rendered | Exception) else RuntimeError(repr(output))
                for output in encoded]

    async def _wait_for_worker(self, work: asyncio.Future[Any], entries: list[_Running]) -> None:
        """Hold the worker's slot until the timed-out work comes back; if it does not within another time limit,
        the worker is stuck (a hung kernel): say so through `on_stuck`."""
        timer = asyncio.ensure_future(self._sleep(self.job_time_limit_s))
        try:
            await asyncio.wait({work, timer}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            timer.cancel()
        if work.done():
            log.info("the worker of %s came back after its time limit", _jobs_named(entries))
            return
        self.stuck = (f"a GPU worker has not come back from {_jobs_named(entries)} "
                      f"{2 * self.job_time_limit_s:.0f} s after it started")
        self.on_stuck(self.stuck)
        await asyncio.wait({work})

    async def _record(self, entry: _Running, output: Rendered | Exception) -> None:
        """Record one job's outcome (delivered, cancelled or failed), then let the queue forget it."""
        entry.recorded = True
        try:
            if isinstance(output, GenerationCancelled):
                await self._cancelled(entry)
            elif isinstance(output, Exception):
                await self._failed(entry, output)
            else:
                await self._delivered(entry, output)
        except Exception:
            log.exception("job %d: recording its outcome failed", entry.job.id)
        finally:
            self._queue.finish(entry.job.id)
            del self._running[entry.job.id]
            self._wake.set()

    @staticmethod
    def _batch_runs_on_without(entry: _Running) -> bool:
        """Whether the job is a started member of a batch whose other members are not all cancelled."""
        shared = entry.shared
        return (shared is not None and not shared.is_set() and not entry.recorded
                and entry.job.state == JobState.RUNNING)

    async def _drop_member(self, entry: _Running) -> JobRecord:
        """Record a batch member cancelled while the others run on: cancelled now; its video is discarded."""
        await self._record(entry, GenerationCancelled(0, 0))
        return await self._repo.get_job(entry.job.id) or entry.job

    async def _render(self, entries: list[_Running]) -> list[Frames]:
        """Mark the jobs running, hand them to a worker as one unit of work, and wait for their frames."""
        requests = []
        for entry in entries:
            job = entry.job = await self._repo.mark_running(entry.job.id, now=self._clock())
            options = VideoOptions.from_params(job.prompt, job.negative_prompt, job.params)
            requests.append(options.to_request(job.seed if job.seed is not None else secrets.randbelow(2**32)))
            entry.event = asyncio.create_task(self._emit("job_started", job))  # before any progress can arrive
        if len(entries) > 1:
            assert entries[0].shared is not None
            return await self._executor.submit(batch_work(requests), self._progress_of(entries),
                                               should_cancel=entries[0].shared)
        [entry], [request] = entries, requests
        if options.upscale is None:
            work = render_work(request)
        else:
            source = await asyncio.to_thread(_source_frames, Path(options.upscale.video))
            work = upscale_work(request, options.upscale, source)
        return [await self._executor.submit(work, on_progress=partial(self._on_progress, entry),
                                            should_cancel=entry.token)]

    def _progress_of(self, entries: list[_Running]) -> Callable[..., None]:
        """A batch's progress callback: `(step, total)` for every member, `(step, total, preview, i)` for member i."""

        def on_progress(step: int, total: int, preview: Preview | None = None, member: int | None = None) -> None:
            for entry in entries if member is None else (entries[member],):
                self._on_progress(entry, step, total, preview)

        return on_progress

    def _on_progress(self, entry: _Running, step: int, total: int, preview: Preview | None = None) -> None:
        """Forward a step to the events; skip it while the previous call runs, except the last step, which waits.

        A live preview is kept, not forwarded: it goes with the next progress event (the delivery decides whether
        that event edits the status message at all).
        """
        previous = entry.event
        if entry.finished:
            return
        if preview is not None:
            entry.preview = preview
            return
        self._check_time_limit(entry)
        if previous is not None and not previous.done():
            if step < total:
                return
            entry.event = asyncio.create_task(self._emit_after(previous, entry.job, step, total))
            return
        shown = () if entry.preview is None else (entry.preview,)
        entry.event = asyncio.create_task(self._emit("job_progress", entry.job, step, total, *shown))

    def _check_time_limit(self, entry: _Running) -> None:
        """Stop a job at its next step once it has run past the time limit (checked on each step, on the loop)."""
        started = entry.job.started_at
        if entry.timed_out or started is None:
            return
        if (self._clock() - started).total_seconds() > self.job_time_limit_s:
            entry.timed_out = True
            entry.token.cancel()
            log.warning("job %d ran past the %.0f s time limit; stopping it", entry.job.id, self.job_time_limit_s)

    async def _emit_after(self, previous: asyncio.Task[None], job: JobRecord, step: int, total: int) -> None:
        """Emit the final progress step once the event call before it has finished."""
        await previous
        await self._emit("job_progress", job, step, total)

    async def _settle_events(self, entry: _Running) -> None:
        """Stop progress events and wait for the one in flight, so the outcome event comes last."""
        entry.finished = True
        if entry.event is not None:
            await entry.event

    async def _delivered(self, entry: _Running, output: Rendered) -> None:
        """Record a finished video and hand it to the events (or honour a cancel that came during the last step)."""
        if entry.user_cancelled:
            await self._cancelled(entry)
            return
        await self._settle_events(entry)
        job = await self._repo.mark_done(entry.job.id, seed=output.seed, gpu_s=output.gpu_s,
                                         output_bytes=len(output.video), now=self._clock())
        self.seconds_per_job += EMA_WEIGHT * (output.source.wall_s - self.seconds_per_job)
        log.info("job %d done: %d bytes, %.1f GPU s", job.id, len(output.video), output.gpu_s)
        await self._emit("job_done", Delivered(job, output.video, output.seed, output.notes, output.gpu_s,
                                               shrink=output.smaller))

    async def _cancelled(self, entry: _Running) -> None:
        """Record a stopped job: cancelled if its user asked, failed if it ran too long, else queued (shutdown)."""
        if entry.timed_out and not entry.user_cancelled:
            await self._failed(entry, JobTimedOut(self.job_time_limit_s))
            return
        await self._settle_events(entry)
        if self._stopping and not entry.user_cancelled:
            await self._repo.requeue(entry.job.id)
            log.info("job %d stopped by shutdown; it will run after the next start", entry.job.id)
            return
        job = await self._repo.mark_cancelled(entry.job.id, now=self._clock())
        log.info("job %d cancelled while running", job.id)
        await self._emit("job_cancelled", job)

    async def _failed(self, entry: _Running, error: Exception) -> None:
        """Record a failed job and apologise through the events."""
        await self._settle_events(entry)
        job = await self._repo.mark_failed(entry.job.id, f"{type(error).__name__}: {error}"[:ERROR_CHARS],
                                           now=self._clock())
        await self._emit("job_failed", job, f"Sorry — job #{job.id} failed ({_short_reason(error)}). "
                                            "Nothing was charged.")

    async def _emit(self, name: str, *args: Any) -> None:
        """Await one JobEvents method; its failures are logged, never raised into the service."""
        self._measure(name, args[0])
        try:
            await getattr(self._events, name)(*args)
        except Exception:
            log.exception("JobEvents.%s failed", name)

    def _measure(self, name: str, subject: Any) -> None:
        """Metrics of a job event: the queue wait when a job starts, the outcome (and GPU time) when it ends."""
        if name == "job_started" and subject.started_at is not None:
            self.metrics.observe_queue_wait((subject.started_at - subject.created_at).total_seconds())
        elif name in _OUTCOMES:
            self.metrics.record_outcome(_OUTCOMES[name])
            if isinstance(subject, Delivered):
                self.metrics.observe_generation(subject.gpu_s)


def _upload_limit(job: JobRecord) -> int:
    """The most bytes the job's MP4 may have: its channel's upload limit less the multipart envelope."""
    limit = int(job.params.get("upload_limit", DEFAULT_UPLOAD_LIMIT))
    return max(limit - UPLOAD_MARGIN, limit // 2)


def _source_frames(path: Path) -> Any:
    """The frames of the kept MP4 an upscale re-renders (CPU work, off the loop and the GPU threads)."""
    return read_video(read_source(path))


def _log_stuck(reason: str) -> None:
    """The default `on_stuck`: say it loudly."""
    log.critical("%s; restart the bot to recover the GPU", reason)


def _jobs_named(entries: list[_Running]) -> str:
    """'job 7', or 'jobs 7, 8' for a batch."""
    ids = ", ".join(str(entry.job.id) for entry in entries)
    return f"job {ids}" if len(entries) == 1 else f"jobs {ids}"


def _short_reason(error: Exception) -> str:
    """A few words for the user about why a job failed."""
    if isinstance(error, InvalidRequest):
        return f"invalid settings: {error}"
    if isinstance(error, JobTimedOut):
        return f"it was still rendering {error.limit_s:g} s after it started, past the time limit"
    if is_out_of_memory(error):
        return "the GPU ran out of memory"
    return _SHORT_REASONS.get(type(error).__name__, "an internal error; the bot's logs have the details")


def build_executor(settings: Settings, loop: asyncio.AbstractEventLoop | None = None) -> Executor:
    """The executor T2V_EXECUTOR names, each worker loading T2V_MODEL (and UPSCALE_MODEL, if set): `local`, one
    thread per device of T2V_DEVICE; `ray`, one actor per GPU (or RAY_WORKER_RESOURCE unit) of the Ray cluster."""
    if settings.t2v_executor == "ray":
        from bot.gpu.ray_executor import RayExecutor  # lazily: ray is an optional extra

        return RayExecutor.from_settings(settings, loop)
    return GPUExecutor(devices_for(settings.t2v_device), ModelSource.of(settings), loop)
