"""A job's video deleted in Discord by hand (a moderator tidying the channel, one message or a purge): its status no
longer reads "Finished" with a link to a message that is gone, but says its video was deleted, as after 🗑 Delete."""

import pytest

from tests.bot.conftest import Stack, Stacks
from tests.bot.helpers import delete_result, has_video, video
from tests.fakediscord import FakeDiscord, FakeMessage, InteractionHandle

pytestmark = pytest.mark.usefixtures("logged_errors")

PROMPT = "a hot air balloon over green hills"
GONE = "Deleted · job #{} · its video was deleted"


def finished(message: FakeMessage) -> bool:
    return message.content.startswith("Finished")


async def finished_video(fake: FakeDiscord, prompt: str = PROMPT) -> tuple[InteractionHandle, FakeMessage]:
    """bob's /video and its result, once the status reads Finished (and links to the result)."""
    asked = await video(fake, prompt, user=fake.make_user(name="bob"))
    result = await asked.wait_followup(has_video)
    await asked.wait_original(finished)
    return asked, result


async def test_a_video_deleted_by_hand_leaves_its_status_saying_so_instead_of_linking_to_it(stacks: Stacks):
    async with stacks.run() as stack:
        fake = stack.fake
        asked, result = await finished_video(fake)
        linked = asked.original.content
        await fake.delete_by_hand(result)
        status = await asked.wait_original(lambda m: not finished(m))
        job = await stack.job(1)

    assert linked.endswith(f"/{result.id}")
    assert status.content == GONE.format(1) and status.components == []
    assert job.result_message_id == result.id  # kept, as 🗑 Delete keeps it


async def test_a_status_past_its_token_is_told_through_the_bot_token(stacks: Stacks):
    async with stacks.run() as stack:
        fake = stack.fake
        asked, result = await finished_video(fake)
        fake.expire_token(asked)  # the /video was more than 15 minutes ago
        await fake.delete_by_hand(result)
        status = await asked.wait_original(lambda m: not finished(m))

    assert status.content == GONE.format(1)
    assert fake.requests_to(f"PATCH /channels/{fake.channel.id}/messages/{status.id}")


async def test_videos_purged_at_once_leave_each_status_saying_so(stacks: Stacks):
    async with stacks.run() as stack:
        fake = stack.fake
        first, one = await finished_video(fake)
        second, two = await finished_video(fake, "a kite over a beach")
        chat = fake.seed_message("lol")
        await fake.purge_by_hand(one, two, chat)
        statuses = [await handle.wait_original(lambda m: not finished(m)) for handle in (first, second)]

    assert [status.content for status in statuses] == [GONE.format(1), GONE.format(2)]


async def test_another_message_deleted_by_hand_leaves_a_status_linking_to_its_video(stacks: Stacks, monkeypatch):
    async with stacks.run() as stack:
        fake = stack.fake
        asked, result = await finished_video(fake)
        heard = acted_on(stack, monkeypatch)
        edits = len(fake.requests_to(edits_of(asked)))
        chat = fake.seed_message("nice balloon")
        await fake.delete_by_hand(chat)
        await fake.wait_for(lambda: heard == [[chat.id]], what="the bot to hear of the deletion")

    assert len(fake.requests_to(edits_of(asked))) == edits
    assert finished(asked.original) and asked.original.content.endswith(f"/{result.id}")


async def test_a_video_deleted_with_its_delete_button_has_its_status_told_once(stacks: Stacks, monkeypatch):
    """🗑 Delete tells the status itself; the MESSAGE_DELETE its own removal brings tells it nothing more."""
    async with stacks.run() as stack:
        fake = stack.fake
        asked, result = await finished_video(fake)
        heard = acted_on(stack, monkeypatch)
        edits = len(fake.requests_to(edits_of(asked)))
        await delete_result(fake, result, 1, fake.users[(await stack.job(1)).user_id])
        await asked.wait_original(lambda m: not finished(m))
        await fake.gateway.dispatch("MESSAGE_DELETE", {  # Discord tells of the bot's own deletion (the fake does not)
            "id": str(result.id), "channel_id": str(result.channel_id), "guild_id": str(fake.guild.id)})
        await fake.wait_for(lambda: heard == [[result.id]], what="the bot to hear of the deletion")

    assert asked.original.content == GONE.format(1)
    assert len(fake.requests_to(edits_of(asked))) == edits + 1


def edits_of(asked: InteractionHandle) -> str:
    """The requests that edit the interaction's status through its token."""
    return f"PATCH /webhooks/*/{asked.token}/messages/@original"


def acted_on(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> list[list[int]]:
    """The message ids of each MESSAGE_DELETE the bot has looked up for videos, as each lookup (and what it did)
    ends: a test waits on it for the bot to be done with a deletion that changes nothing."""
    delivery, heard = stack.bot.delivery, []
    looked_up = delivery.results_deleted

    async def spy(message_ids: list[int]) -> None:
        await looked_up(message_ids)
        heard.append(message_ids)
        stack.fake.notify()

    monkeypatch.setattr(delivery, "results_deleted", spy)
    return heard
