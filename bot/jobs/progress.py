"""Progress from the workers to the JobEvents: one event call in flight per job, the last step always shown.

A step that arrives while the job's previous event call still runs is skipped, except the last step, which waits
for it; a live preview is kept and goes with the next event (the delivery decides whether that event edits the
status message). Each step also checks the job's time limit: a job past it stops at its next step. The time it has
run is measured on a monotonic clock from when it started in this process, so a step of the wall clock (an NTP
correction, a resumed VM) neither fails running jobs nor extends them.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from bot.gpu.previews import Preview
from bot.jobs.events import Announcer
from bot.jobs.running import RunningJob
from storage import JobRecord

log = logging.getLogger(__name__)


class Progress:
    """Relays worker progress (on the event loop) to the announcer, throttled to one event call per job at a time."""

    def __init__(self, announce: Announcer, time_limit_s: float,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self._announce, self.time_limit_s, self._monotonic = announce, time_limit_s, monotonic

    def of(self, entry: RunningJob) -> Callable[..., None]:
        """The progress callback of a job that runs alone: `(step, total[, preview])`."""
        return lambda step, total, preview=None: self.report(entry, step, total, preview)

    def of_batch(self, entries: list[RunningJob]) -> Callable[..., None]:
        """A batch's progress callback: `(step, total)` for every member, `(step, total, preview, i)` for member i."""

        def on_progress(step: int, total: int, preview: Preview | None = None, member: int | None = None) -> None:
            for entry in entries if member is None else (entries[member],):
                self.report(entry, step, total, preview)

        return on_progress

    def started(self, entry: RunningJob) -> None:
        """Announce the job's start (its time limit counts from now); its progress events follow this call."""
        entry.started_s = self._monotonic()
        entry.event = asyncio.create_task(self._announce("job_started", entry.job))

    def report(self, entry: RunningJob, step: int, total: int, preview: Preview | None = None) -> None:
        """Forward a step; skip it while the previous call runs, except the last step, which waits."""
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
            entry.event = asyncio.create_task(self._after(previous, entry.job, step, total))
            return
        shown = () if entry.preview is None else (entry.preview,)
        entry.event = asyncio.create_task(self._announce("job_progress", entry.job, step, total, *shown))

    def _check_time_limit(self, entry: RunningJob) -> None:
        """Stop a job at its next step once it has run past the time limit (monotonic time since it started)."""
        started = entry.started_s
        if entry.timed_out or started is None:
            return
        if self._monotonic() - started > self.time_limit_s:
            entry.timed_out = True
            entry.token.cancel()
            log.warning("job %d ran past the %.0f s time limit; stopping it", entry.job.id, self.time_limit_s)

    async def _after(self, previous: asyncio.Task[None], job: JobRecord, step: int, total: int) -> None:
        """Announce the final progress step once the event call before it has finished."""
        await previous
        await self._announce("job_progress", job, step, total)
