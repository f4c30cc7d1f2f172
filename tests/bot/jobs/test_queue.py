"""FairQueue: per-user FIFO, round-robin across users, caps, cancel, positions, restore."""

from collections import Counter, defaultdict
from dataclasses import dataclass
from itertools import count

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.errors import Refused
from bot.jobs.eta import eta_seconds
from bot.jobs.queue import FairQueue

A, B, C = 101, 202, 303


@dataclass(frozen=True)
class QueuedJob:
    """The smallest queue item: a job id and its owner."""

    id: int
    user_id: int


def make_jobs(*users: int) -> list[QueuedJob]:
    """Jobs with ids 1, 2, … owned by the given users, in push order."""
    return [QueuedJob(id=i, user_id=user) for i, user in enumerate(users, 1)]


def drain(queue: FairQueue) -> list[QueuedJob]:
    """Pop (and finish) every queued job, returning them in service order."""
    served = []
    while (job := queue.pop_next()) is not None:
        queue.finish(job.id)
        served.append(job)
    return served


def test_one_users_jobs_come_out_first_in_first_out():
    queue = FairQueue(per_user_cap=10, global_cap=10)
    queue.restore(make_jobs(A, A, A, A))
    assert [job.id for job in drain(queue)] == [1, 2, 3, 4]


def test_two_users_with_three_jobs_each_alternate():
    queue = FairQueue(per_user_cap=10, global_cap=10)
    for job in make_jobs(A, A, A, B, B, B):
        queue.push(job)
    assert [job.user_id for job in drain(queue)] == [A, B, A, B, A, B]


def test_ten_queued_jobs_delay_a_newcomers_first_job_by_at_most_one():
    queue = FairQueue(per_user_cap=10, global_cap=20)
    for i in range(10):
        queue.push(QueuedJob(i, A))
    assert queue.push(QueuedJob(100, B)) == 2  # A's oldest job goes first, then B's
    queue.pop_next()
    queue.push(QueuedJob(101, C))
    assert queue.position(100) == 1
    assert queue.position(101) == 2
    assert [job.id for job in drain(queue)][:3] == [100, 101, 1]


def test_a_user_who_empties_the_queue_rejoins_at_the_end_of_the_rotation():
    queue = FairQueue(per_user_cap=10, global_cap=10)
    for job in make_jobs(A, B, C, B, C):
        queue.push(job)
    assert queue.pop_next().user_id == A  # A leaves the rotation
    queue.push(QueuedJob(6, A))
    assert [job.id for job in drain(queue)] == [2, 3, 6, 4, 5]


def test_pop_from_an_empty_queue_gives_none():
    assert FairQueue(per_user_cap=1, global_cap=1).pop_next() is None


def test_per_user_cap_counts_queued_and_running_jobs():
    queue = FairQueue(per_user_cap=2, global_cap=10)
    queue.push(QueuedJob(1, A))
    queue.push(QueuedJob(2, A))
    with pytest.raises(Refused, match=r"You already have 2 videos queued or rendering \(the limit is 2 per user\)"
                       ) as refused:
        queue.push(QueuedJob(3, A))
    assert refused.value.reason == "user_cap"
    running = queue.pop_next()
    with pytest.raises(Refused, match="You already have 2"):
        queue.push(QueuedJob(3, A))  # one queued + one running is still two
    queue.finish(running.id)
    queue.push(QueuedJob(3, A))
    queue.push(QueuedJob(4, B))  # other users are not affected
    assert len(queue) == 3


def test_a_cap_of_one_video_per_user_is_said_in_the_singular():
    queue = FairQueue(per_user_cap=1, global_cap=10)
    queue.push(QueuedJob(1, A))
    with pytest.raises(Refused) as refused:
        queue.push(QueuedJob(2, A))
    assert str(refused.value) == ("You already have a video queued or rendering, and the limit is one per user. "
                                  "Wait for it to finish or cancel it.")


def test_global_cap_counts_queued_jobs_only():
    queue = FairQueue(per_user_cap=5, global_cap=2)
    queue.push(QueuedJob(1, A))
    queue.push(QueuedJob(2, B))
    with pytest.raises(Refused, match=r"The queue is full \(2 waiting, its limit\)") as refused:
        queue.push(QueuedJob(3, C))
    assert refused.value.reason == "global_cap"
    with pytest.raises(Refused, match="The queue is full"):
        queue.check_room(C, reserved=0)
    queue.pop_next()  # a job starting on a GPU frees a place
    queue.push(QueuedJob(3, C))
    assert len(queue) == 2 and queue.pending_count(A) == 1
    with pytest.raises(Refused, match="The queue is full"):
        queue.check_room(B, reserved=0)
    queue.cancel(3)
    queue.check_room(C)
    with pytest.raises(Refused, match="The queue is full"):  # one more on its way in counts
        queue.check_room(C, reserved=1)


def test_a_queue_longer_than_its_cap_after_a_restart_says_how_many_wait():
    queue = FairQueue(per_user_cap=5, global_cap=2)  # QUEUE_GLOBAL_CAP lowered; the restored queue holds 3
    queue.restore([QueuedJob(1, A), QueuedJob(2, B), QueuedJob(3, C)])
    with pytest.raises(Refused) as refused:
        queue.push(QueuedJob(4, C))
    assert str(refused.value) == "The queue is full (3 waiting, its limit is 2); try again in a few minutes."


def test_pushing_the_same_job_twice_is_a_bug():
    queue = FairQueue(per_user_cap=5, global_cap=5)
    queue.push(QueuedJob(1, A))
    with pytest.raises(ValueError, match="job 1"):
        queue.push(QueuedJob(1, A))


def test_cancel_removes_a_queued_job_and_later_positions_move_up():
    queue = FairQueue(per_user_cap=5, global_cap=10)
    for job in make_jobs(A, A, B, C):
        queue.push(job)
    assert [queue.position(i) for i in (1, 3, 4, 2)] == [1, 2, 3, 4]
    assert queue.cancel(3) == QueuedJob(3, B)
    assert queue.position(3) is None
    assert [queue.position(i) for i in (1, 4, 2)] == [1, 2, 3]
    assert queue.cancel(3) is None  # already gone
    assert queue.cancel(999) is None
    assert [job.id for job in drain(queue)] == [1, 4, 2]


def test_a_running_job_cannot_be_cancelled_from_the_queue():
    queue = FairQueue(per_user_cap=5, global_cap=5)
    queue.push(QueuedJob(1, A))
    running = queue.pop_next()
    assert queue.cancel(running.id) is None
    assert queue.position(running.id) is None
    assert queue.finish(running.id) == running
    assert queue.finish(running.id) is None


def test_cancelling_the_next_users_last_job_keeps_the_turn_order():
    queue = FairQueue(per_user_cap=5, global_cap=10)
    for job in make_jobs(A, B, C, A, C):
        queue.push(job)
    queue.pop_next()  # A served; B is next
    queue.cancel(2)  # B leaves; C is next
    assert [job.id for job in drain(queue)] == [3, 4, 5]


def test_jobs_of_lists_one_users_jobs_with_positions():
    queue = FairQueue(per_user_cap=5, global_cap=10)
    for job in make_jobs(A, A, B, A):
        queue.push(job)
    assert queue.jobs_of(A) == [(QueuedJob(1, A), 1), (QueuedJob(2, A), 3), (QueuedJob(4, A), 4)]
    assert queue.jobs_of(C) == []


def test_restore_bypasses_caps_and_reproduces_the_pushed_order():
    jobs = make_jobs(C, A, A, B, A, C, B, B, A)
    pushed = FairQueue(per_user_cap=10, global_cap=100)
    for job in jobs:
        pushed.push(job)
    restored = FairQueue(per_user_cap=1, global_cap=1)
    restored.restore(jobs)
    assert restored.service_order() == pushed.service_order()
    assert drain(restored) == drain(pushed)


operations = st.lists(
    st.one_of(
        st.tuples(st.just("push"), st.integers(0, 4)),
        st.tuples(st.just("pop"), st.just(0)),
        st.tuples(st.just("cancel"), st.integers(0, 40)),
    ),
    max_size=80,
)


@settings(max_examples=400, deadline=None)
@given(operations)
def test_no_user_delays_another_users_first_job_by_more_than_one_job(ops):
    queue = FairQueue(per_user_cap=100, global_cap=1000)
    ids = count()
    waiting_first: dict[int, tuple[int, Counter]] = {}  # first job -> (its user, jobs served per user since push)
    served_per_user: dict[int, list[int]] = defaultdict(list)
    for op, arg in [*ops, *[("pop", 0)] * 100]:
        if op == "push":
            job = QueuedJob(next(ids), arg)
            if not queue.jobs_of(arg):  # the user joins the rotation with this job
                waiting_first[job.id] = (arg, Counter())
            queue.push(job)
        elif op == "cancel":
            if queue.cancel(arg) is not None:
                waiting_first.pop(arg, None)
        else:
            expected_next = queue.service_order()[:1]
            job = queue.pop_next()
            assert ([job] if job else []) == expected_next  # position 1 is what is served next
            if job is None:
                continue
            served_per_user[job.user_id].append(job.id)
            waiting_first.pop(job.id, None)
            for first_id, (first_user, served) in waiting_first.items():
                if job.user_id != first_user:
                    served[job.user_id] += 1
                    assert served[job.user_id] <= 1, f"user {job.user_id} served twice before job {first_id}"
    assert len(queue) == 0
    assert all(order == sorted(order) for order in served_per_user.values())  # FIFO within each user


def test_eta_counts_the_running_job_the_jobs_ahead_and_the_job_itself():
    assert eta_seconds(1, per_job_seconds=30) == 30
    assert eta_seconds(3, per_job_seconds=30, running_remaining=12) == 12 + 3 * 30
    assert eta_seconds(3, per_job_seconds=30, workers=2) == 2 * 30  # jobs 1-2 run together, job 3 next
    with pytest.raises(ValueError, match="position"):
        eta_seconds(0, per_job_seconds=30)
