"""The fair queue after a restart with lower caps: the restored jobs stay, and a request over the new cap is refused
in words true of what the user has."""

import pytest

from bot.errors import Refused
from bot.jobs.queue import FairQueue
from tests.bot.jobs.test_queue import A, QueuedJob


def test_a_user_over_a_cap_lowered_since_their_jobs_were_restored_is_told_how_many_they_have():
    """QUEUE_PER_USER_CAP lowered from 3 to 1 across a restart: the three jobs restored stay queued, and a fourth is
    refused naming the three, not "a video"."""
    queue = FairQueue(per_user_cap=1, global_cap=10)
    queue.restore([QueuedJob(1, A), QueuedJob(2, A), QueuedJob(3, A)])
    with pytest.raises(Refused) as refused:
        queue.push(QueuedJob(4, A))
    assert str(refused.value) == ("You already have 3 videos queued or rendering (the limit is one per user). Wait "
                                  "until none are left, or cancel some.")
