"""Where results land: safe mentions, the channel after the 15-minute token, DMs for private jobs."""

import re
import time
from datetime import timedelta

import pytest

from bot.gpu.models import Models
from storage import JobState
from tests.bot.conftest import Stacks
from tests.bot.helpers import ScriptedPipeline, contents, has_video, rendering_past_its_token, video
from tests.clocks import Ticking
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
        result = await (await video(fake, prompt, user=bob)).wait_followup(has_video)

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
        handle, bob = await rendering_past_its_token(fake, PROMPT)
        gate.release(100)
        [posted] = await fake.wait_for(lambda: [m for m in channel_posts(fake) if m.attachments])
        status = await handle.wait_original(lambda m: m.content.startswith("Finished"))
        job = await stack.job(1)

    assert posted.content.startswith(f"<@{bob.id}> here is your video · job #1")
    assert posted.extra["allowed_mentions"] == {"parse": [], "users": [bob.id]}
    assert posted.attachments[0].content_type == "video/mp4" and posted.channel_id == fake.channel.id
    assert status.content.startswith("Finished · job #1 · ") and status.content.endswith(f"/{posted.id}")
    refused = [r for r in fake.requests_to("* /webhooks/*") if r.status == 401]
    assert len(refused) == 1  # the first refusal is the last use of the token
    assert job.state == JobState.DONE and job.result_message_id == posted.id


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


async def test_where_the_bot_may_not_post_a_video_past_the_token_goes_to_its_requester_directly(stacks: Stacks,
                                                                                                 scripted):
    gate = scripted.gate(PROMPT)
    async with stacks.run(lambda device: scripted) as stack:
        fake = stack.fake
        handle, bob = await rendering_past_its_token(fake, PROMPT)
        fake.fail_next(f"POST /channels/{fake.channel.id}/messages", 403, code=50013, message="Missing Permissions")
        gate.release(100)
        dm = await fake.wait_for_message(lambda m: m.kind == "channel" and bool(m.attachments))
        status = await handle.wait_original(lambda m: m.content.startswith("Finished"))
        job = await stack.job(1)

    assert fake.channels[dm.channel_id] is fake.dm_channel(bob)
    assert dm.content.startswith(f"<@{bob.id}> here is your video · job #1")
    assert status.content.endswith(f"/@me/{dm.channel_id}/{dm.id}")
    assert (job.state, job.result_message_id) == (JobState.DONE, dm.id)


async def test_a_status_refused_for_missing_permissions_leaves_the_channel_open_to_the_later_ones(
    stacks: Stacks, scripted: ScriptedPipeline
):
    """403 50013 refuses one message (here a live preview: the bot may not attach files), not the channel (deleted
    10003, hidden 50001): the job's later statuses and its video still go there."""
    scripted.previews = True
    gate = scripted.gate(PROMPT)
    async with stacks.run(lambda device: Models(scripted, preview_interval_s=0.0)) as stack:
        fake = stack.fake
        bob = fake.make_user(name="bob")
        events = stack.events()
        handle = await video(fake, PROMPT, user=bob, steps=8)
        assert (await events.next())[0] == "job_started"  # at t=0 on the bot's monotonic clock
        fake.expire_token(handle)  # its 15 minutes are up: statuses go through the bot token in the channel
        gate.release()  # step 1: too soon after "Starting" to show
        assert (await events.next())[0] == "job_progress"
        edit = f"PATCH /channels/{fake.channel.id}/messages/{handle.original.id}"
        post = f"POST /channels/{fake.channel.id}/messages"
        fake.fail_next(edit, 403, code=50013, message="Missing Permissions")  # the status edit with the preview...
        fake.fail_next(post, 403, code=50013, message="Missing Permissions")  # ...and the new status it falls back to
        stacks.monotonic.t = 5.0
        gate.release(100)  # step 2 shows, with step 1's preview; steps 3-7 are too soon; the last always shows
        await events.until("job_done")
        job = await stack.job(1)

    refused = [(r.method, [f.filename for f in r.files]) for r in fake.requests_to(edit) + fake.requests_to(post)
               if r.status == 403]
    [posted] = [m for m in channel_posts(fake) if has_video(m)]
    assert refused == [("PATCH", ["preview.gif"]), ("POST", ["preview.gif"])]
    assert [text.split(" · ")[0] for text in contents(handle.original)][-3:] == [
        "Encoding the video", "Uploading the video", "Finished"]  # the refusal's later statuses, edited in the channel
    assert handle.original.content.endswith(f"/{fake.channel.id}/{posted.id}")
    assert posted.channel_id == fake.channel.id and posted.content.startswith(f"<@{bob.id}> here is your video")
    assert (job.state, job.result_message_id) == (JobState.DONE, posted.id)


async def test_a_video_that_can_reach_nobody_fails_and_is_not_charged(stacks: Stacks, scripted, logged_errors):
    logged_errors.expect("delivering the result failed")
    logged_errors.expect("while apologising")
    gate = scripted.gate(PROMPT)
    async with stacks.run(lambda device: scripted) as stack:
        fake = stack.fake
        await rendering_past_its_token(fake, PROMPT)
        fake.fail_next("POST /channels/*/messages", 403, code=50013, message="Missing Permissions", times=10)
        gate.release(100)
        await fake.wait_for(lambda: len(fake.requests_to("POST /channels/*/messages")) >= 4, what="the tries")
    async with stacks.run(lambda device: scripted) as stack:
        job = await stack.job(1)
        used = await stack.moderation.repo.count_usage(job.user_id, job.created_at, guild_id=fake.guild.id)

    assert (job.state, job.error, used) == (JobState.FAILED, "Discord refused its video (403 50013)", 0)


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


async def test_a_private_job_gets_its_video_in_an_ephemeral_followup_that_mentions_only_its_requester(stacks: Stacks):
    async with stacks.run() as stack:
        fake = stack.fake
        bob = fake.make_user(name="bob")
        handle = await video(fake, PROMPT, user=bob, private=True)
        result = await handle.wait_followup(has_video)
        status = await handle.wait_original(lambda m: m.content.startswith("Finished"))
        job = await stack.job(1)

    assert handle.callback["data"]["flags"] & 64 and status.ephemeral and result.ephemeral
    assert result.content.startswith(f"<@{bob.id}> here is your video · job #1")
    assert result.extra["allowed_mentions"] == {"parse": [], "users": [bob.id]}
    assert status.content == "Finished · job #1 · your video is in the message below"
    assert channel_posts(fake) == [] and job.result_message_id == result.id


async def test_a_queued_status_moves_up_when_the_job_ahead_finishes_and_never_shows_an_eta_in_the_past(
    stacks: Stacks, scripted
):
    first, second, third = "a red fox running through snow", "a blue whale swimming", "a green frog on a leaf"
    gates = [scripted.gate(first), scripted.gate(second)]
    stacks.monotonic = Ticking()
    async with stacks.run(lambda device: scripted) as stack:
        fake = stack.fake
        alice, bob, carol = (fake.make_user(name=name) for name in ("alice", "bob", "carol"))
        running = await video(fake, first, user=alice)
        await running.wait_original(lambda m: m.content.startswith("Starting"))
        await (await video(fake, second, user=bob)).wait_original(lambda m: m.content.startswith("Queued #1"))
        waiting = await video(fake, third, user=carol)
        await waiting.wait_original(lambda m: m.content.startswith("Queued #2"))
        gates[0].release(100)  # the job ahead finishes; the second starts, the third is next
        await running.wait_followup(has_video)
        buttons = (await waiting.wait_original(lambda m: m.content.startswith("Queued #1"))).custom_ids()
        gates[1].release(100)
        await waiting.wait_followup(has_video)

    assert buttons == ["video:cancel:3"]  # the refresh keeps ✖ Cancel
    edits = [r for r in fake.requests_to(f"PATCH /webhooks/*/{waiting.token}/messages/@original")
             if r.json["content"].startswith("Queued")]
    assert [r.json["content"].split(" · ")[0] for r in edits] == ["Queued #2", "Queued #1"]
    for edit in edits:  # every ETA shown was still ahead when it was written, or said "any moment now"
        written = time.time() - (time.monotonic() - edit.time)
        countdown = re.search(r"ETA <t:(\d+):R>", edit.json["content"])
        assert "ETA any moment now" in edit.json["content"] or int(countdown[1]) > written


async def test_after_a_restart_queued_statuses_are_written_again_with_an_eta_learned_from_the_jobs_log(
    stacks: Stacks, scripted
):
    first, second = "a red fox running through snow", "a blue whale swimming"
    scripted.gate(first, permits=1)  # step 1 runs, then it holds the worker (in both bots)
    async with stacks.run(lambda device: scripted) as stack:
        fake = stack.fake
        running = await video(fake, first)
        await scripted.finished_step(first, 1)
        waiting = await video(fake, second)
        await waiting.wait_original(lambda m: m.content.startswith("Queued #1"))
        for _ in range(3):  # earlier videos took 10 minutes each on this GPU
            done = await stack.repo.create_job(user_id=1, user_name="old", channel_id=fake.channel.id, prompt="x",
                                               params={})
            await stack.repo.mark_running(done.id)
            await stack.repo.mark_done(done.id, seed=1, gpu_s=600.0, output_bytes=10)
    edits = waiting.original.edits

    async with stacks.run(lambda device: scripted) as stack:  # the first job runs again and holds; the second waits
        status = await waiting.wait_original(lambda m: m.edits > edits)
        written = time.time()
        job = await stack.job(2)

    countdown = re.fullmatch(r"Queued #1 · ETA <t:(\d+):R> · job #2\n> a blue whale swimming", status.content)
    assert countdown is not None, status.content
    assert 1100 < int(countdown[1]) - written <= 1200  # the running job's 10 minutes, then its own (not a 5 s guess)
    assert job.state == JobState.QUEUED and running.original.content.startswith("Starting")
