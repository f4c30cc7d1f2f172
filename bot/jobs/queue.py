"""Fair in-memory job queue: per-user FIFO, round-robin across users, per-user and global caps (their one home).

The database is the source of truth; at start the bot rebuilds this structure with `FairQueue.restore`.
"""

from __future__ import annotations

import logging
from collections import Counter, deque
from collections.abc import Iterable
from typing import Generic, Protocol, TypeVar

from bot.errors import Refused

log = logging.getLogger(__name__)


class Job(Protocol):
    """Anything the queue can hold: a job id and the Discord id of the user who asked for it."""

    @property
    def id(self) -> int: ...

    @property
    def user_id(self) -> int: ...


J = TypeVar("J", bound=Job)


class FairQueue(Generic[J]):
    """Per-user FIFO queues served round-robin; caps: per user queued + running, global queued only.

    Users rotate in order of joining (a user whose queue empties leaves and later rejoins at the end); the
    next job comes from the user after the one served last, so a newcomer waits for at most one job of each
    other user. The global cap ignores running jobs, so a job starting on a GPU frees a place in the queue.
    """

    def __init__(self, per_user_cap: int, global_cap: int) -> None:
        if per_user_cap < 1 or global_cap < 1:
            raise ValueError(f"caps must be ≥ 1, got per_user_cap={per_user_cap}, global_cap={global_cap}")
        self.per_user_cap = per_user_cap
        self.global_cap = global_cap
        self._queues: dict[int, deque[J]] = {}  # user id -> that user's queued jobs, oldest first
        self._rotation: list[int] = []  # users with queued jobs, in order of joining the rotation
        self._cursor = 0  # index into _rotation of the user to serve next (== len means wrap to 0)
        self._running: dict[int, J] = {}  # job id -> job handed out by pop_next and not yet finished
        self._running_per_user: Counter[int] = Counter()
        self._queued_ids: set[int] = set()

    def __len__(self) -> int:
        """Number of queued (not running) jobs."""
        return len(self._queued_ids)

    def pending_count(self, user_id: int) -> int:
        """Queued plus running jobs of one user: what the per-user cap counts."""
        return len(self._queues.get(user_id, ())) + self._running_per_user[user_id]

    def check_room(self, user_id: int, *, reserved: int = 0) -> None:
        """Refused (user_cap or global_cap) unless one more job of the user fits, counting `reserved` jobs that are
        on their way in (accepted, not yet pushed)."""
        pending, cap = self.pending_count(user_id), self.per_user_cap
        if pending >= cap:
            if pending == 1:
                raise Refused("user_cap", "You already have a video queued or rendering, and the limit is one per "
                                          "user. Wait for it to finish or cancel it.")
            limit = "one" if cap == 1 else str(cap)  # below pending after a restart with QUEUE_PER_USER_CAP lowered
            wait = ("Wait for one to finish or cancel one." if pending == cap else
                    f"Wait until {'none' if cap == 1 else f'fewer than {cap}'} are left, or cancel some.")
            raise Refused("user_cap", f"You already have {pending} videos queued or rendering (the limit is {limit} "
                                      f"per user). {wait}")
        if len(self) + reserved >= self.global_cap:
            waiting = len(self) + reserved  # with those on their way in; more than the cap after a restart with
            #                                 QUEUE_GLOBAL_CAP lowered
            limit = "its limit" if waiting == self.global_cap else f"its limit is {self.global_cap}"
            raise Refused("global_cap", f"The queue is full ({waiting} waiting, {limit}); try again in a few minutes.")

    def push(self, job: J) -> int:
        """Queue a job behind the user's earlier ones; return its 1-based position. Refused over a cap."""
        self.check_room(job.user_id)
        self._append(job)
        position = self.position(job.id)
        assert position is not None
        return position

    def restore(self, jobs: Iterable[J]) -> None:
        """Re-queue database jobs in the order given, bypassing the caps (the service gives the jobs a restart
        interrupted first, then the rest in id order: the order pushing them would give)."""
        for job in jobs:
            self._append(job)
        log.info("restored %d queued jobs from %d users", len(self), len(self._rotation))

    def pop_next(self) -> J | None:
        """Take the next job in fair order and mark it running; None when nothing is queued."""
        if not self._rotation:
            return None
        if self._cursor >= len(self._rotation):
            self._cursor = 0
        user_id = self._rotation[self._cursor]
        queue = self._queues[user_id]
        job = queue.popleft()
        if queue:
            self._cursor += 1
        else:
            self._leave_rotation(user_id)
        self._queued_ids.discard(job.id)
        self._running[job.id] = job
        self._running_per_user[job.user_id] += 1
        return job

    def take(self, job_id: int) -> J:
        """Take a queued job that is the first of its user's out of fair order (a batch's same-style job, see
        bot.jobs.batching) and mark it running; whose turn is next does not change."""
        job = next(j for queue in self._queues.values() for j in queue if j.id == job_id)
        assert self._queues[job.user_id][0] is job, "only a user's first queued job may be taken out of turn"
        self.cancel(job_id)
        self._running[job.id] = job
        self._running_per_user[job.user_id] += 1
        return job

    def finish(self, job_id: int) -> J | None:
        """Release a running job (done, failed or cancelled mid-run); None if it was not running."""
        job = self._running.pop(job_id, None)
        if job is None:
            log.debug("finish(%s): job is not running", job_id)
            return None
        self._running_per_user[job.user_id] -= 1
        if not self._running_per_user[job.user_id]:
            del self._running_per_user[job.user_id]
        return job

    def cancel(self, job_id: int) -> J | None:
        """Remove a queued job and return it; None if it is not queued (unknown, running or done)."""
        if job_id not in self._queued_ids:
            return None
        job = next(j for queue in self._queues.values() for j in queue if j.id == job_id)
        queue = self._queues[job.user_id]
        queue.remove(job)
        self._queued_ids.discard(job_id)
        if not queue:
            self._leave_rotation(job.user_id)
        return job

    def service_order(self) -> list[J]:
        """All queued jobs in the order they would be served if nobody pushed or cancelled."""
        if not self._rotation:
            return []
        start = self._cursor % len(self._rotation)
        users = self._rotation[start:] + self._rotation[:start]
        order: list[J] = []
        for depth in range(max(len(self._queues[u]) for u in users)):
            order.extend(self._queues[u][depth] for u in users if depth < len(self._queues[u]))
        return order

    def position(self, job_id: int) -> int | None:
        """1-based place of a queued job in the current service order; None if it is not queued."""
        if job_id not in self._queued_ids:
            return None
        return next(i for i, job in enumerate(self.service_order(), 1) if job.id == job_id)

    def jobs_of(self, user_id: int) -> list[tuple[J, int]]:
        """One user's queued jobs with their 1-based positions, soonest first."""
        return [(job, i) for i, job in enumerate(self.service_order(), 1) if job.user_id == user_id]

    def _append(self, job: J) -> None:
        """Add a job to its user's FIFO, bringing the user into the rotation if needed."""
        if job.id in self._queued_ids or job.id in self._running:
            raise ValueError(f"job {job.id} is already queued or running")
        queue = self._queues.get(job.user_id)
        if queue is None:
            queue = self._queues[job.user_id] = deque()
            self._rotation.append(job.user_id)
        queue.append(job)
        self._queued_ids.add(job.id)

    def _leave_rotation(self, user_id: int) -> None:
        """Drop a user whose queue is empty, keeping the cursor on the same next user."""
        index = self._rotation.index(user_id)
        del self._rotation[index]
        del self._queues[user_id]
        if index < self._cursor:
            self._cursor -= 1
