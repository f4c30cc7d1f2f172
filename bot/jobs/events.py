"""What the jobs tell the world: the Discord layer hears each job's start, progress and end (`JobEvents`), and the
metrics count every request's outcome and time the waits and the videos (`Meter`). `Announcer` does both, and a
failure of either is logged, never raised into the jobs.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from bot.gpu.previews import Preview
from storage import JobRecord, StopRequester

log = logging.getLogger(__name__)

_OUTCOMES = {"job_done": "done", "job_failed": "failed", "job_cancelled": "cancelled",
             "job_cancelled_by_moderator": "cancelled", "job_cancelled_by_block": "cancelled",
             "job_cancelled_by_server_removal": "cancelled"}  # event -> outcome


@dataclass(frozen=True)
class Submitted:
    """An accepted job: its row, its 1-based place in the queue, and when it should be done."""

    job: JobRecord
    position: int
    eta: datetime


@dataclass(frozen=True)
class Delivered:
    """A finished job: its `done` row and the MP4 to post."""

    job: JobRecord
    video: bytes
    seed: int
    notes: tuple[str, ...]
    gpu_s: float
    shrink: Callable[[int], bytes] | None = None  # the video re-encoded to at most n bytes (CPU work: use a thread)

    def __repr__(self) -> str:
        return f"Delivered(job={self.job.id}, video={len(self.video)} bytes, seed={self.seed}, gpu_s={self.gpu_s:.1f})"


class JobEvents(Protocol):
    """What the Discord layer hears about jobs; called on the event loop, failures are logged and swallowed."""

    async def job_started(self, job: JobRecord) -> None: ...

    async def job_progress(self, job: JobRecord, step: int, total: int, preview: Preview | None = None) -> None: ...

    async def job_done(self, delivered: Delivered) -> None: ...

    async def job_failed(self, job: JobRecord, message: str) -> None: ...

    async def job_cancelled(self, job: JobRecord) -> None: ...

    async def job_cancelled_by_moderator(self, job: JobRecord) -> None: ...  # not its requester: they are told so

    async def job_cancelled_by_block(self, job: JobRecord) -> None: ...  # its requester was blocked: told so

    async def job_cancelled_by_server_removal(self, job: JobRecord) -> None: ...  # the bot left its server: told so


_CANCELLED_BY = {None: "job_cancelled", StopRequester.MODERATOR: "job_cancelled_by_moderator",
                 StopRequester.BLOCK: "job_cancelled_by_block",
                 StopRequester.SERVER_LEFT: "job_cancelled_by_server_removal"}


def cancelled_event(by: StopRequester | None) -> str:
    """The JobEvents call that announces a cancelled job: its requester's own cancel (`by` None), or one they did not
    ask for, told with who or what stopped it (a moderator of its server, a block, the bot's removal from it)."""
    return _CANCELLED_BY[by]


class Meter(Protocol):
    """Where requests are counted and timed (bot.web.metrics.Metrics serves them at /metrics)."""

    def record_outcome(self, outcome: str) -> None: ...

    def observe_queue_wait(self, seconds: float) -> None: ...

    def observe_generation(self, seconds: float) -> None: ...

    def track_queue(self, queued: Callable[[], int], running: Callable[[], int]) -> None: ...


class Announcer:
    """Calls the JobEvents and keeps the metrics in step with them."""

    def __init__(self, events: JobEvents, meter: Meter | None) -> None:
        self._events, self.meter = events, meter

    def count(self, outcome: str) -> None:
        """Count a request as accepted or refused:<reason> (the ends are counted as they are announced)."""
        if self.meter is not None:
            self.meter.record_outcome(outcome)

    async def __call__(self, name: str, *args: Any) -> None:
        """Await one JobEvents method; its failures are logged, never raised."""
        self._measure(name, args[0])
        try:
            await getattr(self._events, name)(*args)
        except Exception:
            log.exception("JobEvents.%s failed", name)

    def _measure(self, name: str, subject: Any) -> None:
        """Metrics of a job event: the queue wait when a job starts, the outcome (and GPU time) when it ends."""
        if self.meter is None:
            return
        if name == "job_started" and subject.started_at is not None:
            self.meter.observe_queue_wait((subject.started_at - subject.created_at).total_seconds())
        elif name in _OUTCOMES:
            self.meter.record_outcome(_OUTCOMES[name])
            if isinstance(subject, Delivered):
                self.meter.observe_generation(subject.gpu_s)
