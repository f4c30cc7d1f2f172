"""How a job ends: delivered, cancelled, failed — or, stopped by a shutdown, queued again for the next start.

Each outcome is written to the database first, then announced (after the job's last progress event), then the job
leaves the running set. A failed job's user is told why in a few words (bot.errors.failure_reason) and that nothing
was charged: failed jobs do not count against the quota.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import datetime

from bot.errors import JobTimedOut, failure_reason
from bot.jobs.encoder import Rendered
from bot.jobs.eta import Eta
from bot.jobs.events import Announcer, Delivered, cancelled_event
from bot.jobs.running import Running, RunningJob
from storage import JobRecord, JobState, Repository
from storage.errors import unavailable
from t2v.errors import GenerationCancelled

log = logging.getLogger(__name__)

ERROR_CHARS = 500  # longest error text kept in a job row


class Outcomes:
    """Records each running job's outcome once, in the database and through the announcer."""

    def __init__(self, repo: Repository, running: Running, announce: Announcer, eta: Eta,
                 clock: Callable[[], datetime], *, stopping: Callable[[], bool], time_limit_s: float) -> None:
        self._repo, self._running, self._announce, self._eta, self._clock = repo, running, announce, eta, clock
        self._stopping = stopping  # True once the service stops: a stopped job is queued again, not cancelled
        self.time_limit_s = time_limit_s

    async def record(self, entry: RunningJob, output: Rendered | BaseException) -> None:
        """Record one job's outcome (delivered, cancelled or failed), then let the running set forget it."""
        entry.recorded = True
        try:
            if isinstance(output, GenerationCancelled):
                await self._cancelled(entry)
            elif isinstance(output, BaseException):
                await self._failed(entry, output)
            else:
                await self._delivered(entry, output)
        except Exception:
            log.exception("job %d: recording its outcome failed", entry.job.id)
        finally:
            self._running.remove(entry)

    async def drop_member(self, entry: RunningJob) -> JobRecord:
        """Record a batch member cancelled while the others run on: cancelled now; its video is discarded."""
        await self.record(entry, GenerationCancelled(0, 0))
        return await self._repo.get_job(entry.job.id) or entry.job

    async def _delivered(self, entry: RunningJob, output: Rendered) -> None:
        """Record a finished video and announce it (or honour a cancel that came during the last step)."""
        if entry.user_cancelled:
            await self._cancelled(entry)
            return
        await settle_events(entry)
        now = self._clock()
        job = await written(self._repo.mark_done(entry.job.id, seed=output.seed, gpu_s=output.gpu_s,
                                                 output_bytes=len(output.video), now=now),
                            replace(entry.job, state=JobState.DONE, seed=output.seed, gpu_s=output.gpu_s,
                                    output_bytes=len(output.video), finished_at=now))
        self._eta.learn(output.source.wall_s)
        log.info("job %d done: %d bytes, %.1f GPU s", job.id, len(output.video), output.gpu_s)
        await self._announce("job_done", Delivered(job, output.video, output.seed, output.notes, output.gpu_s,
                                                   shrink=output.smaller))

    async def _cancelled(self, entry: RunningJob) -> None:
        """Record a stopped job: cancelled if its user asked, failed if it ran too long, else queued (shutdown)."""
        if entry.timed_out and not entry.user_cancelled:
            await self._failed(entry, JobTimedOut(self.time_limit_s))
            return
        await settle_events(entry)
        if self._stopping() and not entry.user_cancelled:
            await self._repo.requeue(entry.job.id)
            log.info("job %d stopped by shutdown; it will run after the next start", entry.job.id)
            return
        now = self._clock()
        by = entry.stopped_by
        charged = by is None  # a stop its requester did not ask for (a moderator's, a block's, the server's removal)
        job = await written(self._repo.mark_cancelled(entry.job.id, now=now, charged=charged),
                            replace(entry.job, state=JobState.CANCELLED, finished_at=now))
        log.info("job %d cancelled while running%s", job.id, "" if charged else f" (stopped by: {by}); not charged")
        await self._announce(cancelled_event(by), job)

    async def _failed(self, entry: RunningJob, error: BaseException) -> None:
        """Record a failed job and apologise through the announcer."""
        await settle_events(entry)
        now, text = self._clock(), f"{type(error).__name__}: {error}"[:ERROR_CHARS]
        job = await written(self._repo.mark_failed(entry.job.id, text, now=now),
                            replace(entry.job, state=JobState.FAILED, error=text, finished_at=now))
        await self._announce("job_failed", job, f"Sorry, job #{job.id} failed ({failure_reason(error)}). "
                                                "Nothing was charged.")


async def written(write: Awaitable[JobRecord], fallback: JobRecord) -> JobRecord:
    """The row a job's last write leaves; when the database fails it (a full disk, a lock held past the retries, a
    server down), `fallback`, the row as it should have become, so the user still gets the video or the news. The
    stored row stays running, so the next start may run the job again: an ERROR line says so."""
    try:
        return await write
    except Exception as error:
        if not unavailable(error):
            raise  # a bug, or the row somewhere else than this job thinks: not a write the database failed
        log.exception("job %d: the database did not record it as %s; the user is told anyway; the row stays running, "
                      "so the next start may run the job again", fallback.id, fallback.state.value)
        return fallback


async def settle_events(entry: RunningJob) -> None:
    """Stop progress events and wait for the one in flight, so the outcome event comes last."""
    entry.finished = True
    if entry.event is not None:
        await entry.event
