"""QueueBoard on a busy evening: the queue moves faster than the throttled edits can follow, and every waiting status
still follows it, the back of a long queue too.

Injected clocks, the recording statuses of test_queue_board; nothing sleeps.
"""

from __future__ import annotations

import re
from datetime import timedelta

from bot.ui.queue_board import EDITS_PER_BATCH
from tests.bot.ui.test_queue_board import World, job
from tests.clocks import NOW

PLACE = re.compile(r"Queued #(\d+) ")
QUEUED = 40


async def test_when_the_queue_moves_every_batch_the_back_of_a_long_queue_catches_up_too():
    """A job leaves the front between every two batches (several GPUs, short videos): EDITS_PER_BATCH edits a batch
    cannot redo all 40 places each time. The statuses most off for their place go first, so none shows more than
    twice its true place (the first five in the queue took every edit, and the last job read "Queued #40" until it
    was about fifth: six times its place)."""
    world = World()
    world.queue(*[60.0 * i for i in range(1, QUEUED + 1)])  # each job's ETA: its own, which holds as the queue moves
    world.show_all()
    worst = 0.0
    for left in range(1, 31):
        world.clock.now = NOW + timedelta(seconds=60 * left - 30)  # half a minute before job `left` is done
        world.places = [(job(job_id), position, NOW + timedelta(seconds=60 * job_id))
                        for position, job_id in enumerate(range(left + 1, QUEUED + 1), 1)]
        assert await world.board.refresh() == EDITS_PER_BATCH
        shown = {job_id: int(PLACE.match(world.statuses.last(job_id))[1]) if job_id in world.statuses.texts
                 else job_id for job_id in range(left + 1, QUEUED + 1)}
        worst = max(worst, *(shown[job_id] / (job_id - left) for job_id in shown))
    await world.board.stop()

    assert worst <= 2.0, f"a status showed {worst:.1f} times its true place"
