"""/video end to end: the real discord.py client against the fake Discord, the real service, queue and database."""

import asyncio
import gc
import os
import re
import signal
import sqlite3

import pytest
from sqlalchemy.exc import OperationalError

from storage import JobState
from tests.bot.conftest import Stacks
from tests.bot.helpers import WAIT, LagMeter, contents, decoded_frames, has_video, video

pytestmark = pytest.mark.usefixtures("logged_errors")

FOXES = ["a red fox running through snow", "a red fox sleeping in a den", "a red fox catching a mouse"]
WHALES = ["a blue whale swimming slowly", "a blue whale jumping out of the sea", "a blue whale singing at night"]


async def test_video_defers_shows_queue_and_progress_then_posts_the_mp4_as_a_new_message_that_pings_its_requester(
    stacks: Stacks,
):
    async with stacks.run() as stack:
        fake = stack.fake
        bob = fake.make_user(name="bob")
        handle = await video(fake, "a panda eating bamboo on a rock", user=bob, steps=4, frames=2, seed=7)
        assert (await handle.wait_deferred())["type"] == 5
        result = await handle.wait_followup(has_video, timeout=WAIT)
        status = await handle.wait_original(lambda m: m.content.startswith("Finished"))
        job = await stack.job(1)

    shown = contents(status)
    assert shown[0] == "" and shown[1].startswith("Queued #1 · ETA ") and " · job #1" in shown[1]
    assert shown[2].startswith("Starting · job #1")
    assert shown[3].startswith("Encoding the video · job #1")  # the clock stood still: only the last step shows
    assert shown[4].startswith("Uploading the video · job #1")
    assert status.content == f"Finished · job #1 · https://discord.com/channels/{fake.guild.id}/{fake.channel.id}/" \
                             f"{result.id}"
    assert status.components == [] and not status.attachments  # ✖ Cancel went with the last status
    # the video is a new message (Discord notifies of those, never of edits), which may ping its requester only
    assert result.id != status.id and result.kind == "followup" and not result.ephemeral
    assert result.extra["allowed_mentions"] == {"parse": [], "users": [bob.id]}
    assert result.content.startswith(f"<@{bob.id}> here is your video · job #1")
    assert "> a panda eating bamboo on a rock" in result.content
    assert "0.2 s clip · 2 frames at 8 fps · tiny (64×64) · rendered in " in result.content
    assert "seed `7` · 4 steps · guidance 9" in result.content
    assert "video:reroll:1" in result.custom_ids() and "video:cancel:1" not in result.custom_ids()
    [mp4] = result.attachments
    assert mp4.content_type == "video/mp4"
    assert decoded_frames(mp4.data) == [(64, 64), (64, 64)]
    assert (job.state, job.seed, job.output_bytes, job.user_id) == (JobState.DONE, 7, mp4.size, bob.id)
    assert (job.status_message_id, job.result_message_id) == (status.id, result.id)


async def test_the_sampler_option_reaches_the_engine_and_shows_under_the_result(stacks: Stacks):
    async with stacks.run() as stack:
        handle = await video(stack.fake, "a panda eating bamboo on a rock", steps=2, frames=2, seed=7,
                             sampler="dpmpp-2m")
        result = await handle.wait_followup(has_video, timeout=WAIT)
        job = await stack.job(1)
    assert job.params["sampler"] == "dpmpp-2m" and "sampler dpmpp-2m" in result.content


async def test_progress_edits_are_throttled_and_the_last_step_is_always_shown(stacks: Stacks, scripted):
    gate = scripted.gate("a slow sunrise over the sea")
    async with stacks.run(lambda device: scripted) as stack:
        events = stack.events()
        handle = await video(stack.fake, "a slow sunrise over the sea", steps=5)
        assert (await events.next())[0] == "job_started"  # at t=0 on the bot's monotonic clock
        for step, t in enumerate([1.0, 2.5, 3.0, 4.6, 4.7], start=1):
            stacks.monotonic.t = t
            gate.release()
            name, (_, done, total) = await events.next()
            assert (name, done, total) == ("job_progress", step, 5)
        await handle.wait_followup(has_video)

    progress = [text.split("\n")[0] for text in contents(handle.original) if text.startswith(("Rendering",
                                                                                              "Encoding"))]
    assert progress == ["Rendering ▰▰▰▰▱▱▱▱▱▱ 40% · about 4 s left · job #1",  # 2 steps in 2.5 s: 1.25 s a step
                        "Rendering ▰▰▰▰▰▰▰▰▱▱ 80% · about 2 s left · job #1",  # 4 in 4.6 s: 1.15 s for the last
                        "Encoding the video · job #1"]  # ≥ 2 s apart, plus the last step


@pytest.mark.parametrize(
    ("prompt", "reason", "says"),
    [
        ("un chat qui mange une pomme sur la table de la cuisine", "not_english", "English"),
        ("a nude woman on a beach", "denylist:sexual", "sexual content"),
    ],
)
async def test_refused_prompts_are_answered_privately_and_nothing_runs(stacks: Stacks, scripted, prompt, reason,
                                                                        says):
    async with stacks.run(lambda device: scripted) as stack:
        handle = await video(stack.fake, prompt)
        answer = await handle.wait_answer()
        [job] = await stack.jobs()

    assert answer.ephemeral and says in answer.content
    assert (job.state, job.refusal_reason) == (JobState.REFUSED, reason)
    assert scripted.started == []


async def test_two_users_with_several_jobs_each_are_served_alternately(stacks: Stacks, scripted):
    alice_first = scripted.gate(FOXES[0])
    async with stacks.run(lambda device: scripted) as stack:
        fake = stack.fake
        alice, bob = fake.make_user(name="alice2"), fake.make_user(name="bob")
        first = await video(fake, FOXES[0], user=alice)
        await first.wait_original(lambda m: m.content.startswith("Starting"))
        handles = [first]
        for user, prompt in [(alice, FOXES[1]), (alice, FOXES[2]), (bob, WHALES[0]), (bob, WHALES[1]),
                             (bob, WHALES[2])]:
            handle = await video(fake, prompt, user=user)
            await handle.wait_original(lambda m: m.content.startswith("Queued"))
            handles.append(handle)
        alice_first.release(100)
        for handle in handles:
            await handle.wait_followup(has_video)

    assert scripted.started == [FOXES[0], FOXES[1], WHALES[0], FOXES[2], WHALES[1], WHALES[2]]


async def test_cancel_removes_a_queued_job(stacks: Stacks, scripted):
    running = scripted.gate("a long train journey")
    async with stacks.run(lambda device: scripted) as stack:
        fake = stack.fake
        first = await video(fake, "a long train journey")
        await first.wait_original(lambda m: m.content.startswith("Starting"))
        second = await video(fake, "a short boat trip")
        await second.wait_original(lambda m: m.content.startswith("Queued"))

        stranger = await (await fake.slash("cancel", {"job": 2}, user=fake.make_user(name="eve"))).wait_answer()
        reply = await (await fake.slash("cancel", {"job": 2})).wait_answer()
        status = await second.wait_original(lambda m: m.content == "✖ Cancelled job #2.")
        running.release(100)
        await first.wait_followup(has_video)
        job = await stack.job(2)

    assert stranger.ephemeral and stranger.content == "Job #2 is not yours; you can only cancel your own videos."
    assert reply.ephemeral and reply.content == "✖ Cancelled job #2."
    assert not status.attachments and job.state == JobState.CANCELLED
    assert scripted.started == ["a long train journey"]


async def test_the_status_s_cancel_button_cancels_for_its_requester_only(stacks: Stacks, scripted):
    running = scripted.gate("a long train journey")
    async with stacks.run(lambda device: scripted) as stack:
        fake = stack.fake
        first = await video(fake, "a long train journey")
        started = await first.wait_original(lambda m: m.content.startswith("Starting"))
        second = await video(fake, "a short boat trip")
        queued = await second.wait_original(lambda m: m.content.startswith("Queued"))
        buttons = (started.custom_ids(), queued.custom_ids())

        stranger = await (await fake.click(queued, "video:cancel:2", user=fake.make_user(name="eve"))).wait_answer()
        reply = await (await fake.click(queued, "video:cancel:2")).wait_answer()
        status = await second.wait_original(lambda m: m.content == "✖ Cancelled job #2.")
        running.release(100)
        result = await first.wait_followup(has_video)
        job = await stack.job(2)

    assert buttons == (["video:cancel:1"], ["video:cancel:2"])
    assert stranger.ephemeral and stranger.content == "Job #2 is not yours; you can only cancel your own videos."
    assert reply.ephemeral and reply.content == "✖ Cancelled job #2."
    assert status.components == [] and job.state == JobState.CANCELLED  # the final message has no ✖ Cancel
    assert "video:cancel:1" not in result.custom_ids() and scripted.started == ["a long train journey"]


async def test_cancel_stops_a_running_job_at_its_next_step(stacks: Stacks, scripted):
    scripted.gate("an endless staircase", permits=1)  # step 1 runs, then it waits before step 2
    async with stacks.run(lambda device: scripted) as stack:
        fake = stack.fake
        handle = await video(fake, "an endless staircase", steps=4)
        await scripted.finished_step("an endless staircase", 1)

        reply = await (await fake.slash("cancel")).wait_answer()
        status = await handle.wait_original(lambda m: m.content == "✖ Cancelled job #1.")
        job = await stack.job(1)

    assert reply.content == "Stopping job #1: it ends after the current denoising step." and reply.ephemeral
    assert scripted.steps_done["an endless staircase"] == 1 and not status.attachments
    assert job.state == JobState.CANCELLED


async def test_per_user_cap_refuses_politely_and_privately(stacks: Stacks, scripted):
    gate = scripted.gate("first of two")
    async with stacks.run(lambda device: scripted, queue_per_user_cap=2) as stack:
        fake = stack.fake
        for prompt in ("first of two", "second of two"):
            await (await video(fake, prompt)).wait_original(lambda m: m.content.startswith(("Starting", "Queued")))
        third = await video(fake, "third one is too many")
        answer = await third.wait_answer()
        refused = (await stack.jobs())[-1]
        gate.release(100)

    assert answer.ephemeral and "you already have 2 videos" in answer.content.lower()
    assert (refused.state, refused.refusal_reason) == (JobState.REFUSED, "user_cap")


async def test_a_burst_over_the_cap_is_refused_privately_and_the_rest_run_in_public(stacks: Stacks, scripted):
    gates = [scripted.gate(f"burst {i}") for i in (1, 2, 3, 4)]  # none finishes, freeing a place, meanwhile
    async with stacks.run(lambda device: scripted, queue_per_user_cap=2) as stack:
        fake = stack.fake
        handles = [await video(fake, f"burst {i}") for i in (1, 2, 3, 4)]  # sent before any is answered
        answers = [await handle.wait_answer() for handle in handles]
        jobs = await stack.jobs()
        for gate in gates:
            gate.release(100)

    refused = [a for a in answers if "you already have 2 videos" in a.content.lower()]
    assert len(refused) == 2 and all(a.ephemeral for a in refused)
    assert [j.refusal_reason for j in jobs if j.state == JobState.REFUSED] == ["user_cap", "user_cap"]
    assert all(not a.ephemeral for a in answers if a not in refused)  # the accepted ones stay public


async def test_a_public_video_sent_while_the_users_last_one_finishes_stays_public(stacks: Stacks, scripted):
    finishing = scripted.gate(FOXES[0])
    acknowledgements = "POST /interactions/*/callback"
    async with stacks.run(lambda device: scripted, queue_per_user_cap=1) as stack:
        fake = stack.fake
        first = await video(fake, FOXES[0])
        await first.wait_original(lambda m: m.content.startswith("Starting"))
        [rendering] = list(stack.service.running)
        acknowledged = fake.hold_next(acknowledgements)  # the second /video is sent while the first still renders
        second = await video(fake, FOXES[1])
        await fake.wait_for(lambda: len(fake.requests_to(acknowledgements)) == 2, what="the second acknowledgement")
        finishing.release(100)
        await first.wait_followup(has_video)  # the first is done before the second is decided: under the cap again
        await asyncio.wait_for(asyncio.shield(rendering.task), WAIT)  # its unit ends once its outcome is recorded
        acknowledged.set()
        result = await second.wait_followup(has_video)
        job = await stack.job(2)

    assert not job.private and not result.ephemeral  # as asked: public, kept, and showcase-able
    assert "video:showcase:2" in result.custom_ids() and (stack.settings.media_dir / "2.mp4").is_file()


async def test_queue_lists_the_users_jobs_with_their_places(stacks: Stacks, scripted):
    gate = scripted.gate("a red balloon")
    async with stacks.run(lambda device: scripted) as stack:
        fake = stack.fake
        first = await video(fake, "a red balloon")
        await first.wait_original(lambda m: m.content.startswith("Starting"))
        await (await video(fake, "a blue kite")).wait_original(lambda m: m.content.startswith("Queued"))
        listing = await (await fake.slash("queue")).wait_answer()
        gate.release(100)

    assert listing.ephemeral
    lines = listing.content.splitlines()
    assert lines[1].startswith("• job #1 · rendering · a red balloon")
    assert re.match(r"• job #2 · queued #1 · ETA (<t:\d+:R>|any moment now) · a blue kite", lines[3]), lines[3]


async def test_a_long_queue_fits_one_message_and_says_how_many_more_wait(stacks: Stacks, scripted):
    prompts = [f"a red fox {animal} running through deep fresh snow at dawn under a pale pink sky, with tall pine "
               "trees, a frozen river and distant blue mountains behind it, seen from a low camera"
               for animal in ("cub", "pup", "kit", "pair", "family", "mother", "father", "runner", "hunter", "sleeper",
                              "dreamer", "watcher")]
    gate = scripted.gate(prompts[0])
    async with stacks.run(lambda device: scripted, queue_per_user_cap=12) as stack:
        fake = stack.fake
        bob = fake.make_user(name="bob")
        first = await video(fake, prompts[0], user=bob)
        await first.wait_original(lambda m: m.content.startswith("Starting"))
        for prompt in prompts[1:]:
            await (await video(fake, prompt, user=bob)).wait_original(lambda m: m.content.startswith("Queued"))
        listing = await (await fake.slash("queue", user=bob)).wait_answer()
        gate.release(100)

    head, *entries, tail = listing.content.split("\n• ")
    listed = len(entries) + 1  # the tail's part opens with the last job listed
    assert len(listing.content) <= 2000 and head == "Your videos:"
    assert entries[0].startswith("job #1 · rendering · a red fox cub running")
    assert tail.startswith(f"job #{listed} · queued #{listed - 1}")
    assert tail.endswith(f"\n… and {12 - listed} more") and 12 - listed > 0


async def test_queued_jobs_survive_a_restart_and_are_delivered_by_the_next_bot(stacks: Stacks, scripted):
    scripted.gate(FOXES[0], permits=1)  # step 1 runs, then it holds the worker until the bot shuts down
    async with stacks.run(lambda device: scripted) as stack:
        fake = stack.fake
        handles = [await video(fake, FOXES[0])]
        await scripted.finished_step(FOXES[0], 1)
        for prompt in FOXES[1:]:
            handles.append(await video(fake, prompt))
            await handles[-1].wait_original(lambda m: m.content.startswith("Queued"))
    assert scripted.started == [FOXES[0]]  # the running job was stopped by the shutdown, the others never ran

    async with stacks.run() as stack:  # a new bot, service and queue on the same database and Discord
        results = [await handle.wait_followup(has_video) for handle in handles]
        jobs = await stack.jobs()

    assert [job.state for job in jobs] == [JobState.DONE] * 3
    assert [job.attempts for job in jobs] == [2, 1, 1]
    assert [len(decoded_frames(r.attachments[0].data)) for r in results] == [2, 2, 2]


async def test_a_model_that_fails_to_load_makes_video_unavailable_and_the_bot_stays_up(stacks: Stacks,
                                                                                       logged_errors):
    logged_errors.expect("loading the pipeline on cpu failed")
    logged_errors.expect("no device could load the pipeline")

    def broken(device: str) -> None:
        raise RuntimeError("CUDA out of memory while loading the UNet")

    async with stacks.run(broken) as stack:
        fake = stack.fake
        answer = await (await video(fake, "a cat dancing on a table")).wait_answer()
        listing = await (await fake.slash("queue")).wait_answer()
        again = await (await video(fake, "a dog dancing on a table")).wait_answer()
        jobs = await stack.jobs()

    assert answer.content == ("Video generation is unavailable right now: the video model did not load; the bot's "
                              "operator can see why in the bot's log.")  # the error itself only in the log
    assert answer.ephemeral and "CUDA out of memory" in stack.service.unavailable_reason
    assert listing.content.startswith("You have no videos") and again.content == answer.content
    assert [(job.state, job.refusal_reason) for job in jobs] == [(JobState.REFUSED, "unavailable")] * 2


async def test_the_event_loop_stays_responsive_while_a_video_renders(stacks: Stacks):
    async with stacks.run() as stack:
        # what the tests before this one left in the process kept out of the cyclic GC, as the bot's own start does
        # for what it loads (bot.ui.client.freeze_startup_heap): a full collection walking a long test run's heap on
        # the loop's thread took 313 ms in one run of the whole suite
        gc.collect()
        gc.freeze()
        meter = LagMeter()
        meter.start()
        try:
            handle = await video(stack.fake, "a lighthouse in a storm at night", steps=12, frames=4)
            await handle.wait_followup(has_video, timeout=WAIT)
        finally:
            meter.stop()
            gc.unfreeze()

    # Generating on the loop would stall it for the whole render (≥ 0.5 s of the loop thread's CPU here). The CPU is
    # shared (2 cores, other test runs): the OS may deschedule the loop's thread now and then, which makes ticks late
    # without the loop doing any work, so how late they ran is not asserted; the loop ticked throughout, and the worst
    # stall is bounded by the CPU the loop's own thread spent between two ticks.
    busiest = max(meter.busy)
    assert len(meter.lags) > 20
    assert busiest < 0.150, f"the loop's thread worked {busiest * 1000:.0f} ms between two ticks"


async def test_sigterm_closes_the_bot_cleanly_and_queued_jobs_stay_queued(stacks: Stacks, scripted):
    scripted.gate(FOXES[0])
    async with stacks.run(lambda device: scripted) as stack:
        fake = stack.fake
        first = await video(fake, FOXES[0])
        await first.wait_original(lambda m: m.content.startswith("Starting"))
        await (await video(fake, FOXES[1])).wait_original(lambda m: m.content.startswith("Queued"))
        stack.bot.stop.install().hand_over(stack.bot.shut_down)  # as bot.app.serve does

        os.kill(os.getpid(), signal.SIGTERM)
        closing = await fake.wait_for(lambda: stack.bot.closing, what="the SIGTERM handler to close the bot")
        await asyncio.wait_for(closing, WAIT)  # the gateway closed first, which woke the wait above
        jobs = await stack.jobs()

    assert stack.bot.is_closed() and not stack.service.available
    assert [job.state for job in jobs] == [JobState.QUEUED, JobState.QUEUED]  # both run after the next start



async def test_a_bug_in_a_command_is_logged_and_the_user_gets_a_short_private_apology(stacks: Stacks, logged_errors,
                                                                                       monkeypatch):
    logged_errors.expect("/queue by user")
    async with stacks.run() as stack:
        monkeypatch.setattr(stack.service, "jobs_of", lambda user_id: 1 / 0)
        answer = await (await stack.fake.slash("queue")).wait_answer()

    assert answer.ephemeral and answer.content.startswith("Something went wrong on our side")
    [record] = logged_errors.records
    assert record.exc_info and record.exc_info[0] is ZeroDivisionError


async def test_a_database_that_cannot_serve_during_a_command_is_one_line_and_a_try_again(stacks: Stacks,
                                                                                          logged_errors):
    logged_errors.expect("/quota by user")
    async with stacks.run() as stack:
        async def locked(*args: object, **kwargs: object) -> None:  # what a write past the lock's retries raises
            raise OperationalError("UPDATE quota", {}, sqlite3.OperationalError("database is locked"))

        stack.service.moderation.quota = locked  # type: ignore[method-assign]
        answer = await (await stack.fake.slash("quota")).wait_answer()

    assert answer.ephemeral and answer.content == ("The bot cannot reach its database right now; please try again "
                                                   "in a few minutes.")  # was "Something went wrong on our side"
    [record] = logged_errors.records
    assert record.getMessage().endswith("failed: the database cannot serve right now (database is locked)")
    assert record.exc_info is None  # a known state of the database, not a bug: no traceback
