"""A video whose post the process's end cut short (a kill, a crash, a shutdown past its grace) is made at the next
start: found if Discord had it, posted if the video was kept, else its job fails uncharged and its requester is told."""

from __future__ import annotations

import pytest

from bot.media import MediaStore
from storage import Delivery, JobRecord, JobState
from tests.bot.conftest import Stack, Stacks
from tests.bot.helpers import has_video, tiny_mp4, video
from tests.fakediscord import FakeDiscord, FakeMessage
from tests.fakediscord.records import StoredAttachment

pytestmark = pytest.mark.usefixtures("logged_errors")

PROMPT = "a paper boat sailing down a rainy street"


def videos(fake: FakeDiscord) -> list[FakeMessage]:
    return [m for m in fake.messages.values() if m.attachments and not m.deleted]


async def done_unposted(stack: Stack, *, private: bool = False, keep: bool = True) -> JobRecord:
    """Bob's job as a kill during its upload leaves it: done, its status message on Discord, its delivery pending."""
    fake, repo = stack.fake, stack.repo
    params = {"private": private, "frames": 2, "fps": 8, "width": 64, "height": 64, "steps": 3}
    job = await repo.create_job(user_id=fake.make_user(name="bob").id, user_name="bob", channel_id=fake.channel.id,
                                guild_id=fake.guild.id, prompt=PROMPT, params=params)
    status = fake.seed_message(f"Uploading the video · job #{job.id}")
    await repo.set_status_message(job.id, status.id)
    await repo.mark_running(job.id)
    done = await repo.mark_done(job.id, seed=5, gpu_s=1.5, output_bytes=100)
    if keep:
        await MediaStore(stack.settings.media_dir).save(job.id, tiny_mp4())
    return done


async def stopped_during_the_upload(stacks: Stacks, monkeypatch: pytest.MonkeyPatch, *, received: bool):
    """A bot stopped while Discord holds its video's upload, which Discord then takes (`received`) or not."""
    monkeypatch.setattr("bot.jobs.service.CHECKPOINT_S", 0.05)  # the stop gives up on the held upload at once
    async with stacks.run() as stack:
        fake = stack.fake
        bob = fake.make_user(name="bob")
        upload = fake.hold_next("POST /webhooks/*")  # the video's followup waits for its answer
        handle = await video(fake, PROMPT, user=bob)
        await fake.wait_for(lambda: fake.requests_to("POST /webhooks/*"), what="the upload")
    assert (await stack.job(1)).delivery is Delivery.PENDING
    if not received:
        fake.fail_next("POST /webhooks/*", 500, code=0, message="the upload was lost")
    upload.set()
    await fake.wait_for(lambda: fake.requests_to("POST /webhooks/*")[0].status, what="the upload's answer")
    return handle, bob


async def test_a_post_a_stop_cut_short_is_made_after_the_restart_once(stacks: Stacks, monkeypatch):
    handle, bob = await stopped_during_the_upload(stacks, monkeypatch, received=False)
    async with stacks.run() as stack:
        result = await handle.wait_followup(has_video)
        status = await handle.wait_original(lambda m: m.content.startswith("Finished"))
        job = await stack.job(1)
    async with stacks.run() as stack:  # and not again at the start after
        again = await stack.job(1)

    assert result.content.startswith(f"<@{bob.id}> here is your video · job #1")
    assert "-# ⚠ posted late: the bot restarted while it was posting this video" in result.content
    assert result.custom_ids() and status.content.startswith("Finished · job #1 · ")
    assert (job.state, job.delivery, job.result_message_id) == (JobState.DONE, Delivery.POSTED, result.id)
    assert again == job and videos(stack.fake) == [result]


async def test_an_upload_discord_took_as_the_stop_cut_it_short_is_found_not_posted_twice(stacks: Stacks,
                                                                                         monkeypatch):
    handle, _ = await stopped_during_the_upload(stacks, monkeypatch, received=True)
    [posted] = videos(stacks.fake)
    async with stacks.run() as stack:
        status = await handle.wait_original(lambda m: m.content.startswith("Finished"))
        job = await stack.job(1)

    assert (job.state, job.delivery, job.result_message_id) == (JobState.DONE, Delivery.POSTED, posted.id)
    assert status.content.endswith(f"/{posted.id}") and videos(stack.fake) == [posted]


@pytest.mark.parametrize("where", ["channel", "dms"])
async def test_a_post_discord_had_received_before_the_stop_is_found_and_not_made_again(stacks: Stacks, where: str):
    async with stacks.run() as stack:
        pass
    job = await done_unposted(stack)  # "dms": the bot may not post in the channel, so its requester's DMs got it
    dms = stack.fake.dm_channel(stack.fake.users[job.user_id])
    posted = stack.fake.seed_message(f"<@{job.user_id}> here is your video · job #{job.id}",
                                     channel=dms if where == "dms" else None)
    posted.attachments = [StoredAttachment(stack.fake.ids.next(), f"video-{job.id}.mp4", "video/mp4", tiny_mp4())]

    async with stacks.run() as stack:
        fake = stack.fake
        status = await fake.wait_for_message(lambda m: m.id == job.status_message_id and "Finished" in m.content)
        found = await stack.job(job.id)

    assert (found.state, found.delivery, found.result_message_id) == (JobState.DONE, Delivery.POSTED, posted.id)
    link = f"/@me/{dms.id}/{posted.id}" if where == "dms" else f"/{posted.channel_id}/{posted.id}"
    assert status.content.endswith(link) and videos(fake) == [posted]


@pytest.mark.parametrize("private", [True, False], ids=["private", "public-not-kept"])
async def test_a_video_that_cannot_be_posted_again_fails_uncharged_and_its_requester_is_told(stacks: Stacks,
                                                                                              private: bool):
    async with stacks.run() as stack:
        pass
    job = await done_unposted(stack, private=private, keep=False)

    async with stacks.run() as stack:
        fake = stack.fake
        told = await fake.wait_for_message(lambda m: m.content.startswith(f"<@{job.user_id}> Sorry, job #{job.id}"))
        failed = await stack.job(job.id)
        used = await stack.moderation.repo.count_usage(job.user_id, job.created_at, guild_id=fake.guild.id)

    assert (failed.state, failed.delivery) == (JobState.FAILED, Delivery.UNPOSTED)
    why = "private videos are not kept" if private else "the video was not kept"
    assert f"the bot restarted while it was sending the video ({why})" in told.content
    assert "Nothing was charged." in told.content and used == 0
    assert (fake.channels[told.channel_id] is fake.dm_channel(fake.users[job.user_id])) is private
    assert videos(fake) == []


async def test_a_channel_whose_messages_cannot_be_read_gets_no_second_post(stacks: Stacks):
    async with stacks.run() as stack:
        pass
    job = await done_unposted(stack)
    stack.fake.fail_next("GET /channels/*/messages", 403, code=50001, message="Missing Access")

    async with stacks.run() as stack:
        fake = stack.fake
        told = await fake.wait_for_message(lambda m: m.content.startswith(f"<@{job.user_id}> Sorry, job #{job.id}"))
        failed = await stack.job(job.id)

    assert "(the channel's messages could not be read); if it did not reach you, please run it again" in told.content
    assert failed.state is JobState.FAILED and videos(fake) == []


async def test_a_video_discord_refused_fails_uncharged_and_is_not_posted_again_after_a_restart(stacks: Stacks,
                                                                                               logged_errors):
    logged_errors.expect("delivering the result failed")
    async with stacks.run() as stack:
        fake = stack.fake
        fake.fail_next("POST /webhooks/*", 403, code=50013, message="Missing Permissions")
        handle = await video(fake, PROMPT)
        await handle.wait_original(lambda m: "could not be posted here" in m.content)
    async with stacks.run() as stack:
        after = await stack.job(1)

    assert (after.state, after.delivery, after.error) == (JobState.FAILED, Delivery.UNPOSTED,
                                                          "Discord refused its video (403 50013)")
    assert videos(fake) == [] and fake.requests_to("GET /channels/*/messages") == []
