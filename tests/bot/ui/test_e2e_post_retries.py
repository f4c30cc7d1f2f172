"""A video whose post Discord failed (a 5xx after discord.py's own retries, or a lost connection) is tried again in
the running bot (bot.ui.late_posts.RETRY_AFTER_S): found if Discord had taken it, else posted late; after the last
try its job fails uncharged; a bot that closes meanwhile leaves it to the next start. The waits are a timer the test
fires (tests/bot/helpers.py Timers), never real time."""

from __future__ import annotations

import pytest

from bot.ui.late_posts import RETRY_AFTER_S
from storage import Delivery, JobRecord, JobState
from tests.bot.conftest import Stack, Stacks
from tests.bot.helpers import ScriptedPipeline, Timers, has_video, video
from tests.fakediscord import FakeDiscord, FakeMessage, FakeUser, InteractionHandle

PROMPT = "a lantern floating over a dark lake"
UNAVAILABLE = "503: Service Unavailable"


@pytest.fixture
def failures(logged_errors):
    logged_errors.expect("delivering the result failed")  # each failed upload is logged with its traceback
    return logged_errors


def videos(fake: FakeDiscord) -> list[FakeMessage]:
    return [m for m in fake.messages.values() if m.attachments and not m.deleted]


def fail_the_upload(fake: FakeDiscord, *, taken: bool = False) -> None:
    """The next post in the channel (the video: status edits are PATCHes) is answered 503. Through the bot token
    discord.py makes one try of a 503 (it retries 500, 502, 504 and 524, sleeping 1 + 2n s), so it gives up at once;
    `taken`: Discord posted the video all the same."""
    fake.fail_next(f"POST /channels/{fake.channel.id}/messages", 503, message=UNAVAILABLE, taken=taken)


async def upload_failed(stack: Stack, scripted: ScriptedPipeline, timers: Timers, monkeypatch: pytest.MonkeyPatch,
                        *, taken: bool = False) -> tuple[InteractionHandle, FakeUser, FakeMessage]:
    """Bob's video, whose upload Discord answered 503 (past its interaction token: through the bot token); the
    apology he got."""
    fake = stack.fake
    monkeypatch.setattr(stack.bot.late_posts, "sleep", timers.sleep)
    gate = scripted.gate(PROMPT)
    bob = fake.make_user(name="bob")
    handle = await video(fake, PROMPT, user=bob)
    await handle.wait_original(lambda m: m.content.startswith("Starting"))
    fake.expire_token(handle)
    fail_the_upload(fake, taken=taken)
    gate.release(100)
    apology = await fake.wait_for_message(lambda m: "could not be posted here" in m.content)
    return handle, bob, apology


async def charged(stack: Stack, job: JobRecord) -> int:
    return await stack.moderation.repo.count_usage(job.user_id, job.created_at, guild_id=stack.fake.guild.id)


async def test_a_video_discord_failed_to_take_is_posted_late_a_minute_later_and_charged_once(stacks: Stacks,
                                                                                             scripted, monkeypatch,
                                                                                             failures):
    timers = Timers()
    async with stacks.run(lambda device: scripted) as stack:
        fake = stack.fake
        handle, bob, apology = await upload_failed(stack, scripted, timers, monkeypatch)
        pending = await stack.job(1)
        waited = await timers.fire()
        result = await fake.wait_for_message(has_video)
        status = await handle.wait_original(lambda m: m.content.startswith("Finished") and f"/{result.id}" in m.content)
        job = await stack.job(1)
        used = await charged(stack, job)

    assert apology.content == (f"<@{bob.id}> Sorry, job #1 finished but could not be posted here ({UNAVAILABLE}); "
                               "the bot tries again in 1 minute.")
    assert pending.delivery is Delivery.PENDING and waited == RETRY_AFTER_S[0] == 60
    assert result.content.startswith(f"<@{bob.id}> here is your video · job #1")
    assert "-# ⚠ posted late: Discord failed while this video was being posted" in result.content
    assert result.custom_ids() and status.content.endswith(f"/{result.id}")
    assert (job.state, job.delivery, job.result_message_id) == (JobState.DONE, Delivery.POSTED, result.id)
    assert used == 1 and videos(fake) == [result] and timers.waiting == []


async def test_an_upload_discord_took_though_it_answered_503_is_found_and_not_posted_twice(stacks: Stacks, scripted,
                                                                                           monkeypatch, failures):
    timers = Timers()
    async with stacks.run(lambda device: scripted) as stack:
        fake = stack.fake
        handle, _, _ = await upload_failed(stack, scripted, timers, monkeypatch, taken=True)
        [posted] = videos(fake)
        await timers.fire()
        status = await handle.wait_original(lambda m: m.content.startswith("Finished") and f"/{posted.id}" in m.content)
        job = await stack.job(1)
        used = await charged(stack, job)

    assert (job.state, job.delivery, job.result_message_id) == (JobState.DONE, Delivery.POSTED, posted.id)
    assert status.content.endswith(f"/{posted.id}") and videos(fake) == [posted]
    assert used == 1 and timers.waiting == []


async def test_a_video_every_try_fails_for_fails_uncharged_and_its_requester_is_told(stacks: Stacks, scripted,
                                                                                     monkeypatch, failures):
    timers = Timers()
    async with stacks.run(lambda device: scripted) as stack:
        fake = stack.fake
        _, bob, _ = await upload_failed(stack, scripted, timers, monkeypatch)
        waits = []
        for _ in RETRY_AFTER_S:
            fail_the_upload(fake)
            waits.append(await timers.fire())
        told = await fake.wait_for_message(lambda m: m.content.startswith(f"<@{bob.id}> Sorry, job #1 finished, but"))
        job = await stack.job(1)
        used = await charged(stack, job)

    uploads = [r.status for r in fake.requests_to(f"POST /channels/{fake.channel.id}/messages") if r.files]
    assert waits == list(RETRY_AFTER_S) and uploads == [503] * (1 + len(RETRY_AFTER_S))
    assert told.content == (f"<@{bob.id}> Sorry, job #1 finished, but Discord failed while the bot was sending the "
                            "video (4 tries failed); please run it again. Nothing was charged.")
    assert (job.state, job.delivery) == (JobState.FAILED, Delivery.UNPOSTED) and used == 0
    assert videos(fake) == [] and timers.waiting == []


async def test_a_bot_closing_while_a_retry_waits_leaves_the_post_to_the_next_start(stacks: Stacks, scripted,
                                                                                   monkeypatch, failures):
    timers = Timers()
    async with stacks.run(lambda device: scripted) as stack:
        await upload_failed(stack, scripted, timers, monkeypatch)
        await timers.armed()  # the first try waits: the bot closes now
    left = await stack.job(1)
    async with stacks.run() as stack:
        result = await stack.fake.wait_for_message(has_video)
        job = await stack.job(1)

    assert left.delivery is Delivery.PENDING and len(timers.waiting) == 1  # its wait was never over
    assert "-# ⚠ posted late: the bot restarted while it was posting this video" in result.content
    assert (job.state, job.delivery, job.result_message_id) == (JobState.DONE, Delivery.POSTED, result.id)
    assert videos(stack.fake) == [result]


async def test_a_try_that_cannot_look_for_the_post_through_discords_503_waits_for_the_next(stacks: Stacks, scripted,
                                                                                           monkeypatch, failures):
    timers = Timers()
    async with stacks.run(lambda device: scripted) as stack:
        fake = stack.fake
        handle, _, _ = await upload_failed(stack, scripted, timers, monkeypatch)
        fake.fail_next(f"GET /channels/{fake.channel.id}/messages", 503, message=UNAVAILABLE)
        waits = [await timers.fire(), await timers.fire()]  # the first try cannot look, the second posts it
        result = await fake.wait_for_message(has_video)
        await handle.wait_original(lambda m: m.content.startswith("Finished") and f"/{result.id}" in m.content)
        job = await stack.job(1)

    assert waits == list(RETRY_AFTER_S[:2]) and "posted late: Discord failed" in result.content
    assert (job.state, job.delivery, job.result_message_id) == (JobState.DONE, Delivery.POSTED, result.id)
    assert videos(fake) == [result]


async def test_a_video_whose_upload_lost_its_connection_is_posted_late(stacks: Stacks, scripted, monkeypatch,
                                                                       failures):
    timers = Timers()
    async with stacks.run(lambda device: scripted) as stack:
        fake = stack.fake
        monkeypatch.setattr(stack.bot.late_posts, "sleep", timers.sleep)
        bob = fake.make_user(name="bob")
        fake.drop_next("POST /webhooks/*")  # the followup with the video, through the living interaction token
        handle = await video(fake, PROMPT, user=bob)
        apology = (await handle.wait_original(lambda m: "could not be posted here" in m.content)).content
        await timers.fire()
        result = await handle.wait_followup(has_video)
        await handle.wait_original(lambda m: m.content.startswith("Finished") and f"/{result.id}" in m.content)
        job = await stack.job(1)

    assert apology == ("Sorry, job #1 finished but could not be posted here (the connection to Discord was "
                               "lost); the bot tries again in 1 minute.")
    assert "posted late: Discord failed" in result.content and videos(fake) == [result]
    assert (job.state, job.delivery, job.result_message_id) == (JobState.DONE, Delivery.POSTED, result.id)
