"""🗑 Delete and the job's status message: once the result is gone, the status no longer links to it."""

import logging

import pytest

from tests.bot.conftest import Stacks
from tests.bot.helpers import delete_result, has_video, video, woken_by_logs
from tests.fakediscord import FakeDiscord

pytestmark = pytest.mark.usefixtures("logged_errors")

PROMPT = "a hot air balloon over green hills"
GONE = "Deleted · job #1 · its video was deleted"


def finished(message) -> bool:
    return message.content.startswith("Finished")


async def finished_video(fake: FakeDiscord, **options: object):
    """bob, his /video and its result, once the status reads Finished (and links to the result)."""
    bob = fake.make_user(name="bob")
    asked = await video(fake, PROMPT, user=bob, **options)
    result = await asked.wait_followup(has_video)
    await asked.wait_original(finished)
    return bob, asked, result


async def test_deleting_a_result_makes_its_status_say_so_instead_of_linking_to_it(stacks: Stacks):
    async with stacks.run() as stack:
        fake = stack.fake
        bob, asked, result = await finished_video(fake)
        linked = asked.original.content
        answer = await delete_result(fake, result, 1, bob)
        status = await asked.wait_original(lambda m: not finished(m))

    assert linked.endswith(f"/{result.id}") and answer.content == "🗑️ Deleted job #1." and result.deleted
    assert status.content == GONE and status.components == []


async def test_a_status_past_its_token_is_told_through_the_bot_token(stacks: Stacks):
    async with stacks.run() as stack:
        fake = stack.fake
        bob, asked, result = await finished_video(fake)
        fake.expire_token(asked)  # the /video was more than 15 minutes ago
        await delete_result(fake, result, 1, bob)
        status = await asked.wait_original(lambda m: not finished(m))

    assert status.content == GONE and result.deleted
    assert fake.requests_to(f"PATCH /channels/{fake.channel.id}/messages/{status.id}")


async def test_a_private_status_is_told_while_its_token_lives(stacks: Stacks):
    async with stacks.run() as stack:
        fake = stack.fake
        bob, asked, result = await finished_video(fake, private=True)
        answer = await delete_result(fake, result, 1, bob)
        status = await asked.wait_original(lambda m: not finished(m))

    assert answer.content == "🗑️ Deleted job #1." and status.content == GONE and status.ephemeral


async def test_a_status_that_can_no_longer_be_edited_is_left_and_the_deletion_stands(stacks: Stacks, caplog):
    caplog.set_level(logging.INFO, logger="bot.ui.delivery")
    async with stacks.run() as stack:
        fake = stack.fake
        bob, asked, result = await finished_video(fake)
        linked = asked.original.content
        fake.expire_token(asked)
        fake.fail_next("PATCH /channels/*/messages/*", 400, code=30046,
                       message="Maximum number of edits to messages older than 1 hour reached.")
        with woken_by_logs(fake, "bot.ui.delivery"):
            answer = await delete_result(fake, result, 1, bob)
            await fake.wait_for(lambda: "could not be told the video was deleted (400 30046)" in caplog.text,
                                what="the line saying the status was left")
        job = await stack.job(1)

    assert answer.content == "🗑️ Deleted job #1." and result.deleted and job.deleted_at is not None
    assert asked.original.content == linked
