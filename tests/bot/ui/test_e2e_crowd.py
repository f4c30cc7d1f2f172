"""A crowd at once, end to end: a dozen members ask for videos in the same moment, some cancel, and every waiting
status keeps its true place in the queue until the videos land.

The real discord.py client against the fake Discord; nothing sleeps: the tests wait on events and requests.
"""

from __future__ import annotations

import pytest

from storage import JobState
from tests.bot.conftest import Stack, Stacks
from tests.bot.helpers import has_video, video
from tests.clocks import Ticking
from tests.fakediscord import InteractionHandle

pytestmark = pytest.mark.usefixtures("logged_errors")

CROWD = 12
FIRST = "a lighthouse beam sweeping over fog"


def places_shown(stack: Stack, handles: dict[int, InteractionHandle]) -> bool:
    """Whether every queued job's status shows its place in the service's order."""
    places = {job.id: position for job, position, _ in stack.service.places()}
    return places.keys() == handles.keys() and all(
        handles[job_id].original is not None
        and handles[job_id].original.content.startswith(f"Queued #{position} · ")
        for job_id, position in places.items())


async def test_a_dozen_members_at_once_each_see_their_true_place_through_cancels_and_all_get_their_videos(
    stacks: Stacks, scripted
):
    gate = scripted.gate(FIRST)
    stacks.monotonic = Ticking()
    async with stacks.run(lambda device: scripted) as stack:
        fake = stack.fake
        first = await video(fake, FIRST)
        await first.wait_original(lambda m: m.content.startswith("Starting"))
        members = [fake.make_user(name=f"member{i}") for i in range(CROWD)]
        sent = [await video(fake, f"a paper crane number {i} unfolding", user=member)
                for i, member in enumerate(members)]  # all sent before any is answered
        for handle in sent:
            await handle.wait_original(lambda m: m.content.startswith("Queued #"))
        jobs = {job.prompt: job.id for job in await stack.jobs()}
        handles = {jobs[f"a paper crane number {i} unfolding"]: handle for i, handle in enumerate(sent)}
        await fake.wait_for(lambda: places_shown(stack, handles), what="every place shown")

        leaving = sorted(handles)[1::4]  # three members in the middle of the queue cancel at once
        presses = [await fake.click(handles[job_id].original, f"video:cancel:{job_id}",
                                    user=handles[job_id].record.user) for job_id in leaving]
        answers = [(await press.wait_answer()).content for press in presses]
        for job_id in leaving:
            await handles[job_id].wait_original(lambda m, job_id=job_id: m.content == f"✖ Cancelled job #{job_id}.")
            del handles[job_id]
        await fake.wait_for(lambda: places_shown(stack, handles), what="every place shown after the cancels")

        gate.release(100)
        results = [await handle.wait_followup(has_video) for handle in handles.values()]
        states = {job.id: job.state for job in await stack.jobs()}

    assert answers == [f"✖ Cancelled job #{job_id}." for job_id in leaving]
    assert [states[job_id] for job_id in leaving] == [JobState.CANCELLED] * 3
    assert all(states[job_id] == JobState.DONE for job_id in handles) and len(results) == CROWD - 3
    assert len(scripted.started) == CROWD - 3 + 1
