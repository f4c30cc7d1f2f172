"""/video in a thread that a moderator locks (or closes, as a forum post) while the video renders: Discord then takes
no edit and no post there, through the interaction token or the bot's ("Thread is archived", 50083). The video goes
to its requester directly, as where the bot may not post, and nothing is logged as the bot's error. A result in such
a thread cannot be deleted either: 🗑 Delete says so."""

import pytest

from storage import JobState
from tests.bot.conftest import Stacks
from tests.bot.helpers import ScriptedPipeline, delete_result, has_video
from tests.bot.ui.test_showcase import moderate, nominated
from tests.fakediscord import FakeChannel, FakeDiscord, FakeUser, InteractionHandle

pytestmark = pytest.mark.usefixtures("logged_errors")

PROMPT = "a paper lantern drifting over a dark lake"
ARCHIVED = 50083


def lock(fake, thread, status: int) -> None:
    """Every edit and post in the thread is refused from now on, through the token and through the channel."""
    for pattern in ("* /webhooks/*", f"* /channels/{thread.id}/messages*"):
        fake.fail_next(pattern, status, code=ARCHIVED, message="Thread is archived", times=1000)


async def started_in(fake: FakeDiscord, thread: FakeChannel) -> tuple[FakeUser, InteractionHandle]:
    """bob's /video in `thread`, once its status reads "Starting"; bob and the interaction."""
    bob = fake.make_user(name="bob")
    handle = await fake.slash("video", {"prompt": PROMPT, "aspect": "tiny"}, user=bob, channel=thread)
    await handle.wait_original(lambda m: m.content.startswith("Starting"))
    return bob, handle


@pytest.mark.parametrize("status", [400, 403])
async def test_a_video_whose_thread_is_locked_while_it_renders_reaches_its_requester_directly(
        stacks: Stacks, scripted: ScriptedPipeline, status: int):
    thread = stacks.fake.add_thread(stacks.fake.channel, "lanterns")
    gate = scripted.gate(PROMPT)
    async with stacks.run(lambda device: scripted) as stack:
        fake = stack.fake
        bob, _ = await started_in(fake, thread)
        lock(fake, thread, status)
        events = stack.events()
        gate.release(100)
        await events.until("job_done")
        job = await stack.job(1)

    [dm] = [m for m in fake.messages.values() if m.channel_id == fake.dm_channel(bob).id]
    assert has_video(dm) and dm.content.startswith(f"<@{bob.id}> here is your video · job #1")
    assert (job.state, job.result_message_id) == (JobState.DONE, dm.id)
    refused = [r.method for r in fake.requests if r.status == status]
    assert refused == ["PATCH"]  # the first refused status edit closes the thread to the job: the video goes to DMs


async def test_past_its_token_a_locked_threads_status_is_left_and_the_video_reaches_its_requester_directly(
        stacks: Stacks, scripted: ScriptedPipeline):
    thread = stacks.fake.add_thread(stacks.fake.channel, "lanterns")
    gate = scripted.gate(PROMPT)
    async with stacks.run(lambda device: scripted) as stack:
        fake = stack.fake
        bob, handle = await started_in(fake, thread)
        fake.expire_token(handle)  # a long queue: statuses go through the bot token in the thread
        lock(fake, thread, 400)
        events = stack.events()
        gate.release(100)
        await events.until("job_done")
        job = await stack.job(1)

    [dm] = [m for m in fake.messages.values() if m.channel_id == fake.dm_channel(bob).id]
    assert has_video(dm) and (job.state, job.result_message_id) == (JobState.DONE, dm.id)
    assert not [m for m in fake.messages.values() if m.channel_id == thread.id and m.id != handle.original.id]


async def test_delete_in_an_archived_thread_says_the_message_stays_and_who_can_remove_it(stacks: Stacks):
    """Discord deletes no message of an archived or locked thread (400, 50083): the job is deleted all the same (its
    kept video, any showcase post), and the presser is told why its message stays, not that something went wrong."""
    thread = stacks.fake.add_thread(stacks.fake.channel, "lanterns")
    async with stacks.run() as stack:
        fake = stack.fake
        bob = fake.make_user(name="bob")
        handle = await fake.slash("video", {"prompt": PROMPT, "aspect": "tiny"}, user=bob, channel=thread)
        result = await handle.wait_followup(has_video)
        fake.fail_next(f"DELETE /channels/{thread.id}/messages/*", 400, code=ARCHIVED, message="Thread is archived")
        answer = await delete_result(fake, result, 1, bob)
        job = await stack.job(1)

    assert answer.content == ("🗑️ Deleted job #1. This thread is archived or locked, so the message stays: a moderator "
                              "can reopen the thread and delete it.")
    assert job.deleted_at is not None and not result.deleted


@pytest.mark.parametrize("status", [400, 403])
async def test_approving_into_a_locked_showcase_thread_names_the_lock_and_approving_again_posts_once_reopened(
        stacks: Stacks, status: int):
    """A showcase thread locked so that only the bot posts there, where the bot may not: Discord refuses the post with
    50083. The moderator was told "Discord did not take it" (an ERROR traceback) or "the bot cannot post there"."""
    showcase = stacks.fake.add_thread(stacks.fake.channel, "showcase")
    async with stacks.run(showcase_channel_id=showcase.id) as stack:
        fake = stack.fake
        mod = fake.make_user(name="mod", roles=[fake.moderator_role])
        await nominated(stack, fake.make_user(name="bob"))
        fake.fail_next(f"POST /channels/{showcase.id}/messages", status, code=ARCHIVED, message="Thread is archived")
        refused = await moderate(stack, mod, "approve", job=1)
        again = await moderate(stack, mod, "approve", job=1)  # the thread reopened

    assert refused == (f"Approved job #1. Posting it to <#{showcase.id}> failed: that thread is archived or locked (a "
                       "moderator can reopen it and approve the video again, or `/videomod showcase channel` picks "
                       "another); it is in the web gallery.")
    assert again.startswith(f"Job #1 was already approved but had no showcase post. Posted in <#{showcase.id}>: ")
