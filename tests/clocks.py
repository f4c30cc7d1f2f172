"""Clocks the tests move by hand, shared by every test package: the code under test takes its clock as an argument."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

NOW = datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC)


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
    """The real UTC time plus an offset the test can move forward (to age interaction tokens)."""

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
