"""QueueBoard: queued statuses follow the queue, throttled and batched, and never show an ETA in the past.

The board runs on injected clocks and a timer the test fires (helpers.Timers); the statuses are a recording fake that
writes what delivery would (bot.ui.status.queued_text). Nothing sleeps.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from datetime import datetime, timedelta

import pytest

from bot.ui.queue_board import EDITS_PER_BATCH, QueueBoard
from bot.ui.status import queued_text
from storage import JobRecord
from tests.bot.helpers import WAIT, Timers, job_row
from tests.clocks import NOW, Clock, Monotonic

COUNTDOWN = re.compile(r"<t:(\d+):R>")


def job(job_id: int) -> JobRecord:
    return job_row(job_id)


class Statuses:
    """What the board shows: each edit's text, written at the clock's time, and a wait for the next edits."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.texts: dict[int, list[str]] = {}
        self.edited = asyncio.Condition()
        self.count = 0

    async def show(self, record: JobRecord, position: int, eta: datetime) -> bool:
        self.texts.setdefault(record.id, []).append(queued_text(record, position, eta, self.clock()))
        async with self.edited:
            self.count += 1
            self.edited.notify_all()
        return True

    async def wait_for(self, count: int) -> None:
        async with self.edited:
            await asyncio.wait_for(self.edited.wait_for(lambda: self.count >= count), WAIT)

    def last(self, job_id: int) -> str:
        return self.texts[job_id][-1].split("\n")[0]


class World:
    def __init__(self) -> None:
        self.clock, self.monotonic, self.timers = Clock(), Monotonic(), Timers()
        self.places: list[tuple[JobRecord, int, datetime]] = []
        self.statuses = Statuses(self.clock)
        self.board = QueueBoard(lambda: list(self.places), self.statuses.show, now=self.clock,
                                monotonic=self.monotonic, sleep=self.timers.sleep, gap_s=2.0)

    def queue(self, *etas_s: float) -> None:
        """Jobs 1, 2, ... queued in that order, each done `eta_s` seconds from now."""
        self.places = [(job(i), i, self.clock.now + timedelta(seconds=s)) for i, s in enumerate(etas_s, 1)]

    def show_all(self) -> None:
        for record, position, eta in self.places:
            self.board.shown(record.id, position, eta, self.clock.now)


@pytest.fixture
async def world() -> AsyncIterator[World]:
    made = World()
    yield made
    await made.board.stop()


async def test_a_queued_status_gets_its_new_place_when_the_job_ahead_leaves(world: World):
    world.queue(60, 120, 180)
    world.show_all()
    world.places = [(job(2), 1, NOW + timedelta(seconds=60)), (job(3), 2, NOW + timedelta(seconds=120))]

    assert await world.board.refresh() == 2
    assert world.statuses.last(2) == f"Queued #1 · ETA <t:{int((NOW + timedelta(seconds=60)).timestamp())}:R> · job #2"
    assert world.statuses.last(3).startswith("Queued #2 · ETA <t:") and 1 not in world.statuses.texts


async def test_a_status_whose_place_and_eta_hold_is_not_edited_again(world: World):
    world.queue(60, 120)
    world.show_all()
    world.places[1] = (job(2), 2, world.places[1][2] + timedelta(seconds=20))  # within the slack: left as shown

    assert await world.board.refresh() == 0
    world.places[1] = (job(2), 2, world.places[1][2] + timedelta(seconds=40))  # 60 s later than shown: edited
    assert await world.board.refresh() == 1 and world.statuses.texts.keys() == {2}


async def test_a_countdown_about_to_end_is_re_estimated_so_no_status_ever_shows_an_eta_in_the_past(world: World):
    world.queue(60, 120)
    world.show_all()
    for seconds in (51, 60, 125, 200):  # the estimates passed: the running job takes longer than guessed
        world.clock.now = NOW + timedelta(seconds=seconds)
        world.places = [(record, position, world.clock.now + timedelta(seconds=5 * position))
                        for record, position, _ in world.places]  # "any moment now" for #1, a few seconds for #2
        await world.board.refresh()
    world.places = [(job(2), 1, world.clock.now + timedelta(seconds=90))]  # job 1 started; job 2 is next
    await world.board.refresh()

    texts = [text for shown in world.statuses.texts.values() for text in shown]
    assert world.statuses.texts[1] == ["Queued #1 · ETA any moment now · job #1\n> prompt 1"]  # once, at 51 s
    assert world.statuses.last(2) == f"Queued #1 · ETA <t:{int((NOW + timedelta(seconds=290)).timestamp())}:R> · job #2"
    for text, at in zip(world.statuses.texts[2], (51, 200), strict=True):
        shown = COUNTDOWN.search(text)
        assert "any moment now" in text or int(shown[1]) > (NOW + timedelta(seconds=at)).timestamp()
    assert len(texts) == 3


async def test_a_batch_edits_at_most_its_share_and_the_rest_follow_in_the_next(world: World):
    world.queue(*[60.0 * i for i in range(1, EDITS_PER_BATCH + 3)])

    assert await world.board.refresh() == EDITS_PER_BATCH  # none shown yet: all are stale (as after a restart)
    assert await world.board.refresh() == 2
    assert await world.board.refresh() == 0


async def test_moves_within_the_gap_are_coalesced_into_one_batch(world: World):
    world.queue(5, 6)  # "any moment now" for both: no countdown to wake for
    world.board.start()  # refreshes every status once
    await world.statuses.wait_for(2)

    world.places = [(job(2), 1, NOW)]
    world.board.moved()
    assert await world.timers.fire() == 2.0  # the next batch waits out the gap since the first
    await world.statuses.wait_for(3)
    world.monotonic.t = 10.0
    world.places = []
    world.board.moved()
    world.places = [(job(4), 1, NOW)]
    world.board.moved()  # both moves after the gap: one batch, at once
    await world.statuses.wait_for(4)

    assert world.statuses.count == 4 and world.timers.waiting == []
    assert world.statuses.last(4) == "Queued #1 · ETA any moment now · job #4"


async def test_the_board_wakes_itself_before_a_countdown_ends(world: World):
    world.queue(60)
    world.board.start()
    await world.statuses.wait_for(1)

    assert await world.timers.fire() == 50.0  # 10 s before the ETA shown, it re-estimates
    world.clock.now = NOW + timedelta(seconds=50)
    world.monotonic.t = 50.0
    await world.statuses.wait_for(2)
    assert world.statuses.last(1) == "Queued #1 · ETA any moment now · job #1"
