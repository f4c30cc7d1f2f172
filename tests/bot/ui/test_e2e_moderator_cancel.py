"""A moderator stops a member's job in their own server (✖ Cancel or /cancel job:N), as 🗑 Delete lets them take down a
member's result: the job is cancelled as its requester's own cancel would be, but never charged to them (their own
stop of a running job is; a queued one costs nothing either way), its requester reads that a moderator cancelled
it, and the cancel is in the server's audit log. Nobody else's cancel of another member's job, and no moderator's
of another server's job, does anything but the refusal."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from bot.ui.cogs.video import VIDEO_COG
from bot.ui.replies import NOT_LOADED
from storage import JobState
from tests.bot.conftest import Stacks
from tests.bot.helpers import has_video, video

pytestmark = pytest.mark.usefixtures("logged_errors")

NOT_YOURS = "Job #{} is not yours; you can only cancel your own videos."
EVER = datetime(2000, 1, 1, tzinfo=UTC)  # usage counted from here: all of it


async def test_a_moderators_cancel_button_stops_a_members_queued_job_and_tells_its_requester(stacks: Stacks,
                                                                                             scripted):
    running = scripted.gate("a long train journey")
    async with stacks.run(lambda device: scripted) as stack:
        fake = stack.fake
        bob, mod = fake.make_user(name="bob"), fake.make_user(name="mod", roles=[fake.moderator_role])
        first = await video(fake, "a long train journey", user=bob)
        await first.wait_original(lambda m: m.content.startswith("Starting"))
        second = await video(fake, "a short boat trip", user=bob)
        queued = await second.wait_original(lambda m: m.content.startswith("Queued"))

        reply = await (await fake.click(queued, "video:cancel:2", user=mod)).wait_answer()
        status = await second.wait_original(lambda m: m.content == "✖ A moderator cancelled job #2.")
        running.release(100)
        await first.wait_followup(has_video)
        job = await stack.job(2)
        audit = await stack.moderation.repo.latest_audit(5, guild_id=fake.guild.id)
        used = await stack.moderation.repo.count_usage(bob.id, EVER, guild_id=fake.guild.id)

    assert reply.ephemeral and reply.content == (
        f"✖ Cancelled job #2 of <@{bob.id}>; they are told a moderator cancelled it.")
    assert status.components == [] and (job.state, job.started_at) == (JobState.CANCELLED, None)
    assert used == 1  # job 1 only: a queued job cancelled costs nothing, as its requester's own cancel
    assert [(row.actor_id, row.action, row.target, row.details) for row in audit] == [
        (mod.id, "job.cancel", "job:2", {"requester": bob.id})]
    assert scripted.started == ["a long train journey"]


async def test_a_moderators_cancel_command_stops_a_members_running_job_at_its_next_step(stacks: Stacks, scripted):
    scripted.gate("an endless staircase", permits=1)  # step 1 runs, then it waits before step 2
    async with stacks.run(lambda device: scripted) as stack:
        fake = stack.fake
        bob, mod = fake.make_user(name="bob"), fake.make_user(name="mod", roles=[fake.moderator_role])
        handle = await video(fake, "an endless staircase", user=bob, steps=4)
        await scripted.finished_step("an endless staircase", 1)

        reply = await (await fake.slash("cancel", {"job": 1}, user=mod)).wait_answer()
        status = await handle.wait_original(lambda m: m.content == "✖ A moderator cancelled job #1.")
        job = await stack.job(1)
        audit = await stack.moderation.repo.latest_audit(5, guild_id=fake.guild.id)

    assert reply.ephemeral and reply.content == (f"Stopping job #1 of <@{bob.id}>: it ends after the current "
                                                 "denoising step; they are told a moderator cancelled it.")
    assert scripted.steps_done["an endless staircase"] == 1 and not status.attachments
    assert job.state == JobState.CANCELLED
    assert [(row.actor_id, row.action, row.target) for row in audit] == [(mod.id, "job.cancel", "job:1")]


async def test_a_running_job_a_moderator_stopped_is_not_charged_while_its_requesters_own_stop_is(stacks: Stacks,
                                                                                                   scripted):
    """The member did not give up the video: a moderator took it from them, so it leaves their quota as it was; their
    own stop of a running job still counts (its GPU time was spent)."""
    scripted.gate("an endless staircase", permits=1)
    scripted.gate("a winding stairway", permits=1)
    async with stacks.run(lambda device: scripted) as stack:
        fake = stack.fake
        bob, mod = fake.make_user(name="bob"), fake.make_user(name="mod", roles=[fake.moderator_role])
        stopped = await video(fake, "an endless staircase", user=bob, steps=4)
        await scripted.finished_step("an endless staircase", 1)
        await (await fake.slash("cancel", {"job": 1}, user=mod)).wait_answer()
        await stopped.wait_original(lambda m: m.content == "✖ A moderator cancelled job #1.")
        after_moderator = await stack.moderation.repo.count_usage(bob.id, EVER, guild_id=fake.guild.id)
        own = await video(fake, "a winding stairway", user=bob, steps=4)
        await scripted.finished_step("a winding stairway", 1)
        await (await fake.slash("cancel", {"job": 2}, user=bob)).wait_answer()
        await own.wait_original(lambda m: m.content == "✖ Cancelled job #2.")
        after_own = await stack.moderation.repo.count_usage(bob.id, EVER, guild_id=fake.guild.id)
        jobs = await stack.jobs()

    assert [job.state for job in jobs] == [JobState.CANCELLED, JobState.CANCELLED]
    assert (after_moderator, after_own) == (0, 1)


async def test_a_members_cancel_of_someone_elses_job_is_still_refused_and_their_own_still_reads_as_theirs(
        stacks: Stacks, scripted):
    running = scripted.gate("a long train journey")
    async with stacks.run(lambda device: scripted) as stack:
        fake = stack.fake
        bob, eve = fake.make_user(name="bob"), fake.make_user(name="eve")
        first = await video(fake, "a long train journey", user=bob)
        started = await first.wait_original(lambda m: m.content.startswith("Starting"))
        refused = [await (await fake.click(started, "video:cancel:1", user=eve)).wait_answer(),
                   await (await fake.slash("cancel", {"job": 1}, user=eve)).wait_answer()]
        own = await (await fake.click(started, "video:cancel:1", user=bob)).wait_answer()
        running.release(100)
        status = await first.wait_original(lambda m: m.content.startswith("✖"))
        audit = await stack.moderation.repo.latest_audit(5, guild_id=fake.guild.id)

    assert [answer.content for answer in refused] == [NOT_YOURS.format(1)] * 2
    assert own.content == "Stopping job #1: it ends after the current denoising step."
    assert status.content == "✖ Cancelled job #1." and audit == []


async def test_a_moderator_cannot_cancel_a_job_of_another_server_or_of_direct_messages(stacks: Stacks, scripted):
    fake = stacks.fake
    b = fake.add_guild("Server B", channels=["lobby"], moderator_role="Moderator")
    bob, mallory = fake.make_user(name="bob"), fake.make_user(name="mallory")  # mallory: a plain member of A
    fake.add_member(mallory, b, roles=[b.role("Moderator")])  # and a moderator of B
    fake.add_member(bob, b)
    mod = fake.make_user(name="mod", roles=[fake.moderator_role])  # A's moderator
    running = scripted.gate("a long train journey")
    async with stacks.run(lambda device: scripted) as stack:
        in_a = await video(fake, "a long train journey", user=bob)
        await in_a.wait_original(lambda m: m.content.startswith("Starting"))
        in_dms = await fake.slash("video", {"prompt": "a short boat trip", "aspect": "tiny"}, user=bob,
                                  channel=fake.dm_channel(bob))
        await in_dms.wait_original(lambda m: m.content.startswith("Queued"))
        tries = [await (await fake.slash("cancel", {"job": 1}, user=mallory, guild=b)).wait_answer(),
                 await (await fake.slash("cancel", {"job": 1}, user=mallory)).wait_answer(),
                 await (await fake.slash("cancel", {"job": 2}, user=mod)).wait_answer(),
                 await (await fake.slash("cancel", {"job": 2}, user=mod, channel=fake.dm_channel(mod))).wait_answer()]
        states = [job.state for job in await stack.jobs()]
        running.release(100)
        await in_a.wait_followup(has_video)
        await in_dms.wait_followup(has_video)
        audits = [await stack.moderation.repo.latest_audit(5, guild_id=guild.id) for guild in (fake.guild, b)]

    assert [answer.content for answer in tries] == [NOT_YOURS.format(1)] * 2 + [NOT_YOURS.format(2)] * 2
    assert states == [JobState.RUNNING, JobState.QUEUED] and audits == [[], []]


async def test_a_cancel_pressed_while_the_video_commands_are_not_loaded_is_answered_privately(stacks: Stacks,
                                                                                             scripted):
    """A persistent button outlives its cog (one unloaded, or not loaded yet at a start): the presser is told it is
    not available, and the job runs on."""
    running = scripted.gate("a long train journey")
    async with stacks.run(lambda device: scripted) as stack:
        fake = stack.fake
        bob = fake.make_user(name="bob")
        first = await video(fake, "a long train journey", user=bob)
        started = await first.wait_original(lambda m: m.content.startswith("Starting"))
        await stack.bot.remove_cog(VIDEO_COG)
        answer = await (await fake.click(started, "video:cancel:1", user=bob)).wait_answer()
        running.release(100)
        done = await first.wait_original(lambda m: m.content.startswith("Finished"))

    assert answer.content == NOT_LOADED and answer.ephemeral
    assert done.content.startswith("Finished")  # not cancelled
