"""A busy evening, end to end: cancels and a block that race the worker taking the job (a batch losing a member as it
starts), a second press of ✖ Cancel, a cancel or a block while the finished video uploads, a cancel past the
15-minute token, and channels deleted or closed to the bot while their videos render.

The real discord.py client against the fake Discord; nothing sleeps: the tests wait on events and requests, and a
write the test holds (HeldWrite) stands for a database slow to take it.
"""

from __future__ import annotations

import threading
from collections.abc import Awaitable, Callable

import pytest

from storage import JobState
from tests.bot.conftest import EventLog, Stack, Stacks
from tests.bot.helpers import HeldWrite, StyledPipeline, command, has_video, people, rendering_past_its_token, video
from tests.fakediscord import FakeDiscord, FakeMessage, FakeUser, InteractionHandle

pytestmark = pytest.mark.usefixtures("logged_errors")

PROMPT = "a lantern festival over a dark river"
OTHERS = ("a snail crossing a mossy log", "a kite above a windy beach")


async def charged(stack: Stack, job_id: int) -> int:
    """The quota units the job's user has used in its server."""
    job = await stack.job(job_id)
    return await stack.moderation.repo.count_usage(job.user_id, job.created_at, guild_id=job.guild_id)


async def test_a_cancel_that_comes_as_the_worker_takes_the_job_stops_it_before_it_starts_and_costs_nothing(
    stacks: Stacks, scripted
):
    async with stacks.run(lambda device: scripted) as stack:
        fake = stack.fake
        starting = HeldWrite(stack.repo, "mark_running", 1)  # the worker took it; its start is being written
        handle = await video(fake, PROMPT)
        await starting.reached()
        reply = await (await fake.slash("cancel")).wait_answer()
        starting.release.set()
        status = await handle.wait_original(lambda m: m.content == "✖ Cancelled job #1.")
        job = await stack.job(1)
        used = await charged(stack, 1)

    assert reply.ephemeral and reply.content == "✖ Cancelled job #1."  # not "Stopping …": no step will run
    assert (job.state, job.started_at, used) == (JobState.CANCELLED, None, 0)  # cancelled before it started: free
    assert scripted.started == [] and "Starting" not in " ".join(h["content"] for h in status.history)


async def batch_starting(stack: Stack, first: threading.Semaphore, bob: FakeUser, carol: FakeUser
                         ) -> tuple[InteractionHandle, InteractionHandle, HeldWrite]:
    """PROMPT renders (held by `first`) while Bob's job 2 and Carol's job 3, of one shape, queue behind it; then
    it finishes, and jobs 2 and 3 start as one batch: returned with job 3's start being written (held)."""
    running = await video(stack.fake, PROMPT)
    await running.wait_original(lambda m: m.content.startswith("Starting"))
    bobs = await video(stack.fake, OTHERS[0], user=bob)
    await bobs.wait_original(lambda m: m.content.startswith("Queued #1"))
    carols = await video(stack.fake, OTHERS[1], user=carol)
    await carols.wait_original(lambda m: m.content.startswith("Queued #2"))
    starting = HeldWrite(stack.repo, "mark_running", 3)
    first.release(100)
    await starting.reached()
    return bobs, carols, starting


@pytest.mark.parametrize("cancelled", [3, 2], ids=["its start not written yet", "its start written"])
async def test_a_batch_member_cancelled_before_its_batch_reaches_the_worker_is_left_out_and_costs_nothing(
    stacks: Stacks, cancelled: int
):
    """Jobs 2 and 3, of one shape, start as one batch; job 3's start is being written when one of them is cancelled:
    job 3 itself, or job 2, whose start was written. Neither reaches the GPU then: recorded as never started, free;
    the other renders alone."""
    pipeline = StyledPipeline()
    first = pipeline.gate(PROMPT)
    async with stacks.run(lambda device: pipeline, batch_max=2) as stack:
        fake = stack.fake
        bob, carol = (fake.make_user(name=name) for name in ("bob", "carol"))
        bobs, carols, starting = await batch_starting(stack, first, bob, carol)
        (gone, gone_user, gone_prompt), (kept, kept_user) = (
            ((carols, carol, OTHERS[1]), (bobs, bob)) if cancelled == 3 else ((bobs, bob, OTHERS[0]), (carols, carol)))
        reply = await (await fake.slash("cancel", user=gone_user)).wait_answer()
        starting.release.set()
        result = await kept.wait_followup(has_video)
        status = await gone.wait_original(lambda m: m.content == f"✖ Cancelled job #{cancelled}.")
        job = await stack.job(cancelled)
        used = await charged(stack, cancelled)

    assert reply.ephemeral and reply.content == f"✖ Cancelled job #{cancelled}."  # not "Stopping …"
    assert result.content.startswith(f"<@{kept_user.id}> here is your video · job #{5 - cancelled}")
    assert (job.state, job.started_at, used) == (JobState.CANCELLED, None, 0)
    assert gone_prompt not in pipeline.started and not has_video(status)  # the GPU never rendered it


async def test_the_rest_of_a_batch_renders_while_its_cancelled_members_record_is_written(stacks: Stacks):
    """Bob's job 2 (its start written) is cancelled while Carol's job 3, its batch partner, starts; undoing job 2's
    start is slow (a held write): Carol's video renders meanwhile, the GPU does not wait for that record."""
    pipeline = StyledPipeline()
    first = pipeline.gate(PROMPT)
    pipeline.gate(OTHERS[1], permits=1)  # one step, then it waits for the test
    async with stacks.run(lambda device: pipeline, batch_max=2) as stack:
        fake = stack.fake
        bob, carol = (fake.make_user(name=name) for name in ("bob", "carol"))
        bobs, carols, starting = await batch_starting(stack, first, bob, carol)
        undoing = HeldWrite(stack.repo, "requeue", 2)
        await (await fake.slash("cancel", user=bob)).wait_answer()
        starting.release.set()
        await undoing.reached()
        await pipeline.finished_step(OTHERS[1], 1)  # on the GPU while job 2's record waits
        undoing.release.set()
        status = await bobs.wait_original(lambda m: m.content == "✖ Cancelled job #2.")
        pipeline.open(OTHERS[1])
        result = await carols.wait_followup(has_video)
        job = await stack.job(2)
        used = await charged(stack, 2)

    assert result.content.startswith(f"<@{carol.id}> here is your video · job #3")
    assert (job.state, job.started_at, used) == (JobState.CANCELLED, None, 0) and not has_video(status)
    assert OTHERS[0] not in pipeline.started


async def test_a_block_as_the_users_job_joins_a_batch_counts_it_as_queued_and_cancelled_not_as_running(
    stacks: Stacks
):
    """Carol's job 3 is starting in a batch with Bob's job 2 (its start being written) when a moderator blocks her:
    it never reaches the GPU, so the block's answer counts it with her queued videos, not as one that stops."""
    pipeline = StyledPipeline()
    first = pipeline.gate(PROMPT)
    async with stacks.run(lambda device: pipeline, batch_max=2) as stack:
        fake = stack.fake
        mod, bob = people(fake)
        carol = fake.make_user(name="carol")
        bobs, carols, starting = await batch_starting(stack, first, bob, carol)
        answer = await command(fake, "videomod block", mod, user=carol)
        starting.release.set()
        await bobs.wait_followup(has_video)
        status = await carols.wait_original(
            lambda m: m.content == "✖ A moderator cancelled job #3: you are blocked from making videos.")
        job = await stack.job(3)

    assert answer.content.endswith("Their 1 queued video is cancelled.")
    assert (job.state, job.started_at) == (JobState.CANCELLED, None)
    assert OTHERS[1] not in pipeline.started and not has_video(status)


async def test_cancel_pressed_twice_on_a_queued_video_says_the_second_time_that_it_is_already_cancelled(
    stacks: Stacks, scripted
):
    gate = scripted.gate(PROMPT)
    async with stacks.run(lambda device: scripted) as stack:
        fake = stack.fake
        first = await video(fake, PROMPT)
        await first.wait_original(lambda m: m.content.startswith("Starting"))
        second = await video(fake, OTHERS[0])
        queued = await second.wait_original(lambda m: m.content.startswith("Queued #1"))
        cancelling = HeldWrite(stack.repo, "mark_cancelled", 2)
        presses = [await fake.click(queued, "video:cancel:2"), await fake.click(queued, "video:cancel:2")]
        await cancelling.reached(2)  # both presses are past their checks: the second reads it as still queued
        cancelling.release.set()
        answers = sorted([(await press.wait_answer()).content for press in presses])
        status = await second.wait_original(lambda m: m.content == "✖ Cancelled job #2.")
        gate.release(100)
        await first.wait_followup(has_video)

    assert answers == ["Job #2 is already cancelled.", "✖ Cancelled job #2."]
    assert status.components == [] and scripted.started == [PROMPT]


async def test_a_cancel_while_the_finished_video_uploads_says_it_is_too_late_and_the_video_lands(stacks: Stacks,
                                                                                                  scripted):
    async with stacks.run(lambda device: scripted) as stack:
        fake = stack.fake
        uploading = fake.hold_next("POST /webhooks/*")  # the followup that carries the video
        handle = await video(fake, PROMPT)
        await fake.wait_for(lambda: fake.requests_to("POST /webhooks/*"), what="the upload under way")
        reply = await (await fake.slash("cancel")).wait_answer()
        uploading.set()
        result = await handle.wait_followup(has_video)
        job = await stack.job(1)

    assert reply.ephemeral and reply.content == "Job #1 is already finishing; too late to cancel it."
    assert result.content.startswith(f"<@{handle.record.user.id}> here is your video · job #1")
    assert (job.state, job.cancel_requested) == (JobState.DONE, False)


async def test_a_block_while_the_users_finished_video_uploads_counts_no_video_as_stopping(stacks: Stacks, scripted):
    async with stacks.run(lambda device: scripted) as stack:
        fake = stack.fake
        mod, bob = fake.make_user(name="mod", roles=[fake.moderator_role]), fake.make_user(name="bob")
        uploading = fake.hold_next("POST /webhooks/*")  # bob's finished video is on its way up
        handle = await video(fake, PROMPT, user=bob)
        await fake.wait_for(lambda: fake.requests_to("POST /webhooks/*"), what="the upload under way")
        answer = await (await fake.slash("videomod block", {"user": bob}, user=mod)).wait_answer()
        uploading.set()
        result = await handle.wait_followup(has_video)
        job = await stack.job(1)

    assert answer.content == f"Blocked <@{bob.id}> permanently. Reason shown to them: no reason given."  # none stops
    assert result.content.startswith(f"<@{bob.id}> here is your video · job #1") and job.state == JobState.DONE


async def test_a_video_cancelled_past_its_token_leaves_a_status_that_says_cancelled_not_finished(stacks: Stacks,
                                                                                                 scripted):
    gate = scripted.gate(PROMPT)
    async with stacks.run(lambda device: scripted) as stack:
        fake = stack.fake
        first = await video(fake, PROMPT)
        await first.wait_original(lambda m: m.content.startswith("Starting"))
        bob = fake.make_user(name="bob")
        waiting = await video(fake, OTHERS[0], user=bob)
        queued = await waiting.wait_original(lambda m: m.content.startswith("Queued #1"))
        fake.expire_token(waiting)  # a long queue: its 15 minutes are up
        reply = await (await fake.click(queued, "video:cancel:2", user=bob)).wait_answer()
        notice = await fake.wait_for_message(lambda m: m.kind == "channel" and "Cancelled job #2" in m.content)
        status = await waiting.wait_original(lambda m: m.content.endswith(f"/{notice.id}"))
        gate.release(100)
        await first.wait_followup(has_video)

    assert reply.ephemeral and reply.content == "✖ Cancelled job #2."
    assert status.content.startswith("Cancelled · job #2 · ") and status.components == []


async def test_a_video_discord_refuses_past_its_token_leaves_a_status_that_says_failed(stacks: Stacks, scripted,
                                                                                        logged_errors):
    logged_errors.expect("delivering the result failed")
    gate = scripted.gate(PROMPT)
    async with stacks.run(lambda device: scripted) as stack:
        fake = stack.fake
        handle, _ = await rendering_past_its_token(fake, PROMPT)
        fake.fail_next("POST /channels/*/messages", 400, code=50035, message="Invalid Form Body")  # the upload
        gate.release(100)
        apology = await fake.wait_for_message(lambda m: m.kind == "channel" and m.content.startswith(
            f"<@{handle.record.user.id}> Sorry, job #1 finished but could not be posted here"))
        status = await handle.wait_original(lambda m: m.content.endswith(f"/{apology.id}"))

    assert status.content.startswith("Failed · job #1 · ")  # was "Finished", pointing at the apology


async def delivered_directly(stack: Stack, events: EventLog, user: FakeUser) -> FakeMessage:
    """The video the bot sent `user` directly, once its delivery is over."""
    await events.until("job_done")
    return await stack.fake.wait_for_message(lambda m: m.channel_id == stack.fake.dm_channel(user).id
                                             and has_video(m))


async def deleted(fake: FakeDiscord, handle: InteractionHandle) -> None:
    await fake.delete_channel(fake.channel)  # a moderator tidies the server up mid-render


async def hidden_past_its_token(fake: FakeDiscord, handle: InteractionHandle) -> None:
    fake.expire_token(handle)
    fake.hide_channel(fake.channel)  # a permission overwrite takes View Channel from the bot


@pytest.mark.parametrize("lose", [deleted, hidden_past_its_token])
async def test_a_video_whose_channel_is_deleted_or_hidden_while_it_renders_reaches_its_requester_directly(
    stacks: Stacks, scripted, lose: Callable[[FakeDiscord, InteractionHandle], Awaitable[None]]
):
    """Without an ERROR line (logged_errors): nothing is wrong that the operator must fix."""
    gate = scripted.gate(PROMPT)
    async with stacks.run(lambda device: scripted) as stack:
        fake = stack.fake
        bob = fake.make_user(name="bob")
        handle = await video(fake, PROMPT, user=bob)
        await handle.wait_original(lambda m: m.content.startswith("Starting"))
        await lose(fake, handle)
        events = stack.events()
        gate.release(100)
        dm = await delivered_directly(stack, events, bob)
        job = await stack.job(1)
        used = await charged(stack, 1)

    assert dm.content.startswith(f"<@{bob.id}> here is your video · job #1")
    assert (job.state, job.result_message_id, used) == (JobState.DONE, dm.id, 1)
