"""Queued statuses kept fresh: one task, woken when the queue moves, edits the statuses whose place or ETA changed.

    delivery hears a job queued / started / ended ─▶ QueueBoard.moved() ─▶ one batch: service.places() (bot.jobs),
    then at most EDITS_PER_BATCH edits of the statuses whose place changed, or whose ETA moved or is about to pass,
    the most wrong first

Throttled under Discord's limits: one batch per `gap_s` at most (so each status is edited at most once per gap, and
the moves within a gap are coalesced), EDITS_PER_BATCH edits a batch (the rest wait for the next), far under the 50
requests a second Discord allows a bot. An ETA shown as a countdown is re-estimated just before it would pass, so a
status never reads "ETA 2 minutes ago"; what it then says is bot.ui.status.eta_words'. When the queue moves faster
than the edits keep up (a long queue, several GPUs), the places most off for their distance from the front go first
(#3 shown at #2 as much as #60 shown at #40), so the back of a long queue catches up too instead of keeping its first
place until it nears the front.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from bot.tasks import stop_task
from bot.ui.status import ANY_MOMENT_S, any_moment
from storage import JobRecord

log = logging.getLogger(__name__)

EDITS_PER_BATCH = 5  # status edits a batch; with gap_s ≥ 1 s, under 5 a second (Discord allows 50 a second)
ETA_SLACK_S = 30.0  # an ETA that moved less than this (and is not about to pass) is left as shown

Place = tuple[JobRecord, int, datetime]  # a queued job, its 1-based place, when it should be done
ShowPlace = Callable[[JobRecord, int, datetime], Awaitable[bool]]  # edit one status; False: the job is not queued
Sleep = Callable[[float], Awaitable[Any]]


@dataclass(frozen=True)
class Shown:
    """What a queued job's status says now: its place, and its ETA as a countdown or as "any moment now"."""

    position: int
    eta: datetime
    countdown: bool


class QueueBoard:
    """The one driver of queued statuses' refreshes (`start` it on the running loop, `stop` it before closing)."""

    def __init__(self, places: Callable[[], list[Place]], show: ShowPlace, *, now: Callable[[], datetime],
                 monotonic: Callable[[], float], sleep: Sleep = asyncio.sleep, gap_s: float = 2.0) -> None:
        self._places, self._show, self._now, self._monotonic, self._sleep = places, show, now, monotonic, sleep
        self.gap_s = gap_s
        self._shown: dict[int, Shown] = {}
        self._wake = asyncio.Event()
        self._last_batch: float | None = None
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start the task and refresh every queued status once (after a restart they show the last process's)."""
        self._task = asyncio.create_task(self._run(), name="queue-board")
        self.moved()

    async def stop(self) -> None:
        await stop_task(self._task)
        self._task = None

    def moved(self) -> None:
        """The queue moved (a job was queued, started, finished or cancelled): refresh at the next batch."""
        self._wake.set()

    def shown(self, job_id: int, position: int, eta: datetime, now: datetime) -> None:
        """A job's status was written at `now` with this place and ETA (its first by delivery, or by this board)."""
        self._shown[job_id] = Shown(position, eta, countdown=not any_moment(eta, now))

    async def refresh(self) -> int:
        """One batch: edit the statuses whose place or ETA changed (at most EDITS_PER_BATCH, the most wrong first);
        how many were edited. More left over wake the next batch."""
        now, places = self._now(), self._places()
        queued = {job.id for job, _, _ in places}
        for job_id in [job_id for job_id in self._shown if job_id not in queued]:
            del self._shown[job_id]  # started, finished or cancelled: delivery shows the rest
        urgent = [(urgency, i) for i, (job, position, eta) in enumerate(places)
                  if (urgency := self._urgency(job.id, position, eta, now)) is not None]
        stale = [places[i] for _, i in sorted(urgent)]
        edited = 0
        for job, position, eta in stale[:EDITS_PER_BATCH]:
            try:
                if await self._show(job, position, eta):
                    edited += 1
            except Exception:
                log.exception("job %d: refreshing its queue place failed", job.id)
            self.shown(job.id, position, eta, now)  # a failed edit is not retried at once: the next change tries
        if len(stale) > EDITS_PER_BATCH:
            self._wake.set()
        if edited:
            log.debug("refreshed %d queued statuses (%d left for the next batch)", edited,
                      max(len(stale) - EDITS_PER_BATCH, 0))
        return edited

    def _urgency(self, job_id: int, position: int, eta: datetime, now: datetime) -> tuple[int, float] | None:
        """None when a status shows what it should; else its rank among the edits due, lowest first: a status never
        shown, or a countdown about to end (it gets the new estimate, or "any moment now"); then a status that shows
        another place, the more off for its place the sooner; then "any moment now" when the new estimate is further
        off, or an ETA more than ETA_SLACK_S off."""
        shown = self._shown.get(job_id)
        if shown is None or (shown.countdown and any_moment(shown.eta, now)):
            return 0, 0.0
        if shown.position != position:
            return 1, -abs(shown.position - position) / position
        if not shown.countdown:
            return None if any_moment(eta, now) else (2, 0.0)
        return (2, 0.0) if abs((eta - shown.eta).total_seconds()) >= ETA_SLACK_S else None

    def _next_due(self, now: datetime) -> float | None:
        """Seconds until the first countdown shown comes within ANY_MOMENT_S of its end; None when none runs."""
        ends = [shown.eta for shown in self._shown.values() if shown.countdown]
        if not ends:
            return None
        return max((min(ends) - now).total_seconds() - ANY_MOMENT_S, 0.0)

    async def _run(self) -> None:
        while True:
            await self._wait(self._next_due(self._now()))
            if self._last_batch is not None:
                wait = self.gap_s - (self._monotonic() - self._last_batch)
                if wait > 0:
                    await self._sleep(wait)  # the moves meanwhile go into this one batch
            self._wake.clear()
            self._last_batch = self._monotonic()
            try:
                await self.refresh()
            except Exception:
                log.exception("refreshing the queued statuses failed")

    async def _wait(self, timeout: float | None) -> None:
        """Until the queue moves, or `timeout` seconds (a countdown about to pass)."""
        waits = {asyncio.ensure_future(self._wake.wait())}
        if timeout is not None:
            waits.add(asyncio.ensure_future(self._sleep(timeout)))
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for wait in waits:
                wait.cancel()

