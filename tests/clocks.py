"""Clocks the tests move by hand, shared by every test package: the code under test takes its clock as an argument."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

NOW = datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC)
# A Wednesday, half past noon: a clock set here and moved on by up to 11 hours stays in its day, week (from Monday)
# and month (by under half an hour, in its hour), whatever the time of day the test runs.
MIDWEEK = datetime(2026, 3, 4, 12, 30, tzinfo=UTC)


class Clock:
    """A UTC clock that stands still until the test moves it (`clock.now += ...`, or `advance(seconds)`)."""

    def __init__(self, now: datetime = NOW) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> datetime:
        self.now += timedelta(seconds=seconds)
        return self.now


class WallClock:
    """The real UTC time plus an offset the test can move forward (to age interaction tokens), for what must agree
    with real clocks the test cannot set: the service's, which stamps the jobs' rows, and the fake Discord's."""

    def __init__(self) -> None:
        self.offset = timedelta(0)

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.offset


class Monotonic:
    """A monotonic clock that moves only when the test says so (`clock.t = ...`) or when the code under test
    awaits its `sleep`, which records each wait and returns at once."""

    def __init__(self) -> None:
        self.t = 0.0
        self.waits: list[float] = []

    def __call__(self) -> float:
        return self.t

    async def sleep(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.t += seconds


class Ticking(Monotonic):
    """A monotonic clock that moves 10 s each time it is read: every throttle (2 s) has always run out."""

    def __call__(self) -> float:
        self.t += 10.0
        return self.t
