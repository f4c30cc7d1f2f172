"""/cancel: a queued job leaves the queue at once; a running one stops at its next step (a batch member at once,
its video discarded, while the others run on). Without a job id it picks the user's newest job in the place the
command is used (a server, or direct messages); an id reaches any of the user's own jobs and, for a moderator, any job
of their server (who moderates what is the Discord layer's to say: bot.ui.permissions.moderates), whose requester is
told a moderator cancelled it; it costs its requester nothing (their own cancel of a running job counts, as its GPU
time was spent; a moderator's stop was not their doing: bot.jobs.outcomes records it uncharged, and so does a
start after a crash that came before it stopped, which reads who asked in its row). A
server the bot is removed from has all its jobs cancelled so, uncharged (its running ones' requesters told why), and a
user blocked in a server (or everywhere) all theirs there, each told it was cancelled because a moderator blocked them,
and not charged."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime

from bot.errors import NothingToCancel
from bot.jobs.events import Announcer, cancelled_event
from bot.jobs.outcomes import Outcomes
from bot.jobs.queue import FairQueue
from bot.jobs.running import Running, RunningJob
from bot.jobs.spec import Queued
from storage import GLOBAL, InvalidTransitionError, JobRecord, JobState, Repository, StopRequester

log = logging.getLogger(__name__)

Moderates = Callable[[JobRecord], bool]  # whether the one cancelling moderates another member's job (its server's)


@dataclass(frozen=True)
class Here:
    """Where /cancel was used: a server (its id), or direct messages (None)."""

    guild_id: int | None

    def holds(self, job: JobRecord) -> bool:
        """Whether the job was asked for here."""
        return job.guild_id == self.guild_id

    @property
    def words(self) -> str:
        return "in direct messages" if self.guild_id is None else "in this server"

    def place_of(self, job: JobRecord) -> str:
        """Where the job was asked for, seen from here ("" when here)."""
        if self.holds(job):
            return ""
        if job.guild_id is None:
            return "in direct messages"
        return "in a server" if self.guild_id is None else "in another server"


class Cancels:
    """Cancels a user's own jobs, queued or running (or, for a moderator, those of their server's members)."""

    def __init__(self, repo: Repository, queue: FairQueue[Queued], running: Running, outcomes: Outcomes,
                 announce: Announcer, clock: Callable[[], datetime]) -> None:
        self._repo, self._queue, self._running = repo, queue, running
        self._outcomes, self._announce, self._clock = outcomes, announce, clock

    async def cancel(self, user_id: int, job_id: int | None = None, here: Here | None = None, *,
                     moderates: Moderates | None = None) -> JobRecord:
        """Cancel the user's job (when job_id is None, their newest active one `here`, or anywhere when `here` is
        None), or job_id of another member where `moderates` says the user moderates it; raise NothingToCancel."""
        job = (self._newest_active(user_id, here) if job_id is None
               else await self._active(user_id, job_id, moderates))
        by = StopRequester.MODERATOR if job.user_id != user_id else None  # `_active` let a moderator through
        who = "its user" if by is None else f"moderator {user_id}"
        entry = self._running.get(job.id)
        if entry is None:
            self._queue.cancel(job.id)
            try:
                record = await self._repo.mark_cancelled(job.id, now=self._clock())
            except InvalidTransitionError as error:  # it ended since it was read: a second press of ✖ Cancel, say
                raise NothingToCancel(f"Job #{job.id} is already {error.current}.") from None
            log.info("job %d cancelled by %s while queued", job.id, who)
            await self._announce(cancelled_event(by), record)
            return record
        if entry.recorded and not entry.user_cancelled:  # rendered: its outcome is being written and posted
            raise NothingToCancel(f"Job #{job.id} is already finishing; too late to cancel it.")
        if not entry.user_cancelled:  # the first cancel says who cancelled it
            entry.stopped_by = by
        entry.user_cancelled = True
        entry.token.cancel()
        log.info("job %d cancel requested by %s while running", job.id, who)
        record = await self._settle_running(entry) or await self._repo.get_job(job.id) or entry.job
        if not entry.submitted:  # it never reaches the worker: recorded as cancelled, free (bot.jobs.units)
            return replace(record, state=JobState.CANCELLED)
        return record

    async def cancel_server(self, guild_id: int) -> tuple[int, int]:
        """Cancel every job of a server the bot is no longer in (its channels are out of reach): the queued ones at
        once, unannounced, the running ones at their next step, told why; none is charged, its requester did nothing.
        (queued, running) counts."""
        return await self._cancel_all(lambda job: job.guild_id == guild_id, StopRequester.SERVER_LEFT, announce=False)

    async def cancel_blocked(self, user_id: int, guild_id: int) -> tuple[int, int]:
        """Cancel the jobs of a user just blocked in a server (GLOBAL: everywhere, direct messages too): the queued
        ones at once, the running ones at their next step, each status saying it was cancelled because a moderator
        blocked its requester (nothing is charged). (queued, running) counts."""
        return await self._cancel_all(lambda job: job.user_id == user_id and guild_id in (GLOBAL, job.guild_id),
                                      StopRequester.BLOCK, announce=True)

    async def _cancel_all(self, chosen: Callable[[JobRecord], bool], by: StopRequester, *,
                          announce: bool) -> tuple[int, int]:
        """Cancel every queued and running job `chosen` picks, stopped `by` what is not their requesters' doing (told
        as such, not charged); `announce`: the queued ones' too. (queued, running) counts."""
        # Both sets are taken before the first await: meanwhile the dispatcher could start a queued one, which would
        # then be cancelled twice, as queued and as running.
        queued = [item.job for item in self._queue.service_order() if chosen(item.job)]
        for job in queued:
            self._queue.cancel(job.id)
        running = [entry for entry in self._running  # not one already cancelled, nor one finished and being posted
                   if chosen(entry.job) and not entry.user_cancelled and not entry.recorded]
        for entry in running:
            entry.user_cancelled, entry.stopped_by = True, by
            entry.token.cancel()
        for job in queued:
            try:
                record = await self._repo.mark_cancelled(job.id, now=self._clock())
            except InvalidTransitionError:  # its user's /cancel came first
                continue
            if announce:
                await self._announce(cancelled_event(by), record)
        unsubmitted = sum(not entry.submitted for entry in running)  # its unit's starts are being written: never
        for entry in running:                                          # started, it is cancelled as a queued one is
            await self._settle_running(entry)
        return len(queued) + unsubmitted, len(running) - unsubmitted

    async def _settle_running(self, entry: RunningJob) -> JobRecord | None:
        """After a running job's token was cancelled: a batch member is dropped now (the others run on); a job alone
        is flagged, with who asked when not its requester, so a start after a crash before its next step cancels it
        as its stop would have (uncharged, for a moderator's, a block's or the server's removal), never runs it again.
        None when it finished meanwhile."""
        if entry.runs_on_in_batch():
            return await self._outcomes.drop_member(entry)
        try:
            return await self._repo.request_cancel(entry.job.id, by=entry.stopped_by)
        except InvalidTransitionError:  # it finished while the flag was written
            return None

    def _newest_active(self, user_id: int, here: Here | None) -> JobRecord:
        """The user's newest queued or running job `here` (None: anywhere) not already being cancelled nor finishing
        (its video posting)."""
        mine = [queued.job for queued, _ in self._queue.jobs_of(user_id)]
        running = [entry for entry in self._running.of_user(user_id) if not entry.user_cancelled]
        mine += [entry.job for entry in running if not entry.recorded]
        jobs = [job for job in mine if here is None or here.holds(job)]
        if jobs:
            return max(jobs, key=lambda job: job.id)
        running = [entry for entry in running if here is None or here.holds(entry.job)]
        finishing = max((entry.job.id for entry in running), default=None)
        if finishing is not None:
            raise NothingToCancel(f"Job #{finishing} is already finishing; too late to cancel it.")
        stopping = max((entry.job.id for entry in self._running.of_user(user_id)
                        if here is None or here.holds(entry.job)), default=None)
        if stopping is not None:  # cancelled already: it ends after its current step
            raise NothingToCancel(f"Job #{stopping} is already stopping: it ends after the current denoising step.")
        if here is None or not mine:
            raise NothingToCancel("You have no queued or running videos to cancel.")
        elsewhere = max(mine, key=lambda job: job.id)  # never picked from here: the answer would be private there
        raise NothingToCancel(f"You have no queued or running videos {here.words}; your newest, job "
                              f"#{elsewhere.id}, is {here.place_of(elsewhere)}: to cancel it, use "
                              f"`/cancel job:{elsewhere.id}`.")

    async def _active(self, user_id: int, job_id: int, moderates: Moderates | None) -> JobRecord:
        """The job if it exists, belongs to the user (or `moderates` says they moderate it) and is still active; else
        NothingToCancel saying which."""
        job = await self._repo.get_job(job_id)
        if job is None:
            raise NothingToCancel(f"There is no job #{job_id}.")
        if job.user_id != user_id and (moderates is None or not moderates(job)):
            raise NothingToCancel(f"Job #{job_id} is not yours; you can only cancel your own videos.")
        if not job.is_active:
            raise NothingToCancel(f"Job #{job_id} is already {job.state}.")
        return job
