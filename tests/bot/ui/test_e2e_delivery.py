"""Where results land: safe mentions, the channel after the 15-minute token, DMs for private jobs."""

from datetime import timedelta

import pytest

from storage import JobState
from tests.bot.conftest import Stacks
from tests.bot.helpers import has_video, video
from tests.fakediscord import FakeDiscord, FakeMessage

pytestmark = pytest.mark.usefixtures("logged_errors")

PROMPT = "a paper boat sailing down a rainy street"


def channel_posts(fake: FakeDiscord) -> list[FakeMessage]:
    """Messages the bot posted with its own token (not through an interaction)."""
    return [m for m in fake.messages.values() if m.kind == "channel"]


async def test_mentions_in_a_prompt_can_never_ping_everyone_here_or_roles(stacks: Stacks):
    prompt = "@everyone look at this cat dancing with <@&123456789012345678> and @here friends"
    async with stacks.run() as stack:
        fake = stack.fake
        bob = fake.make_user(name="bob")
        result = await (await video(fake, prompt, user=bob)).wait_original(has_video)

    sent = [r.json for r in fake.requests if r.method in ("POST", "PATCH") and isinstance(r.json, dict)
            and r.json.get("content")]
    assert len(sent) >= 3  # queued, starting or progress, result
    for body in sent:
        assert body["allowed_mentions"] == {"parse": [], "users": [bob.id]}
        assert "@everyone" not in body["content"] and "@here" not in body["content"]
        assert "<@&" not in body["content"]
    assert "@\u200beveryone look at this cat" in result.content and "@\u200bhere friends" in result.content


async def test_after_discord_refuses_the_token_the_result_is_posted_in_the_channel_mentioning_the_user(
    stacks: Stacks, scripted
):
    gate = scripted.gate(PROMPT)
    async with stacks.run(lambda device: scripted) as stack:
        fake = stack.fake
        bob = fake.make_user(name="bob")
        handle = await video(fake, PROMPT, user=bob)
        await handle.wait_original(lambda m: m.content.startswith("Starting"))
        fake.expire_token(handle)  # as 15 minutes after the command: 401 Invalid Webhook Token
        gate.release(100)
        [posted] = await fake.wait_for(lambda: [m for m in channel_posts(fake) if m.attachments])
        status = await handle.wait_original(lambda m: m.content.startswith("Finished"))
        job = await stack.job(1)

    assert posted.content.startswith(f"<@{bob.id}> here is your video · job #1")
    assert posted.extra["allowed_mentions"] == {"parse": [], "users": [bob.id]}
    assert posted.attachments[0].content_type == "video/mp4" and posted.channel_id == fake.channel.id
    assert status.content.startswith("Finished · job #1 · ") and status.content.endswith(f"/{posted.id}")
    refused = [r for r in fake.requests_to("PATCH /webhooks/*") if r.status == 401]
    assert len(refused) == 1  # the first refusal is the last use of the token
    assert job.state == JobState.DONE


async def test_a_token_older_than_the_fallback_age_is_never_used(stacks: Stacks, scripted):
    gate = scripted.gate(PROMPT)
    async with stacks.run(lambda device: scripted) as stack:
        fake = stack.fake
        handle = await video(fake, PROMPT)
        await handle.wait_original(lambda m: m.content.startswith("Starting"))
        used = len(fake.requests_to("PATCH /webhooks/*"))
        stacks.wall.offset = timedelta(minutes=14, seconds=1)  # past TOKEN_FALLBACK_AFTER_S=840
        gate.release(100)
        [posted] = await fake.wait_for(lambda: [m for m in channel_posts(fake) if m.attachments])
        status = await handle.wait_original(lambda m: m.content.startswith("Finished"))

    assert len(fake.requests_to("PATCH /webhooks/*")) == used
    assert posted.content.startswith(f"<@{handle.record.user.id}> here is your video")
    assert status.content.endswith(f"/{posted.id}")  # the status now points at the result...
    assert fake.requests_to(f"PATCH /channels/{fake.channel.id}/messages/{status.id}")  # ...edited with the bot token


async def test_a_private_job_is_answered_privately_and_never_posted_in_the_channel(stacks: Stacks, scripted):
    gate = scripted.gate(PROMPT)
    async with stacks.run(lambda device: scripted) as stack:
        fake = stack.fake
        bob = fake.make_user(name="bob")
        handle = await video(fake, PROMPT, user=bob, private=True)
        status = await handle.wait_original(lambda m: m.content.startswith("Starting"))
        stacks.wall.offset = timedelta(minutes=15)  # too old to edit the private status: the video goes to a DM
        gate.release(100)
        dm = await fake.wait_for_message(lambda m: m.kind == "channel" and bool(m.attachments))

    assert status.ephemeral
    assert fake.channels[dm.channel_id] is fake.dm_channel(bob)
    assert dm.content.startswith(f"<@{bob.id}> here is your video · job #1")
    assert [m for m in channel_posts(fake) if m.channel_id == fake.channel.id] == []


async def test_a_private_job_gets_its_video_in_the_ephemeral_response(stacks: Stacks):
    async with stacks.run() as stack:
        fake = stack.fake
        handle = await video(fake, PROMPT, private=True)
        result = await handle.wait_original(has_video)

    assert handle.callback["data"]["flags"] & 64 and result.ephemeral
    assert channel_posts(fake) == []
