"""The jobs handed to the workers and not yet recorded: one entry each, from the dispatcher until its outcome."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field

from bot.gpu.executor import CancelToken
from bot.gpu.previews import Preview
from bot.jobs.queue import FairQueue
from bot.jobs.spec import JobSpec, Queued
from storage import JobRecord, JobState, StopRequester

log = logging.getLogger(__name__)


@dataclass(eq=False)
class RunningJob:
    """A job handed to a worker: its latest row, its spec, its cancel token, and its in-flight event call."""

    job: JobRecord
    spec: JobSpec | None  # None: a stored row t2v no longer accepts (`invalid` says why); it fails when it runs
    invalid: Exception | None = None
    token: CancelToken = field(default_factory=CancelToken)
    shared: CancelToken | None = None  # in a batch: the batch's token, set once every member's is; None: alone
    recorded: bool = False  # its outcome is being recorded (a batch member may be cancelled before the batch ends)
    submitted: bool = False  # its unit's starts are written and it goes to the worker; until then a cancel makes it
    # one that never started (bot.jobs.units), free
    user_cancelled: bool = False
    stopped_by: StopRequester | None = None  # who cancelled it when not its requester (a moderator, a block, the
    # bot's removal from its server): not charged, and its requester told so
    timed_out: bool = False  # stopped for running past the time limit
    finished: bool = False  # no more progress events once the outcome is being recorded
    event: asyncio.Task[None] | None = None  # job_started or the latest job_progress call
    preview: Preview | None = None  # the newest live preview, shown with the next progress event
    task: asyncio.Task[None] | None = None  # the unit of work it runs in
    started_s: float | None = None  # when it started in this process, on the monotonic clock its time limit reads

    @classmethod
    def of(cls, queued: Queued) -> RunningJob:
        return cls(queued.job, queued.spec, queued.invalid)

    def runs_on_in_batch(self) -> bool:
        """Whether the job is a started member of a batch whose other members are not all cancelled."""
        shared = self.shared
        return (shared is not None and not shared.is_set() and self.submitted and not self.recorded
                and self.job.state == JobState.RUNNING)


class Running:
    """The running jobs by id; a job leaves when its outcome is recorded, and the fair queue hears of it."""

    def __init__(self, queue: FairQueue[Queued]) -> None:
        self._queue = queue
        self._entries: dict[int, RunningJob] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def __iter__(self) -> Iterator[RunningJob]:
        return iter(list(self._entries.values()))

    def get(self, job_id: int) -> RunningJob | None:
        return self._entries.get(job_id)

    def add(self, entries: list[RunningJob]) -> None:
        self._entries.update((entry.job.id, entry) for entry in entries)

    def remove(self, entry: RunningJob) -> None:
        """The job's outcome is recorded: it no longer counts as running, for the queue's caps either."""
        self._queue.finish(entry.job.id)
        del self._entries[entry.job.id]

    def of_user(self, user_id: int) -> list[RunningJob]:
        """One user's running jobs, oldest first."""
        return sorted((e for e in self._entries.values() if e.job.user_id == user_id), key=lambda e: e.job.id)

    def tasks(self) -> set[asyncio.Task[None]]:
        """The units of work under way."""
        return {entry.task for entry in self._entries.values() if entry.task is not None}


def jobs_named(entries: list[RunningJob]) -> str:
    """'job 7', or 'jobs 7, 8' for a batch."""
    ids = ", ".join(str(entry.job.id) for entry in entries)
    return f"job {ids}" if len(entries) == 1 else f"jobs {ids}"
