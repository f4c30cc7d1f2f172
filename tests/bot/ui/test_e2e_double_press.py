"""🔁 Reroll pressed twice: a double press (or a second press while the first's job waits) asks for one video, and the
second press is told where that one is; a press once it has ended, or on another result, asks for another."""

import pytest

from storage import JobState
from tests.bot.conftest import Stacks
from tests.bot.helpers import has_video, video

pytestmark = pytest.mark.usefixtures("logged_errors")

PROMPT, OTHER = "a lighthouse in a storm", "a long train journey"


async def test_two_reroll_presses_before_the_first_is_queued_make_one_job_and_the_other_is_told_so(stacks: Stacks,
                                                                                                    scripted):
    """The real race: both presses reach the bot before the first one's job is written (its "thinking" answer is
    slow to go out), so neither can see the other's job when it is pressed."""
    async with stacks.run(lambda device: scripted) as stack:
        fake = stack.fake
        bob = fake.make_user(name="bob")
        result = await (await video(fake, PROMPT, user=bob)).wait_followup(has_video)
        rendering = scripted.gate(PROMPT)  # the rerolls wait at their first step
        slow = fake.hold_next("POST /interactions/*/callback")  # the first press's "thinking" answer
        first = await fake.click(result, "video:reroll:1", user=bob)
        await fake.wait_held(slow)
        second = await fake.click(result, "video:reroll:1", user=bob)
        made = await second.wait_original(lambda m: m.content.startswith("Starting"))
        slow.set()
        told = await first.wait_answer()
        rendering.release(100)
        await second.wait_followup(has_video)
        jobs = await stack.jobs()

    assert "job #2" in made.content
    assert told.ephemeral and told.content == (
        "🔁 Reroll of job #1 is already rendering as job #2; pressing it again does not ask for another.")
    assert [(job.id, job.state) for job in jobs] == [(1, JobState.DONE), (2, JobState.DONE)]  # no row for the twin


async def test_a_second_reroll_press_while_the_first_ones_job_is_queued_is_told_its_place(stacks: Stacks, scripted):
    async with stacks.run(lambda device: scripted) as stack:
        fake = stack.fake
        bob = fake.make_user(name="bob")
        result = await (await video(fake, PROMPT, user=bob)).wait_followup(has_video)
        running = scripted.gate(OTHER)
        other = await video(fake, OTHER, user=bob)
        await other.wait_original(lambda m: m.content.startswith("Starting"))
        first = await fake.click(result, "video:reroll:1", user=bob)
        queued = (await first.wait_answer()).content
        told = await (await fake.click(result, "video:reroll:1", user=bob)).wait_answer()
        running.release(100)
        await first.wait_followup(has_video)
        states = [job.state for job in await stack.jobs()]

    assert queued.startswith("Queued #1 · ")
    assert told.ephemeral and told.content == (
        "🔁 Reroll of job #1 is already queued (#1 in the queue) as job #3; pressing it again does not ask for "
        "another.")
    assert states == [JobState.DONE] * 3


async def test_a_reroll_press_after_the_first_ones_video_came_or_on_another_result_makes_a_new_job(stacks: Stacks,
                                                                                                   scripted):
    """Each is a request of its own: another variation of a video already seen, or of another video."""
    async with stacks.run(lambda device: scripted) as stack:
        fake = stack.fake
        bob = fake.make_user(name="bob")
        one = await (await video(fake, PROMPT, user=bob)).wait_followup(has_video)
        two = await (await video(fake, OTHER, user=bob)).wait_followup(has_video)
        await (await fake.click(one, "video:reroll:1", user=bob)).wait_followup(has_video)  # job 3
        running = scripted.gate(PROMPT)
        again = await fake.click(one, "video:reroll:1", user=bob)  # job 4: job 3 has ended
        await again.wait_original(lambda m: m.content.startswith("Starting"))
        elsewhere = (await (await fake.click(two, "video:reroll:2", user=bob)).wait_answer()).content  # job 5
        running.release(100)
        await again.wait_followup(has_video)
        jobs = await stack.jobs()

    assert elsewhere.startswith("Queued #1 · ")
    assert [(job.params.get("rerolled_from"), job.state) for job in jobs[2:]] == [
        (1, JobState.DONE), (1, JobState.DONE), (2, JobState.DONE)]
