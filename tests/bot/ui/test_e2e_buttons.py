"""Result buttons end to end: reroll, edit prompt, showcase, delete — for whom, and after a restart."""

from datetime import timedelta
from pathlib import Path

import pytest

from storage import JobState, utc_now
from storage.records import ShowcaseState
from t2v import TINY_RANDOM, load_pipeline
from tests.bot.conftest import Stack, Stacks
from tests.bot.helpers import crossing, decoded_frames, delete_result, has_video, video
from tests.fakediscord import FakeMessage, FakeUser, action_row, button

pytestmark = pytest.mark.usefixtures("logged_errors")

PROMPT = "a hot air balloon over green hills"
BUTTONS = ["video:reroll:1", "video:edit:1", "video:showcase:1", "video:delete:1"]


async def first_result(stack: Stack, user: FakeUser, **options: object) -> FakeMessage:
    """Run /video as `user` and wait for the video."""
    return await (await video(stack.fake, PROMPT, user=user, **options)).wait_followup(has_video)


def media_file(stack: Stack, job_id: int) -> Path:
    return Path(stack.settings.media_dir) / f"{job_id}.mp4"


async def test_a_result_carries_the_four_buttons_and_its_video_is_kept(stacks: Stacks):
    async with stacks.run() as stack:
        result = await first_result(stack, stack.fake.make_user(name="bob"))
        kept = media_file(stack, 1).read_bytes()

    assert result.custom_ids() == BUTTONS
    assert [c["label"] for c in result.components[0]["components"]] == ["Reroll", "Edit prompt", "Showcase", "Delete"]
    assert kept == result.attachments[0].data


async def test_reroll_runs_the_same_settings_with_a_new_seed_and_is_answered_like_video(stacks: Stacks):
    async with stacks.run() as stack:
        fake = stack.fake
        bob = fake.make_user(name="bob")
        first = await first_result(stack, bob, seed=7, steps=4, frames=2, negative="blurry")
        reroll = await fake.click(first, "video:reroll:1", user=bob)
        assert (await reroll.wait_deferred())["type"] == 5  # a new "thinking" message, like /video
        second = await reroll.wait_followup(has_video)
        await reroll.wait_original(lambda m: m.content.startswith("Finished"))  # once the video's id is stored
        old, new = await stack.job(1), await stack.job(2)

    assert second.id != first.id and not second.ephemeral
    assert second.content.startswith(f"<@{bob.id}> here is your video · job #2")
    assert (new.prompt, new.negative_prompt, new.user_id) == (old.prompt, old.negative_prompt, bob.id)
    same = ("steps", "frames", "guidance", "aspect", "width", "height", "private")
    assert {k: new.params[k] for k in same} == {k: old.params[k] for k in same}
    assert new.params["seed"] is None and new.seed != 7
    assert second.custom_ids() == [b.replace(":1", ":2") for b in BUTTONS]
    assert "\n🔁 Reroll of job #1\n" in second.content and new.params["rerolled_from"] == 1  # kept across restarts
    assert new.result_message_id == second.id  # the buttons' message, for later presses


async def test_a_reroll_of_a_job_whose_negative_is_its_prompt_says_what_can_be_done_from_there(stacks: Stacks,
                                                                                                monkeypatch):
    """A job kept from before such negatives were refused: 🔁 was refused with "or `none` for no negative prompt",
    which only /video's `negative` option takes; a button press has no way to give it."""
    async with stacks.run() as stack:
        fake = stack.fake
        bob = fake.make_user(name="bob")
        with monkeypatch.context() as before_the_rule:
            before_the_rule.setattr("bot.jobs.admission.same_as_prompt", lambda *args: None)
            first = await first_result(stack, bob, negative=PROMPT.upper())
        refused = await (await fake.click(first, "video:reroll:1", user=bob)).wait_answer()
        jobs = await stack.jobs()

    assert refused.ephemeral and refused.content == (
        "The negative prompt “A HOT AIR BALLOON OVER GREEN HILLS” is the prompt itself, so guidance would cancel "
        "out (the video renders as at guidance 1), and 🔁 Reroll keeps job #1's negative prompt: run /video with "
        "the prompt and a `negative` of what to avoid, such as “blurry, low quality”, or `negative:none` for no "
        "negative prompt.")
    assert [(job.state, job.refusal_reason) for job in jobs] == [(JobState.DONE, None),
                                                                 (JobState.REFUSED, "invalid:negative")]


async def test_a_reroll_or_edit_of_a_job_above_caps_lowered_since_says_what_can_be_done_from_there(stacks: Stacks):
    """The operator lowered MAX_STEPS after the video was made: 🔁 and ✏️ were refused with "steps=3 is above this
    bot's limit of 2." and nothing more, though no button can change a job's steps."""
    async with stacks.run() as stack:
        bob = stack.fake.make_user(name="bob")
        first = await first_result(stack, bob, steps=3)
    async with stacks.run(max_steps=2, default_steps=2) as stack:
        answers = [await (await stack.fake.click(first, f"video:{action}:1", user=bob)).wait_answer()
                   for action in ("reroll", "edit")]
        jobs = await stack.jobs()

    assert [answer.content for answer in answers] == [
        f"Steps must be at most 2 on this bot, and {button} keeps job #1's 3 steps: run /video with `steps` at most 2 "
        "instead." for button in ("🔁 Reroll", "✏️ Edit prompt")]
    assert [(job.state, job.refusal_reason) for job in jobs] == [(JobState.DONE, None),
                                                                 (JobState.REFUSED, "invalid:steps")]


async def test_a_reroll_or_edit_of_a_job_made_before_the_model_was_switched_renders_at_the_new_models_size(
        stacks: Stacks):
    """T2V_MODEL now names a checkpoint of other sizes (as zeroscope's 576×320 is to ModelScope's 448×256): a 🔁 or ✏️
    of a 16:9 video made before renders at the new model's 16:9, as a queued job restored at the start does, not at
    a size the new model was not trained for."""
    async with stacks.run() as stack:
        bob = stack.fake.make_user(name="bob")
        first = await first_result(stack, bob, aspect="16:9", frames=2)
        old = await stack.job(1)
    switched = load_pipeline(TINY_RANDOM, width=128, height=128)  # its 16:9 is 256×128
    async with stacks.run(lambda device: switched) as stack:
        fake = stack.fake
        rerolled = await (await fake.click(first, "video:reroll:1", user=bob)).wait_followup(has_video)
        await (await fake.click(first, "video:edit:1", user=bob)).wait_modal()
        edited = await (await fake.submit_modal("video:edit-prompt:1", {"prompt": "a balloon over a desert"},
                                                user=bob)).wait_followup(has_video)
        jobs = await stack.jobs()

    assert (old.params["width"], old.params["height"]) != (256, 128)
    assert [(job.params["aspect"], job.params["width"], job.params["height"]) for job in jobs[1:]] == [
        ("16:9", 256, 128)] * 2
    assert [decoded_frames(result.attachments[0].data) for result in (rerolled, edited)] == [[(256, 128)] * 2] * 2


async def test_edit_prompt_opens_a_prefilled_form_and_runs_the_edited_prompt_with_the_same_settings(stacks: Stacks):
    async with stacks.run() as stack:
        fake = stack.fake
        bob = fake.make_user(name="bob")
        first = await first_result(stack, bob, steps=4)
        press = await fake.click(first, "video:edit:1", user=bob)
        modal = await press.wait_modal()
        submitted = await fake.submit_modal("video:edit-prompt:1", {"prompt": "a hot air balloon over a desert"},
                                            user=bob)
        second = await submitted.wait_followup(has_video)
        job = await stack.job(2)

    [row] = modal["components"]
    field = row["components"][0] if row["type"] == 1 else row["component"]
    assert modal["title"] == "Edit prompt · job #1" and field["value"] == PROMPT
    assert "> a hot air balloon over a desert" in second.content and "\n✏️ Edited prompt of job #1\n" in second.content
    assert (job.prompt, job.params["steps"], job.params["edited_from"]) == ("a hot air balloon over a desert", 4, 1)


async def test_someone_else_pressing_reroll_edit_or_delete_is_told_it_is_not_theirs(stacks: Stacks):
    async with stacks.run() as stack:
        fake = stack.fake
        bob, eve = fake.make_user(name="bob"), fake.make_user(name="eve")
        result = await first_result(stack, bob)
        answers = []
        for custom_id in ("video:reroll:1", "video:edit:1", "video:delete:1"):
            answers.append(await (await fake.click(result, custom_id, user=eve)).wait_answer())
        jobs = await stack.jobs()

    assert all(a.ephemeral and "is not yours" in a.content for a in answers)
    assert not result.deleted and len(jobs) == 1 and jobs[0].deleted_at is None


async def test_delete_by_the_requester_removes_the_message_the_kept_video_and_blocks_reuse(stacks: Stacks):
    async with stacks.run() as stack:
        fake = stack.fake
        bob = fake.make_user(name="bob")
        result = await first_result(stack, bob)
        poster = stack.bot.media.poster_path(1)
        made = poster.read_bytes()[:2]  # the video's poster frame, made when it was kept on delivery
        stale = fake.seed_message("an older copy", components=[action_row(*(button(b) for b in BUTTONS))])
        answer = await delete_result(fake, result, 1, bob)
        job = await stack.job(1)
        refusals = [await (await fake.click(stale, b, user=bob)).wait_answer() for b in BUTTONS[:3]]

    assert answer.ephemeral and answer.content == "🗑️ Deleted job #1."
    assert result.deleted and job.deleted_at is not None and not media_file(stack, 1).exists()
    assert made == b"\xff\xd8" and not poster.exists()  # a JPEG, gone with its video
    assert [r.content for r in refusals] == ["Job #1 was deleted."] * 3
    assert len(await stack.jobs()) == 1


async def test_delete_asks_privately_first_and_keep_it_changes_nothing(stacks: Stacks):
    async with stacks.run() as stack:
        fake = stack.fake
        bob = fake.make_user(name="bob")
        result = await first_result(stack, bob)
        asked = await (await fake.click(result, "video:delete:1", user=bob)).wait_answer()
        kept = await delete_result(fake, result, 1, bob, confirm=False)
        job = await stack.job(1)

    assert asked.ephemeral and asked.content.startswith("Delete job #1 for good? The message, the kept video")
    assert asked.custom_ids() == [f"video:delete-yes:1:{result.id}", f"video:delete-no:1:{result.id}"]
    assert kept.ephemeral and kept.content == "Kept job #1." and kept.components == []
    assert not result.deleted and job.deleted_at is None and media_file(stack, 1).exists()


async def test_a_private_result_asks_in_its_own_buttons_and_keep_it_gives_them_back(stacks: Stacks):
    async with stacks.run() as stack:
        fake = stack.fake
        bob = fake.make_user(name="bob")
        result = await first_result(stack, bob, private=True)
        buttons = result.custom_ids()
        pressed = await fake.click(result, "video:delete:1", user=bob)
        await pressed.wait_callback()
        asking = result.custom_ids()
        await (await fake.click(result, "video:delete-no:1:0", user=bob)).wait_callback()
        job = await stack.job(1)

    assert pressed.callback_type == 7 and asking == ["video:delete-yes:1:0", "video:delete-no:1:0"]
    assert has_video(result) and result.custom_ids() == buttons and job.deleted_at is None


async def test_someone_elses_confirmation_deletes_nothing(stacks: Stacks):
    async with stacks.run() as stack:
        fake = stack.fake
        bob, eve = fake.make_user(name="bob"), fake.make_user(name="eve")
        result = await first_result(stack, bob)
        forged = fake.seed_message("forged", components=[action_row(button(f"video:delete-yes:1:{result.id}"))])
        refusal = await (await fake.click(forged, f"video:delete-yes:1:{result.id}", user=eve)).wait_answer()
        job = await stack.job(1)

    assert refusal.ephemeral and "is not yours" in refusal.content
    assert not result.deleted and job.deleted_at is None


async def test_a_forged_message_id_in_ones_own_confirmation_deletes_no_other_message(stacks: Stacks):
    async with stacks.run() as stack:
        fake = stack.fake
        bob, eve = fake.make_user(name="bob"), fake.make_user(name="eve")
        mine = await first_result(stack, bob)
        theirs = await first_result(stack, eve)
        chat = fake.seed_message("eve's own words", author=eve)
        forged = [f"video:delete-yes:1:{target.id}" for target in (theirs, chat)]  # bob's own job, their messages
        refusals = [await (await fake.click(fake.seed_message("forged", components=[action_row(button(choice))]),
                                            choice, user=bob)).wait_answer() for choice in forged]
        untouched = await stack.job(1)
        older = fake.seed_message("a copy of the result whose id was not recorded",
                                  components=[action_row(button("video:delete:1"))])  # the bot's, with job 1's button
        choice = f"video:delete-yes:1:{older.id}"
        confirm = fake.seed_message("confirmation", components=[action_row(button(choice))])
        deleted = await (await fake.click(confirm, choice, user=bob)).wait_answer()

    assert [refusal.content for refusal in refusals] == [
        "That message is not the result of job #1; press 🗑 on the result itself."] * 2
    assert not theirs.deleted and not chat.deleted and not mine.deleted and untouched.deleted_at is None
    assert deleted.content == "🗑️ Deleted job #1." and older.deleted


async def test_confirming_one_deletion_twice_deletes_and_audits_once(stacks: Stacks):
    async with stacks.run() as stack:
        fake = stack.fake
        mod = fake.make_user(name="mod", roles=[fake.moderator_role])
        result = await first_result(stack, fake.make_user(name="bob"))
        asked = [await (await fake.click(result, "video:delete:1", user=mod)).wait_answer() for _ in range(2)]
        choice = f"video:delete-yes:1:{result.id}"
        answers = [await (await fake.click(question, choice, user=mod)).wait_answer() for question in asked]
        audit = await stack.service.moderation.repo.latest_audit(guild_id=fake.guild.id)

    assert [answer.content for answer in answers] == ["🗑️ Deleted job #1.", "Job #1 was deleted already."]
    assert [row.action for row in audit] == ["result.delete"]


async def test_two_confirmations_pressed_at_once_delete_once_and_the_second_is_told(stacks: Stacks, monkeypatch):
    """Both confirmations found the job undeleted before either marked it, and both read "🗑️ Deleted job #1."."""
    async with stacks.run() as stack:
        fake = stack.fake
        bob = fake.make_user(name="bob")
        result = await first_result(stack, bob)
        asked = [await (await fake.click(result, "video:delete:1", user=bob)).wait_answer() for _ in range(2)]
        crossing(monkeypatch, stack.bot.showcase.repo, "delete_job")
        presses = [await fake.click(question, f"video:delete-yes:1:{result.id}", user=bob) for question in asked]
        for press in presses:
            await press.wait_callback()
        answers = sorted(press.answer.content for press in presses)
        job = await stack.job(1)

    assert answers == ["Job #1 was deleted already.", "🗑️ Deleted job #1."]
    assert result.deleted and job.deleted_at is not None


async def test_a_moderator_may_delete_someone_elses_result(stacks: Stacks):
    async with stacks.run() as stack:
        fake = stack.fake
        mod = fake.make_user(name="mod", roles=[fake.moderator_role])
        result = await first_result(stack, fake.make_user(name="bob"))
        answer = await delete_result(fake, result, 1, mod)
        job = await stack.job(1)

    assert answer.content == "🗑️ Deleted job #1." and result.deleted and job.deleted_at is not None


async def test_buttons_on_a_message_from_before_a_restart_still_work(stacks: Stacks):
    async with stacks.run() as stack:
        bob = stack.fake.make_user(name="bob")
        old = await first_result(stack, bob, steps=3)

    async with stacks.run() as stack:  # a new bot, service and database connection on the same fake Discord
        fake = stack.fake
        rerolled = await (await fake.click(old, "video:reroll:1", user=bob)).wait_followup(has_video)
        nominated = await (await fake.click(old, "video:showcase:1", user=fake.make_user(name="ann"))).wait_answer()
        entry = await stack.bot.showcase.repo.get(1)
        deleted = await delete_result(fake, old, 1, bob)
        jobs = await stack.jobs()

    assert rerolled.content.startswith(f"<@{bob.id}> here is your video · job #2")
    assert nominated.ephemeral and nominated.content.startswith("⭐ Job #1 is nominated")
    assert entry.state == ShowcaseState.PENDING
    assert deleted.content == "🗑️ Deleted job #1." and old.deleted
    assert [(j.state, j.deleted_at is not None) for j in jobs] == [(JobState.DONE, True), (JobState.DONE, False)]


async def test_a_private_result_has_no_showcase_button_keeps_no_file_and_cannot_be_nominated(stacks: Stacks):
    async with stacks.run() as stack:
        fake = stack.fake
        bob = fake.make_user(name="bob")
        result = await first_result(stack, bob, private=True)
        buttons = result.custom_ids()
        forged = fake.seed_message("forged", components=[action_row(button("video:showcase:1"))])
        refusal = await (await fake.click(forged, "video:showcase:1", user=bob)).wait_answer()
        await delete_result(fake, result, 1, bob)

    assert result.ephemeral and buttons == ["video:reroll:1", "video:edit:1", "video:delete:1"]
    assert not media_file(stack, 1).exists()
    assert refusal.ephemeral and "private" in refusal.content
    assert await stack.bot.showcase.repo.get(1) is None
    assert result.content == "🗑️ Deleted job #1." and result.attachments == [] and result.components == []


async def test_a_private_reroll_stays_private(stacks: Stacks):
    async with stacks.run() as stack:
        fake = stack.fake
        bob = fake.make_user(name="bob")
        result = await first_result(stack, bob, private=True)
        reroll = await fake.click(result, "video:reroll:1", user=bob)
        second = await reroll.wait_followup(has_video)

    assert reroll.callback["data"]["flags"] & 64 and second.ephemeral
    assert (await stack.job(2)).private


async def test_a_reroll_counts_against_the_quota_like_video(stacks: Stacks):
    async with stacks.run(quota_default=1) as stack:
        fake = stack.fake
        bob = fake.make_user(name="bob")
        result = await first_result(stack, bob)
        reroll = await fake.click(result, "video:reroll:1", user=bob)
        answer = await reroll.wait_answer()
        jobs = await stack.jobs()

    assert reroll.original.deleted  # the public placeholder went; the refusal was answered privately
    assert answer.ephemeral and "quota" in answer.content.lower()
    assert [(j.state, j.refusal_reason) for j in jobs][1] == (JobState.REFUSED, "quota")


async def test_a_moderator_deleting_someone_elses_result_is_audited(stacks: Stacks):
    async with stacks.run() as stack:
        fake = stack.fake
        mod, bob = fake.make_user(name="mod", roles=[fake.moderator_role]), fake.make_user(name="bob")
        result = await first_result(stack, bob)
        await delete_result(fake, result, 1, mod)
        [row] = await stack.moderation.repo.latest_audit(5, guild_id=fake.guild.id)

    assert (row.actor_id, row.action, row.target, row.details) == (mod.id, "result.delete", "job:1",
                                                                     {"requester": bob.id})


async def test_a_result_whose_job_row_aged_out_can_still_be_deleted_by_its_requester_only(stacks: Stacks):
    async with stacks.run() as stack:
        fake = stack.fake
        bob, eve = fake.make_user(name="bob"), fake.make_user(name="eve")
        old = await (await video(fake, "a lighthouse in a storm", user=bob)).wait_followup(has_video)
        await (await video(fake, "a kite over a beach", user=bob)).wait_followup(has_video)
        assert await stack.repo.prune_jobs(utc_now() + timedelta(days=1)) == 1  # HISTORY_KEEP_DAYS: job 1's row goes
        refused = await delete_result(fake, old, 1, eve)
        reroll = await (await fake.click(old, "video:reroll:1", user=bob)).wait_answer()
        answer = await delete_result(fake, old, 1, bob)

    assert refused.content == "Job #1 is not yours; only its requester or a moderator can delete it."
    assert reroll.content == "Job #1 no longer exists."
    assert answer.content == "🗑️ Deleted job #1." and old.deleted and not media_file(stack, 1).exists()


async def test_two_confirmations_at_once_of_a_result_whose_job_row_aged_out_delete_it_once(stacks: Stacks,
                                                                                          monkeypatch):
    """Both found the message; the second's delete met a 404, and its presser read "Something went wrong"."""
    async with stacks.run() as stack:
        fake = stack.fake
        bob = fake.make_user(name="bob")
        old = await (await video(fake, "a lighthouse in a storm", user=bob)).wait_followup(has_video)
        await (await video(fake, "a kite over a beach", user=bob)).wait_followup(has_video)
        assert await stack.repo.prune_jobs(utc_now() + timedelta(days=1)) == 1
        asked = [await (await fake.click(old, "video:delete:1", user=bob)).wait_answer() for _ in range(2)]
        crossing(monkeypatch, stack.bot.media, "delete")
        presses = [await fake.click(question, f"video:delete-yes:1:{old.id}", user=bob) for question in asked]
        for press in presses:
            await press.wait_callback()
        answers = sorted(press.answer.content for press in presses)

    assert answers == ["Job #1 was deleted already.", "🗑️ Deleted job #1."] and old.deleted


async def test_a_reroll_or_edit_of_a_job_whose_negative_the_denylist_refuses_since_says_what_can_be_done(
        stacks: Stacks):
    """A moderator added "kitten" after bob's video with the negative "exploding kittens": 🔁 and ✏️ were refused with
    "Please describe something else.", though no button can change a job's negative prompt; ✏️ only once the member
    had typed a new prompt, which could only be refused."""
    async with stacks.run() as stack:
        fake = stack.fake
        bob, mod = fake.make_user(name="bob"), fake.make_user(name="mod", roles=[fake.moderator_role])
        first = await first_result(stack, bob, negative="exploding kittens")
        await (await fake.slash("videomod denylist add", {"pattern": "kitten", "category": "violence"},
                                user=mod)).wait_answer()
        rerolled = await (await fake.click(first, "video:reroll:1", user=bob)).wait_answer()
        edit = await fake.click(first, "video:edit:1", user=bob)  # refused at the press, before a prompt is typed
        edited = (await edit.wait_callback())["type"], (await edit.wait_answer()).content

    refusal = ("Your negative prompt was refused under the content policy: violent or graphic content is not allowed. "
               "Please describe something else. {} keeps job #1's negative prompt: run /video with the prompt and "
               "another `negative`, or `negative:none` for no negative prompt.")
    assert rerolled.content == refusal.format("🔁 Reroll")
    assert edited == (4, refusal.format("✏️ Edit prompt"))
