"""/video's result buttons used the way a stranger uses them: ✏️ pressed after the member was blocked or ran out of
quota, on an upscale whose source is gone, an edited prompt refused once typed, and an error after a public
placeholder (or a refusal after one deleted by hand)."""

import pytest

from bot.errors import Refused
from bot.ui.replies import INTERNAL_ERROR
from storage import JobState
from tests.bot.conftest import Stacks
from tests.bot.helpers import ScriptedPipeline, command, contents, delete_result, has_video, people, plain, video
from tests.bot.ui.test_e2e_creative import upscaling
from tests.fakediscord import FakeDiscord, FakeMessage, FakeUser

pytestmark = pytest.mark.usefixtures("logged_errors")

PROMPT = "a hot air balloon over green hills"


async def press_edit(fake: FakeDiscord, result: FakeMessage, job_id: int, user: FakeUser) -> tuple[int, str]:
    """✏️ on `result`: the callback type Discord got (9: the form) and, when it is no form, the answer's text."""
    pressed = await fake.click(result, f"video:edit:{job_id}", user=user)
    callback = await pressed.wait_callback()
    return callback["type"], "" if callback["type"] == 9 else (await pressed.wait_answer()).content


async def test_edit_prompt_is_refused_at_the_press_not_after_typing_when_blocked_or_out_of_quota(stacks: Stacks):
    async with stacks.run(quota_default=2) as stack:
        fake = stack.fake
        mod, bob = people(fake)
        carol = fake.make_user(name="carol")
        first = await (await video(fake, PROMPT, user=bob)).wait_followup(has_video)
        second = await (await video(fake, PROMPT, user=bob)).wait_followup(has_video)
        at_quota = await press_edit(fake, second, 2, bob)
        hers = await (await video(fake, PROMPT, user=carol)).wait_followup(has_video)
        await command(fake, "videomod block", mod, user=carol, reason="spam")
        blocked = await press_edit(fake, hers, 3, carol)
        refused_rows = [job for job in await stack.jobs() if job.state == JobState.REFUSED]
        unblocked = await command(fake, "videomod unblock", mod, user=carol)
        free_again = await press_edit(fake, hers, 3, carol)

    assert first.custom_ids()[1] == "video:edit:1"
    assert at_quota[0] == 4 and at_quota[1].startswith("You have reached your video quota: 2 of 2 videos used today")
    assert blocked == (4, "You are blocked from making videos: spam. A moderator can lift the block.")
    assert refused_rows == []  # nothing was asked: no refused request is recorded
    assert unblocked.ephemeral and free_again == (9, "")


async def test_edit_prompt_of_an_upscale_whose_source_was_deleted_is_refused_at_the_press(stacks: Stacks):
    async with upscaling(stacks) as stack:
        fake = stack.fake
        bob = fake.make_user(name="bob")
        first = await (await video(fake, PROMPT, user=bob)).wait_followup(has_video)
        upscaled = await (await fake.click(first, "video:upscale:1", user=bob)).wait_followup(has_video)
        await delete_result(fake, first, 1, bob)
        edit = await press_edit(fake, upscaled, 2, bob)
        jobs = await stack.jobs()

    assert edit == (4, "Job #1 was deleted.")
    assert len(jobs) == 2


async def test_an_edited_prompt_refused_when_submitted_is_quoted_back_so_it_is_not_lost(stacks: Stacks,
                                                                                         scripted: ScriptedPipeline):
    typed = "a hot air balloon over a desert at dawn, *slow* pan"
    async with stacks.run(lambda device: scripted, queue_per_user_cap=1) as stack:
        fake = stack.fake
        bob = fake.make_user(name="bob")
        asked = await video(fake, PROMPT, user=bob)
        first = await asked.wait_followup(has_video)
        await asked.wait_original(lambda m: m.content.startswith("Finished"))
        scripted.gate("a red fox running through snow")
        rendering = await video(fake, "a red fox running through snow", user=bob)
        await rendering.wait_original(lambda m: m.content.startswith("Starting"))
        assert await press_edit(fake, first, 1, bob) == (9, "")
        submitted = await fake.submit_modal("video:edit-prompt:1", {"prompt": typed}, user=bob)
        answer = await submitted.wait_answer(lambda m: not m.loading and m.content != "")
        scripted.open("a red fox running through snow")
        refused = await stack.job(3)

    assert answer.ephemeral and answer.content == (
        "You already have a video queued or rendering, and the limit is one per user. Wait for it to finish or cancel "
        "it.\nYour prompt, to try again:\n> a hot air balloon over a desert at dawn, \\*slow\\* pan")
    assert (refused.state, refused.prompt) == (JobState.REFUSED, typed)


async def _edited_after_delete(stack, typed: str):
    """bob's answer to ✏️ Edit prompt's form, opened on his first video and submitted with `typed` after he deleted
    that video."""
    fake = stack.fake
    bob = fake.make_user(name="bob")
    first = await (await video(fake, PROMPT, user=bob)).wait_followup(has_video)
    assert await press_edit(fake, first, 1, bob) == (9, "")
    await delete_result(fake, first, 1, bob)
    return await (await fake.submit_modal("video:edit-prompt:1", {"prompt": typed}, user=bob)).wait_answer()


async def test_an_edited_prompt_submitted_after_its_result_was_deleted_is_quoted_back(stacks: Stacks):
    """The form was open while the result was deleted; the answer said "Job #1 was deleted." and the prompt was lost."""
    typed = "a hot air balloon over a desert at dawn"
    async with stacks.run() as stack:
        answer = await _edited_after_delete(stack, typed)
        jobs = await stack.jobs()

    assert answer.ephemeral and answer.content == f"Job #1 was deleted.\nYour prompt, to try again:\n> {typed}"
    assert len(jobs) == 1


@pytest.mark.parametrize("asked", ["video", "reroll", "upscale"])
async def test_an_error_after_a_public_placeholder_is_told_privately_and_the_placeholder_goes(
        stacks: Stacks, logged_errors, monkeypatch: pytest.MonkeyPatch, asked: str):
    """The channel read "Something went wrong on our side…" in the public placeholder of bob's 🔁, ⬆️ or /video."""
    logged_errors.expect("a bug in submit")
    async with upscaling(stacks) as stack:
        fake = stack.fake
        bob = fake.make_user(name="bob")
        first = await (await video(fake, PROMPT, user=bob)).wait_followup(has_video)

        async def broken(*args: object) -> None:
            raise RuntimeError("a bug in submit")

        monkeypatch.setattr(stack.service, "submit", broken)
        if asked == "video":
            handle = await video(fake, PROMPT, user=bob)
        else:
            handle = await fake.click(first, f"video:{asked}:1", user=bob)
        answer = await handle.wait_answer()
        placeholder = handle.original

    assert (await handle.wait_deferred())["type"] == 5 and placeholder is not None
    assert placeholder.deleted and not any("went wrong" in text for text in contents(placeholder))
    assert answer.ephemeral and answer.content == INTERNAL_ERROR


async def test_a_refusal_whose_public_placeholder_was_deleted_by_hand_meanwhile_still_reaches_the_member(
        stacks: Stacks, monkeypatch: pytest.MonkeyPatch):
    """A moderator deleted the "thinking…" placeholder while the request was decided: the refusal never went out, and
    the bot logged an error."""
    async with stacks.run() as stack:
        fake = stack.fake

        async def refused_once_its_placeholder_is_gone(*args: object) -> None:
            [placeholder] = [m for m in fake.messages.values() if m.loading and not m.deleted]
            await fake.delete_by_hand(placeholder)
            raise Refused("quota", "You have reached your video quota.")

        monkeypatch.setattr(stack.service, "submit", refused_once_its_placeholder_is_gone)
        handle = await video(fake, PROMPT, user=fake.make_user(name="bob"))
        answer = await handle.wait_answer()

    assert handle.original.deleted and answer.ephemeral and answer.content == "You have reached your video quota."


async def test_a_long_edited_prompt_with_markdown_is_quoted_back_whole(stacks: Stacks):
    """Its escapes ("\\*") counted against the 500 characters the quote kept: a 500-character prompt with markdown came
    back cut ("…"), and the member lost its end."""
    typed = ("a *slow* pan over __green__ hills at dawn, " * 13)[:500]
    async with stacks.run() as stack:
        answer = await _edited_after_delete(stack, typed)

    head, quoted = answer.content.split("\nYour prompt, to try again:\n> ")
    assert head == "Job #1 was deleted." and plain(quoted) == typed.strip()
