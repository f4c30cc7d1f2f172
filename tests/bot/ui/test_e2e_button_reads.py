"""🔁 Reroll, ⬆️ Upscale and a ✏️ form's submission answer Discord within its 3 s whatever the database takes: the press
is deferred (privately on a private result, as the pressed message shows) before the job's row is read, and the new
job is queued once it is.

The real discord.py client against the fake Discord; nothing sleeps: the job's row read held (HeldWrite, holding the
repository's `get_job` of job 1) stands for a disk slow to serve it (SQLite under load).
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from storage import JobState
from tests.bot.conftest import Stack, Stacks
from tests.bot.helpers import HeldWrite, ScriptedPipeline, has_video, video
from tests.bot.ui.test_e2e_creative import upscaling
from tests.fakediscord import FakeMessage, FakeUser, action_row, button

pytestmark = pytest.mark.usefixtures("logged_errors")

PROMPT = "a red kite over a windy beach"
EDITED = "a red kite over a snowy field"
EPHEMERAL = 64  # Discord's message flag


async def first_result(stack: Stack, user: FakeUser, **options: object) -> FakeMessage:
    return await (await video(stack.fake, PROMPT, user=user, **options)).wait_followup(has_video)


def flags(callback: dict | None) -> int:
    return ((callback or {}).get("data") or {}).get("flags", 0)


@pytest.mark.parametrize("private", [False, True], ids=["public", "private"])
async def test_a_reroll_is_deferred_before_its_jobs_row_is_read_and_queued_once_it_is(stacks: Stacks, private: bool):
    """While the read of job 1 is held the member already sees the bot thinking (privately on a private result); once
    it is served the reroll is queued and renders."""
    async with stacks.run() as stack:
        fake = stack.fake
        bob = fake.make_user(name="bob")
        first = await first_result(stack, bob, private=private)
        reading = HeldWrite(stack.repo, "get_job", 1)  # a read, held as a slow disk holds it
        press = await fake.click(first, "video:reroll:1", user=bob)
        await reading.reached()
        deferred = press.callback  # what Discord had while the read was held
        before = await stack.jobs()
        reading.release.set()
        second = await press.wait_followup(has_video)
        job = await stack.job(2)

    assert deferred is not None and deferred["type"] == 5  # thinking, before the row was read
    assert bool(flags(deferred) & EPHEMERAL) == private
    assert [j.id for j in before] == [1]  # nothing asked of the service before the read was served
    assert (job.params["rerolled_from"], job.private, second.ephemeral) == (1, private, private)
    assert second.content.startswith(f"<@{bob.id}> here is your video · job #2")


async def test_an_upscale_is_deferred_before_its_jobs_row_is_read_and_queued_once_it_is(stacks: Stacks):
    async with upscaling(stacks) as stack:
        fake = stack.fake
        bob = fake.make_user(name="bob")
        first = await first_result(stack, bob, aspect="tiny", frames=2)
        reading = HeldWrite(stack.repo, "get_job", 1)
        press = await fake.click(first, "video:upscale:1", user=bob)
        await reading.reached()
        deferred = press.callback
        before = await stack.jobs()
        reading.release.set()
        upscaled = await press.wait_followup(has_video)
        job = await stack.job(2)

    assert deferred is not None and deferred["type"] == 5 and not flags(deferred) & EPHEMERAL  # public thinking
    assert [j.id for j in before] == [1]
    assert (job.params["kind"], job.params["source_job"]) == ("upscale", 1)
    assert "\n⬆️ Upscale of job #1\n" in upscaled.content and not upscaled.ephemeral


async def test_an_edited_prompt_is_deferred_before_its_jobs_row_is_read_and_queued_once_it_is(stacks: Stacks):
    """The form opens as before (its press reads the row first: a form cannot follow a deferral); its submission is
    deferred before the row is read."""
    async with stacks.run() as stack:
        fake = stack.fake
        bob = fake.make_user(name="bob")
        first = await first_result(stack, bob)
        await (await fake.click(first, "video:edit:1", user=bob)).wait_modal()
        reading = HeldWrite(stack.repo, "get_job", 1)
        submitted = await fake.submit_modal("video:edit-prompt:1", {"prompt": EDITED}, user=bob)
        await reading.reached()
        deferred = submitted.callback
        before = await stack.jobs()
        reading.release.set()
        second = await submitted.wait_followup(has_video)
        job = await stack.job(2)

    assert deferred is not None and deferred["type"] == 5 and not flags(deferred) & EPHEMERAL
    assert [j.id for j in before] == [1]
    assert (job.prompt, job.params["edited_from"]) == (EDITED, 1)
    assert "\n✏️ Edited prompt of job #1\n" in second.content


async def test_a_private_jobs_reroll_from_a_public_message_is_refused_privately_and_shows_nothing(stacks: Stacks):
    """A modified client may send a private job's 🔁 from a public message: its public placeholder would have become
    the job's status, prompt and all, in the channel."""
    async with stacks.run() as stack:
        fake = stack.fake
        bob = fake.make_user(name="bob")
        await first_result(stack, bob, private=True)
        forged = fake.seed_message("forged", components=[action_row(button("video:reroll:1"))])
        press = await fake.click(forged, "video:reroll:1", user=bob)
        answer = await press.wait_answer()
        jobs = await stack.jobs()

    assert press.original is not None and press.original.deleted  # the public placeholder went
    assert answer.ephemeral and answer.content == ("That message is not the result of job #1; press 🔁 Reroll on the "
                                                   "result itself.")
    assert [j.id for j in jobs] == [1]


async def test_a_private_result_sent_to_a_direct_message_can_still_be_rerolled_and_stays_private(stacks: Stacks):
    """Past its token a private job's video goes to its requester's DMs, a message that is not ephemeral: only they
    see it, so its 🔁 is answered there, and the new job is private."""
    scripted = ScriptedPipeline()
    async with stacks.run(lambda device: scripted) as stack:
        fake = stack.fake
        bob = fake.make_user(name="bob")
        gate = scripted.gate(PROMPT)
        handle = await video(fake, PROMPT, user=bob, private=True)
        await handle.wait_original(lambda m: m.content.startswith("Starting"))
        stacks.wall.offset = timedelta(minutes=15)  # too old to edit the private status: the video goes to a DM
        gate.release(100)
        dm = await fake.wait_for_message(lambda m: m.kind == "channel" and has_video(m))
        stacks.wall.offset = timedelta(0)
        press = await fake.click(dm, "video:reroll:1", user=bob)
        second = await press.wait_followup(has_video)
        job = await stack.job(2)

    assert fake.channels[dm.channel_id] is fake.dm_channel(bob) and not dm.ephemeral
    assert press.callback["type"] == 5
    assert job.private and job.state == JobState.DONE and job.params["rerolled_from"] == 1
    assert second.ephemeral and second.content.startswith(f"<@{bob.id}> here is your video · job #2")
