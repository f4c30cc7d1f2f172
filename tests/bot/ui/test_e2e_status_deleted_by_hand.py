"""A job's status message deleted by hand (a moderator tidying the channel): it is not posted again, and the job's
outcome still reaches its requester as a new message that mentions them."""

import logging
from collections.abc import Awaitable
from typing import Any

import pytest

from storage import JobState
from tests.bot.conftest import Stacks
from tests.bot.helpers import ScriptedPipeline, has_video, rendering_past_its_token, video, woken_by_logs
from tests.fakediscord import FakeDiscord, FakeMessage, FakeUser, InteractionHandle

pytestmark = pytest.mark.usefixtures("logged_errors")

PROMPT = "a lighthouse in a storm at night"
SECOND = "a fox running through fresh snow"


def posted_by_bot_token(fake: FakeDiscord) -> list[FakeMessage]:
    """Messages the bot posted with its own token (not through an interaction)."""
    return [m for m in fake.messages.values() if m.kind == "channel"]


async def deleted_by_hand(fake: FakeDiscord, status: FakeMessage, caplog: pytest.LogCaptureFixture) -> None:
    """A moderator deletes the status in Discord; until the bot has heard of it (MESSAGE_DELETE)."""
    await heard(fake, caplog, fake.delete_by_hand(status), 1)


async def purged(fake: FakeDiscord, statuses: list[FakeMessage], caplog: pytest.LogCaptureFixture) -> None:
    """A moderation bot purges the channel (Discord's bulk delete); until the bot has heard of it
    (MESSAGE_DELETE_BULK)."""
    await heard(fake, caplog, fake.purge_by_hand(*statuses), len(statuses))


async def heard(fake: FakeDiscord, caplog: pytest.LogCaptureFixture, deletion: Awaitable[None], statuses: int) -> None:
    """Until the bot has heard that `statuses` statuses were deleted, after `deletion`."""
    caplog.set_level(logging.INFO, logger="bot.ui.delivery")
    with woken_by_logs(fake, "bot.ui.delivery"):
        await deletion
        await fake.wait_for(lambda: caplog.text.count("its status message was deleted by hand") == statuses,
                            what="the bot to hear of the deletion")


async def started_then_deleted(fake: FakeDiscord,
                               caplog: pytest.LogCaptureFixture) -> tuple[FakeUser, InteractionHandle]:
    """bob's /video, its status deleted by hand once it reads "Starting"; bob and the interaction."""
    bob = fake.make_user(name="bob")
    handle = await video(fake, PROMPT, user=bob)
    await deleted_by_hand(fake, await handle.wait_original(lambda m: m.content.startswith("Starting")), caplog)
    return bob, handle


async def test_a_status_deleted_while_rendering_is_not_posted_again_and_the_video_still_mentions_its_requester(
        stacks: Stacks, scripted: ScriptedPipeline, caplog: pytest.LogCaptureFixture):
    gate = scripted.gate(PROMPT)
    async with stacks.run(lambda device: scripted) as stack:
        fake = stack.fake
        bob, handle = await started_then_deleted(fake, caplog)
        edits = len(fake.requests_to("PATCH /webhooks/*/messages/@original"))
        events = stack.events()
        gate.release(100)
        await events.until("job_done")
        job = await stack.job(1)

    [result] = [m for m in handle.followups if has_video(m)]
    assert len(fake.requests_to("PATCH /webhooks/*/messages/@original")) == edits  # the deleted status is left be
    assert posted_by_bot_token(fake) == []  # no new status, and the video went through the token as usual
    assert result.content.startswith(f"<@{bob.id}> here is your video · job #1") and not result.ephemeral
    assert (job.state, job.result_message_id) == (JobState.DONE, result.id)


async def test_statuses_a_moderation_bot_purged_are_not_posted_again_and_each_video_still_arrives(
        stacks: Stacks, scripted: ScriptedPipeline, caplog: pytest.LogCaptureFixture):
    first, second = scripted.gate(PROMPT), scripted.gate(SECOND)
    async with stacks.run(lambda device: scripted) as stack:
        fake = stack.fake
        alice, bob = fake.make_user(name="alice"), fake.make_user(name="bob")
        rendering = await video(fake, PROMPT, user=alice)
        await rendering.wait_original(lambda m: m.content.startswith("Starting"))
        queued = await video(fake, SECOND, user=bob)
        await queued.wait_original(lambda m: m.content.startswith("Queued"))
        await purged(fake, [rendering.original, queued.original], caplog)
        edits = len(fake.requests_to("PATCH /webhooks/*/messages/@original"))
        events = stack.events()
        first.release(100)
        second.release(100)
        await events.until("job_done")
        await events.until("job_done")
        results = [[m for m in handle.followups if has_video(m)] for handle in (rendering, queued)]

    assert len(fake.requests_to("PATCH /webhooks/*/messages/@original")) == edits and posted_by_bot_token(fake) == []
    assert [result.content.split(" here is")[0] for [result] in results] == [f"<@{alice.id}>", f"<@{bob.id}>"]


async def test_a_status_deleted_while_the_bot_was_away_is_not_posted_again(stacks: Stacks, scripted: ScriptedPipeline):
    """No MESSAGE_DELETE came (the bot was not connected): the channel answers 404 Unknown Message for it."""
    gate = scripted.gate(PROMPT)
    async with stacks.run(lambda device: scripted) as stack:
        fake = stack.fake
        handle, bob = await rendering_past_its_token(fake, PROMPT)
        fake.delete_while_away(handle.original)
        events = stack.events()
        gate.release(100)
        await events.until("job_done")

    [result] = posted_by_bot_token(fake)  # the video, and no new status
    assert has_video(result) and result.content.startswith(f"<@{bob.id}> here is your video · job #1")


async def test_a_status_deleted_past_its_token_is_not_posted_again_and_the_video_goes_to_the_channel(
        stacks: Stacks, scripted: ScriptedPipeline):
    gate = scripted.gate(PROMPT)
    async with stacks.run(lambda device: scripted) as stack:
        fake = stack.fake
        handle, bob = await rendering_past_its_token(fake, PROMPT)
        await fake.delete_by_hand(handle.original)
        events = stack.events()
        gate.release(100)
        await events.until("job_done")
        job = await stack.job(1)

    [result] = posted_by_bot_token(fake)  # the video, and no new status
    assert has_video(result) and result.content.startswith(f"<@{bob.id}> here is your video · job #1")
    assert (job.state, job.result_message_id) == (JobState.DONE, result.id)


async def test_a_queued_status_deleted_by_hand_is_not_posted_again_when_its_job_starts(
        stacks: Stacks, scripted: ScriptedPipeline):
    first, second = scripted.gate(PROMPT), scripted.gate(SECOND)
    async with stacks.run(lambda device: scripted) as stack:
        fake = stack.fake
        alice, bob = fake.make_user(name="alice"), fake.make_user(name="bob")
        ahead = await video(fake, PROMPT, user=alice)
        await ahead.wait_original(lambda m: m.content.startswith("Starting"))
        queued = await video(fake, SECOND, user=bob)
        status = await queued.wait_original(lambda m: m.content.startswith("Queued"))
        fake.expire_token(queued)  # its edits go through the bot token from now on
        await fake.delete_by_hand(status)
        first.release(100)
        await ahead.wait_followup(has_video)
        events = stack.events()
        second.release(100)
        await events.until("job_done")

    [result] = posted_by_bot_token(fake)
    assert has_video(result) and result.content.startswith(f"<@{bob.id}> here is your video · job #2")


class FailingPipeline(ScriptedPipeline):
    """Runs its steps as gated, then fails."""

    def generate(self, request: Any, *args: Any, **kwargs: Any) -> Any:
        super().generate(request, *args, **kwargs)
        raise ValueError("a made-up failure")


async def test_a_failure_after_the_status_was_deleted_is_told_to_its_requester_in_a_new_message(
        stacks: Stacks, logged_errors, caplog: pytest.LogCaptureFixture):
    logged_errors.expect("job 1 failed")
    scripted = FailingPipeline()
    gate = scripted.gate(PROMPT)
    async with stacks.run(lambda device: scripted) as stack:
        fake = stack.fake
        bob, handle = await started_then_deleted(fake, caplog)
        events = stack.events()
        gate.release(100)
        await events.until("job_failed")

    [told] = handle.followups
    assert told.content.startswith(f"<@{bob.id}> Sorry, job #1 failed") and posted_by_bot_token(fake) == []
