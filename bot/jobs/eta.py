"""When a queued job should be done: the seconds per job learned from finished ones, the jobs ahead, the workers.

The seconds per job start from the jobs log (the last HISTORY finished videos, at the service's start), so a restart
does not start from a guess; each video finished since moves them on.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime, timedelta

log = logging.getLogger(__name__)

EMA_WEIGHT = 0.3  # weight of the newest finished job in the seconds-per-job estimate
HISTORY = 20  # finished videos of the jobs log the estimate starts from (older ones weigh < 0.1% by then)


def eta_seconds(position: int, per_job_seconds: float, running_remaining: float = 0.0, workers: int = 1) -> float:
    """Seconds until the job at `position` is done: what runs now, the jobs ahead, then the job itself."""
    if position < 1:
        raise ValueError(f"position must be ≥ 1, got {position}")
    if per_job_seconds < 0 or running_remaining < 0:
        raise ValueError(f"durations must be ≥ 0, got {per_job_seconds=} and {running_remaining=}")
    if workers < 1:
        raise ValueError(f"workers must be ≥ 1, got {workers}")
    rounds = (position - 1) // workers + 1
    return running_remaining + rounds * per_job_seconds


class Eta:
    """The seconds a job takes (an exponential moving average of finished ones) and the ETA of a queue place."""

    def __init__(self, seconds_per_job: float = 5.0) -> None:
        self.seconds_per_job = seconds_per_job

    def seed(self, seconds: Sequence[float]) -> None:
        """Start from finished videos' seconds, oldest first (the jobs log), instead of the guess; none: keep it."""
        if not seconds:
            log.info("no finished videos yet: the ETA starts from a guess of %.1f s a video", self.seconds_per_job)
            return
        self.seconds_per_job = seconds[0]
        for wall_s in seconds[1:]:
            self.learn(wall_s)
        log.info("the ETA starts from %d finished videos: %.1f s a video", len(seconds), self.seconds_per_job)

    def learn(self, wall_s: float) -> None:
        """A job took `wall_s` seconds on its worker."""
        self.seconds_per_job += EMA_WEIGHT * (wall_s - self.seconds_per_job)

    def when(self, position: int, now: datetime, *, workers: int, all_busy: bool,
             started: list[datetime]) -> datetime:
        """When the job at `position` should be done; `started`: when the running jobs started (the first to free a
        worker counts when every worker is busy)."""
        remaining = 0.0
        if all_busy:
            remaining = min((self._left(when, now) for when in started), default=0.0)
        return now + timedelta(seconds=eta_seconds(position, self.seconds_per_job, remaining, max(workers, 1)))

    def _left(self, started: datetime, now: datetime) -> float:
        """Expected seconds left for a job running since `started`."""
        return max(self.seconds_per_job - (now - started).total_seconds(), 0.0)
