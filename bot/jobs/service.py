"""The video service: the jobs' objects wired together, and their life — start, recovery after a restart, stop.

    /video ─▶ Admission ─▶ FairQueue ─▶ Dispatcher ─▶ Units ─▶ executor (bot.gpu) ─▶ Encoder ─▶ Outcomes ─▶ JobEvents
                                                        └──── Progress (steps, previews, the time limit) ───┘
    /cancel ─▶ Cancels

The database is the truth across restarts; the fair queue is rebuilt from it at start, and a job a crash left
`running` runs once more (then fails). Every database write and every event happens on the event loop; the GPU
threads only render (bot.gpu.work).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import datetime
from typing import Any, NoReturn

from bot.errors import SettingsError
from bot.gpu.executor import CancelToken, Executor
from bot.gpu.models import ModelInfo, learn
from bot.gpu.work import warm_up_work
from bot.jobs.admission import Admission
from bot.jobs.cancels import Cancels, Here, Moderates
from bot.jobs.dispatcher import Dispatcher
from bot.jobs.encoder import Encoder
from bot.jobs.eta import HISTORY, Eta
from bot.jobs.events import Announcer, JobEvents, Meter, Submitted, cancelled_event
from bot.jobs.outcomes import Outcomes
from bot.jobs.progress import Progress
from bot.jobs.queue import FairQueue
from bot.jobs.running import Running
from bot.jobs.spec import JobSpec, Queued, Requester
from bot.jobs.units import Units
from bot.moderation.gates import ServerGates
from bot.moderation.policy import PolicyGate
from bot.moderation.rules import Moderation
from bot.moderation.styles import ServerStyles
from bot.settings import JOB_TIME_LIMIT_S, SHUTDOWN_GRACE_S
from storage import GLOBAL, JobRecord, JobState, Repository, utc_now
from t2v.errors import GenerationCancelled, InvalidRequest, WeightsError
from t2v.request import LIMITS
from t2v.sizes import frame_text

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 2  # a job interrupted by a restart runs once more, then fails
STOP_GRACE_S = SHUTDOWN_GRACE_S  # the default: how long stop() lets running jobs finish or stop (deploy/ waits 90)
CHECKPOINT_S = 10.0  # the last part of the grace (at least this long): running jobs stop at their next step and requeue


class VideoService:
    """Accepts, queues, runs and cancels video jobs; talks to Discord only through `JobEvents`."""

    def __init__(
        self,
        repo: Repository,
        gate: PolicyGate | ServerGates,
        queue: FairQueue[Queued],
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
        metrics: Meter | None = None,
        batch_max: int = 1,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
        monotonic: Callable[[], float] = time.monotonic,
        encoder: Encoder | None = None,
        compile_status: Callable[[], dict[str, Any]] | None = None,
    ) -> None:
        self._repo, self._queue, self._executor, self._clock = repo, queue, executor, clock
        self.model = ModelInfo()  # sizes, default frames and upscaler of the loaded models, learned in start()
        self.shutdown_grace_s = shutdown_grace_s
        self.compile_status = compile_status  # the workers' background compiles (bot.gpu.compiles), when visible here
        self._stopping = False
        self._warm_ups: list[tuple[asyncio.Future[float | None], CancelToken]] = []
        self._warm_up_began = clock()  # set again when the warm-up starts
        self.warm_up: asyncio.Task[None] | None = None  # the workers' warm-up renders (GPUs), logged when they end
        self._encoder = encoder or Encoder()
        self.announce = Announcer(events, metrics)
        self.eta = Eta(seconds_per_job)
        self.running = Running(queue)
        self.dispatcher = Dispatcher(queue, self.running, executor, batch_max=batch_max)
        self.admission = Admission(repo, gate, queue, self.announce, clock, running=self.running, moderation=moderation,
                                   max_steps=max_steps, max_frames=max_frames, eta=self._eta,
                                   unavailable=lambda: self.unavailable_words, wake=self.dispatcher.wake)
        self.outcomes = Outcomes(repo, self.running, self.announce, self.eta, clock, stopping=lambda: self._stopping,
                                 time_limit_s=job_time_limit_s)
        self.units = Units(repo, executor, self._encoder, Progress(self.announce, job_time_limit_s, monotonic),
                           self.outcomes, clock, time_limit_s=job_time_limit_s, sleep=sleep,
                           worker_free=self.dispatcher.worker_free)
        self.cancels = Cancels(repo, queue, self.running, self.outcomes, self.announce, clock)
        if metrics is not None:
            metrics.track_queue(lambda: len(self._queue), lambda: len(self.running))

    @property
    def moderation(self) -> Moderation | None:
        """Blocks, channel rules and quotas; None: none of them apply."""
        return self.admission.moderation

    @property
    def styles(self) -> ServerStyles:
        """The styles the workers loaded, and those each server turned off."""
        return self.admission.styles

    @property
    def gate(self) -> ServerGates:
        """Each server's prompt gate; moderators' denylist edits replace its entries in place."""
        return self.admission.gate

    @property
    def available(self) -> bool:
        """Whether new requests can be accepted."""
        return self.unavailable_reason is None

    @property
    def unavailable_reason(self) -> str | None:
        """Why requests are refused (model failed to load, shutting down), or None; with the error, for the health
        report and the log."""
        if self._executor.load_error is not None:
            return f"the model failed to load ({self._executor.load_error})"
        if self._stopping:
            return "the bot is shutting down"
        return None

    @property
    def unavailable_words(self) -> str | None:
        """unavailable_reason as members read it: no error text (docs/voice.md)."""
        if self._executor.load_error is not None:
            return "the video model did not load; the bot's operator can see why in the bot's log"
        return self.unavailable_reason

    @property
    def workers(self) -> int:
        """GPU workers with the model loaded and taking jobs: 0 before start(), after stop(), or if loading failed."""
        return self._executor.workers if self.dispatcher.running and not self._stopping else 0

    @property
    def stuck(self) -> str | None:
        """Why a GPU worker serves no more until the bot restarts (it never came back from a timed-out job, or an error
        left its GPU's CUDA context unusable), once one does."""
        return self.units.stuck

    @property
    def on_stuck(self) -> Callable[[str], None]:
        return self.units.on_stuck

    @on_stuck.setter
    def on_stuck(self, callback: Callable[[str], None]) -> None:
        """Called once a worker is stuck (python -m bot then stops with status 1 for its supervisor)."""
        self.units.on_stuck = callback

    # --- requests ---------------------------------------------------------------------------------------------

    async def submit(self, requester: Requester, spec: JobSpec) -> Submitted:
        """Queue the request, or log it as refused and raise Refused (bot.jobs.admission)."""
        return await self.admission.admit(requester, spec)

    async def precheck(self, requester: Requester, spec: JobSpec) -> None:
        """Raise Refused when `spec` would be refused whatever prompt it is given (bot.jobs.admission)."""
        await self.admission.precheck(requester, spec)

    async def refuse_blank(self, requester: Requester, prompt: str, negative: str = "", *, private: bool) -> NoReturn:
        """Log a blank prompt (which makes no spec) as refused and raise Refused, as the gate words it."""
        await self.admission.refuse_blank(requester, prompt, negative, private=private)

    async def cancel(self, user_id: int, job_id: int | None = None, here: Here | None = None, *,
                     moderates: Moderates | None = None) -> JobRecord:
        """Cancel the user's job (their newest active one `here` when job_id is None), or job_id of a member where
        `moderates` says the user moderates it (bot.jobs.cancels); raise NothingToCancel."""
        return await self.cancels.cancel(user_id, job_id, here, moderates=moderates)

    def servers_with_jobs(self) -> set[int]:
        """The servers of the queued and running jobs (direct messages' none)."""
        jobs = [queued.job for queued in self._queue.service_order()] + [entry.job for entry in self.running]
        return {job.guild_id for job in jobs if job.guild_id is not None}

    async def cancel_server(self, guild_id: int) -> tuple[int, int]:
        """Cancel the jobs of a server the bot is no longer in: (queued, running) counts (bot.jobs.cancels)."""
        return await self.cancels.cancel_server(guild_id)

    async def cancel_blocked(self, user_id: int, guild_id: int) -> tuple[int, int]:
        """Cancel the jobs of a user just blocked in a server (GLOBAL: everywhere): (queued, running) counts. A request
        of theirs that passed its block check before the block was written is queued first, and so cancelled too."""
        async with self.admission.turn(user_id):
            return await self.cancels.cancel_blocked(user_id, guild_id)

    def jobs_of(self, user_id: int) -> list[tuple[JobRecord, int | None]]:
        """The user's running jobs (position None) then queued jobs with their 1-based positions."""
        running = [(entry.job, None) for entry in self.running.of_user(user_id)]
        return running + [(queued.job, position) for queued, position in self._queue.jobs_of(user_id)]

    def places(self) -> list[tuple[JobRecord, int, datetime]]:
        """Every queued job with its 1-based place and when it should be done, in the order they will be served."""
        now = self._clock()
        return [(queued.job, position, self._eta(position, now))
                for position, queued in enumerate(self._queue.service_order(), 1)]

    def _eta(self, position: int, now: datetime) -> datetime:
        started = [entry.job.started_at or now for entry in self.running]  # and a warm-up as about one job:
        started += [self._warm_up_began for work, _ in self._warm_ups if not work.done()]
        return self.eta.when(position, now, workers=self._executor.workers, all_busy=self.dispatcher.all_busy,
                             started=started)

    # --- lifecycle --------------------------------------------------------------------------------------------

    async def start(self) -> None:
        """Load the model on every device, recover jobs from the database, and start the dispatcher."""
        if self.dispatcher.running:
            raise RuntimeError("VideoService.start() was already called")
        if not self._executor.started:  # its caller may have started it (benchmarks, tests)
            await self._executor.start()
        error = self._executor.load_error
        if isinstance(error, SettingsError):  # a required style does not fit the model
            raise error
        if isinstance(error, WeightsError):  # it would stay up serving nothing until the operator fixes the weights
            raise SettingsError([f"no device could load the model, so the bot stops rather than serve no videos: "
                                 f"{error}"]) from None
        self.model = await learn(self._executor)
        self.eta.seed(await self._repo.recent_render_seconds(HISTORY))
        self.styles.offer({style.name: style.description for style in self.model.styles})
        await self._recover_interrupted()
        queued = await self._repo.list_jobs([JobState.QUEUED])
        interrupted_first = sorted(queued, key=lambda job: (job.attempts == 0, job.id))
        restored = [await self._sized(Queued.of_job(job)) for job in interrupted_first]
        self._queue.restore(self._within_caps(queued) for queued in restored)
        await self._cancel_blocked_since()
        if self.model.warms_up:
            self.warm_up = self._start_warm_up()
        self.dispatcher.start(self.units.run)

    def sized(self, spec: JobSpec) -> JobSpec:
        """`spec` at the size the models loaded now give its aspect (an upscale's: the upscaler's), as a request asked
        now gets: a job made before T2V_MODEL (or UPSCALE_MODEL) was switched to a checkpoint of other sizes
        (zeroscope's 576×320, say), restored at a start or rerolled, does not render at the old model's size, which
        the new one was not trained for and may not have the memory for. A model that does not say its sizes, or an
        aspect it has none for, leaves the spec as it was."""
        sizes = self.model.sizes if spec.upscale is None else self.model.upscale_sizes or {}
        size = sizes.get(spec.aspect)
        if size is None or size == (spec.request.width, spec.request.height):
            return spec
        return replace(spec, request=replace(spec.request, width=size[0], height=size[1]))

    async def _sized(self, queued: Queued) -> Queued:
        """A stored job at the size the models loaded now give its aspect (`sized`); the new size is stored, so its
        status and record show what it renders."""
        spec = queued.spec
        if spec is None:
            return queued
        now = self.sized(spec)
        if now is spec:
            return queued
        asked, size = (spec.request.width, spec.request.height), (now.request.width, now.request.height)
        log.info("job %d was queued at %s; the model loaded now renders %s at %s, so it renders at that size",
                 queued.id, frame_text(*asked), spec.aspect, frame_text(*size))
        await self._repo.resize(queued.id, *size)
        return replace(queued, spec=now)

    def _within_caps(self, queued: Queued) -> Queued:
        """A stored job above the caps this start has (MAX_STEPS or MAX_FRAMES lowered since it was queued, after an
        out-of-memory say) is not rendered: it fails when its turn comes, with the cap in its message and nothing
        charged, as a stored row t2v no longer accepts does."""
        above = None if queued.spec is None else self.admission.above_caps(queued.spec, clause=True)
        if above is None:
            return queued
        name, problem = above
        log.warning("job %d was queued before a restart with lower caps: %s; it fails when its turn comes",
                    queued.id, problem)
        cap = self.admission.max_steps if name == "steps" else self.admission.max_frames
        return replace(queued, spec=None,
                       invalid=InvalidRequest(f"{problem}; run /video again with `{name}` at most {cap}"))

    async def _cancel_blocked_since(self) -> None:
        """The restored jobs of users blocked since they queued them (a block written while the bot was down, or one
        whose cancels the process's end cut short) are cancelled as a block's cancels are, before any of them runs:
        never rendered, nothing charged, each status saying so."""
        if self.moderation is None:
            return
        asked = dict.fromkeys((queued.user_id, queued.job.guild_id) for queued in self._queue.service_order())
        for user_id, guild_id in asked:
            block = await self.moderation.active_block(user_id, guild_id)
            if block is None:
                continue
            cancelled, _ = await self.cancels.cancel_blocked(user_id, block.guild_id)
            if cancelled:
                log.warning("cancelled %d queued jobs of user %d, blocked %s since they were queued", cancelled,
                            user_id, "everywhere" if block.guild_id == GLOBAL else f"in server {block.guild_id}")

    def _start_warm_up(self) -> asyncio.Task[None]:
        """Each worker's warm-up render (bot.gpu.work.warm_up_work; GPU workers have one), ahead of every job: the
        jobs queue meanwhile (restored ones too), and the process's one-off first CUDA work is not a user's video."""
        tokens = [CancelToken() for _ in range(self._executor.workers)]
        self._warm_ups = [(self._executor.submit(warm_up_work(), should_cancel=token), token) for token in tokens]
        self._warm_up_began = self._clock()
        for work, _ in self._warm_ups:
            self.dispatcher.occupy(work)
        return asyncio.create_task(self._watch_warm_ups(), name="warm-up")

    async def _watch_warm_ups(self) -> None:
        """Each warm-up under a job's time limit (Units.watch: a hung one makes its worker stuck), then one line
        per worker: how long it took, or why it did not finish (the worker serves on either way)."""
        await asyncio.gather(*(self.units.watch(work, token, "its warm-up render") for work, token in self._warm_ups))
        for outcome in await asyncio.gather(*(work for work, _ in self._warm_ups), return_exceptions=True):
            if isinstance(outcome, GenerationCancelled):
                log.info("a worker's warm-up render was stopped")
            elif isinstance(outcome, BaseException):
                log.warning("a worker's warm-up render failed (%s: %s); its first job pays the one-off start-up "
                            "work instead", type(outcome).__name__, outcome)
            elif outcome is not None:
                log.info("a worker warmed up in %.1f s (one step of the default /video: CUDA libraries loaded, the "
                         "first graphs captured)", outcome)

    async def stop(self) -> None:
        """Stop taking and dispatching jobs; running ones may finish within the grace, else stop at their next step
        (they run again after a restart); queued ones stay queued. Then close the workers."""
        if self._stopping:
            return
        self._stopping = True
        await self.dispatcher.stop()
        for _, token in self._warm_ups:
            token.cancel()  # one not yet started is skipped; a running one stops at its next step
        tasks = self.running.tasks()
        posting = {entry.task for entry in self.running if entry.recorded}  # outcomes written, their messages going
        finish_s = max(self.shutdown_grace_s - CHECKPOINT_S, 0.0)
        if tasks and finish_s:
            log.info("letting %d running jobs finish for up to %.0f s", len(tasks), finish_s)
            _, tasks = await asyncio.wait(tasks, timeout=finish_s)
        for entry in self.running:
            entry.token.cancel()
        if tasks:
            _, late = await asyncio.wait(tasks, timeout=CHECKPOINT_S)
            for task in late:
                if task in posting:
                    log.warning("%s was still posting its outcome when the grace ran out; the post is cut short (the "
                                "job's outcome is recorded: it is not run again; a video is posted at the next start)",
                                task.get_name())
                else:
                    log.warning("%s did not stop within the grace; it will be retried after restart", task.get_name())
                task.cancel()
        await self._executor.close()
        await asyncio.to_thread(self._encoder.close)
        log.info("video service stopped; %d queued jobs wait for the next start", len(self._queue))

    async def _recover_interrupted(self) -> None:
        """Jobs left `running` by a crash: cancel if asked, retry once, else fail them ("interrupted twice"). A queued
        one whose cancel was asked (its user cancelled it as the worker took it, and the process died before the
        cancel was written) is cancelled too, never run."""
        for job in await self._repo.list_jobs([JobState.RUNNING, JobState.QUEUED]):
            if job.cancel_requested:
                await self._cancel_asked(job)
            elif job.state == JobState.QUEUED:
                continue
            elif job.attempts < MAX_ATTEMPTS:
                await self._repo.requeue(job.id)
                log.warning("job %d was interrupted by a restart; running it again", job.id)
            else:
                record = await self._repo.mark_failed(job.id, "interrupted twice", now=self._clock())
                log.warning("job %d was interrupted twice; giving up on it", job.id)
                await self.announce("job_failed", record, f"Sorry, job #{job.id} was interrupted twice by bot "
                                                          "restarts and was dropped. Nothing was charged.")

    async def _cancel_asked(self, job: JobRecord) -> None:
        """Cancel a job whose cancel was asked before the process ended, as its stop would have: one a moderator, a
        block or the server's removal stopped costs its requester nothing, and they are told who or what stopped it."""
        by = job.stop_requested_by
        record = await self._repo.mark_cancelled(job.id, now=self._clock(), charged=by is None)
        if by is None:
            log.info("job %d, whose requester cancelled it before the restart, is cancelled", job.id)
        else:
            log.info("job %d, being stopped at the restart (stopped by: %s), is cancelled; not charged", job.id, by)
        await self.announce(cancelled_event(by), record)
