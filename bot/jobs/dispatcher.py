"""The one dispatcher task: woken by an event, it hands the next jobs in fair order to free workers.

A free worker gets the next job together with the same-shape jobs right behind it (bot.jobs.batching, up to
BATCH_MAX) as one unit of work; each job of a batch still starts, progresses, ends and is recorded on its own. A
worker counts as free again as soon as its work comes back, before the MP4s are encoded.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any

from bot.gpu.executor import Executor
from bot.jobs.batching import shared_token, take_batch
from bot.jobs.queue import FairQueue
from bot.jobs.running import Running, RunningJob
from bot.jobs.spec import Queued
from bot.tasks import stop_task

log = logging.getLogger(__name__)

RunUnit = Callable[[list[RunningJob]], Coroutine[Any, Any, None]]


class Dispatcher:
    """Starts units of work while a worker is free and jobs are queued; `wake()` whenever either may have changed."""

    def __init__(self, queue: FairQueue[Queued], running: Running, executor: Executor, *, batch_max: int) -> None:
        self._queue, self._running, self._executor = queue, running, executor
        self.batch_max = batch_max  # jobs per unit of work; 1 never batches
        self.units = 0  # units handed to the workers and not yet back from them
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        executor.on_capacity = self.wake  # a lost Ray worker that is back can take the next job

    @property
    def running(self) -> bool:
        """Whether the dispatcher has started and not stopped."""
        return self._task is not None and not self._stopping

    @property
    def all_busy(self) -> bool:
        """Whether every worker has a unit of work."""
        return self.units >= max(self._executor.workers, 1)

    def start(self, run_unit: RunUnit) -> None:
        """Start the dispatcher task; each unit of work runs as `run_unit(entries)` in a task of its own."""
        self._task = asyncio.create_task(self._dispatch(run_unit), name="video-dispatcher")
        self.wake()

    async def stop(self) -> None:
        """Hand out no more work (the units under way go on)."""
        self._stopping = True
        await stop_task(self._task)

    def wake(self) -> None:
        self._wake.set()

    def occupy(self, work: asyncio.Future[Any]) -> None:
        """Count `work`, handed to a worker outside the queue (its warm-up), as a unit until it comes back: the
        queued jobs wait in fair order meanwhile, not in the executor's."""
        self.units += 1
        work.add_done_callback(lambda _: self.worker_free())

    def worker_free(self) -> None:
        """A unit's work came back (frames, an error, or cancelled): its worker can take the next job."""
        self.units -= 1
        self.wake()

    async def _dispatch(self, run_unit: RunUnit) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while not self._stopping and self.units < self._executor.workers:
                batch = take_batch(self._queue, self.batch_max)
                if not batch:
                    break
                self._start_unit(batch, run_unit)

    def _start_unit(self, batch: list[Queued], run_unit: RunUnit) -> None:
        entries = [RunningJob.of(queued) for queued in batch]
        if len(entries) > 1:
            shared = shared_token([entry.token for entry in entries])
            for entry in entries:
                entry.shared = shared
        self._running.add(entries)
        self.units += 1
        name = f"video-job-{'-'.join(str(entry.job.id) for entry in entries)}"
        task = asyncio.create_task(run_unit(entries), name=name)
        for entry in entries:
            entry.task = task
