"""/cancel, /quota and /videostyle used as strangers on a busy server use them: a cancel while Discord holds up the
job's status edit, a moderator's typo in a style's name (among many styles), a quota of 0.

The real discord.py client against the fake Discord; nothing sleeps: the tests wait on events and requests.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from bot.gpu.models import Models
from bot.gpu.styles import Style
from storage import JobState
from tests.bot.conftest import Stacks
from tests.bot.helpers import StyledPipeline, has_video, styled_models, video
from tests.fakediscord import FakeUser

pytestmark = pytest.mark.usefixtures("logged_errors")

RUNNING = "a lighthouse beam sweeping over fog"
WAITING = "a paper crane unfolding on a desk"


@pytest.mark.parametrize("how", ["slash", "button"])
async def test_a_cancel_is_acknowledged_at_once_while_discord_holds_up_the_jobs_status_edit(stacks: Stacks, scripted,
                                                                                               how: str):
    """Cancelling edits the job's status ("✖ Cancelled"); on a busy server Discord may take its time with that edit.
    The /cancel (or ✖ Cancel) itself is acknowledged at once all the same: Discord fails an interaction not answered
    within 3 s ("The application did not respond") though the job was cancelled."""
    gate = scripted.gate(RUNNING)
    async with stacks.run(lambda device: scripted) as stack:
        fake = stack.fake
        first = await video(fake, RUNNING)
        await first.wait_original(lambda m: m.content.startswith("Starting"))
        waiting = await video(fake, WAITING)
        status = await waiting.wait_original(lambda m: m.content.startswith("Queued #1"))
        release = fake.hold_next(f"PATCH /webhooks/*/{waiting.token}/messages/@original")
        cancel = (await fake.slash("cancel", {"job": 2}) if how == "slash"
                  else await fake.click(status, "video:cancel:2"))
        try:
            acknowledged = await cancel.wait_callback()
        finally:
            release.set()
        answer = await cancel.wait_answer()
        await waiting.wait_original(lambda m: m.content == "✖ Cancelled job #2.")
        gate.release(100)
        await first.wait_followup(has_video)
        job = await stack.job(2)

    assert acknowledged["type"] == 5 and answer.ephemeral  # "thinking", privately, before the status edit went through
    assert answer.content == "✖ Cancelled job #2." and job.state == JobState.CANCELLED


def moderator(stacks: Stacks) -> FakeUser:
    return stacks.fake.make_user(name="mod", roles=[stacks.fake.moderator_role])


async def test_a_style_typo_among_many_long_named_styles_is_answered_in_one_message(stacks: Stacks):
    """STYLES_FILE has no limit: naming every style in the refusal ran past Discord's 2000 characters, and the
    moderator got no answer at all ("The application did not respond")."""
    names = [f"a-rather-long-style-name-number-{n:03}" for n in range(70)]
    styles = {name: Style(name, Path(f"/styles/{name}.safetensors"), 1.0, "", "", "A look") for name in names}
    mod = moderator(stacks)
    async with stacks.run(lambda device: Models(StyledPipeline(), styles=styles)) as stack:
        answers = [await (await stack.fake.slash(f"videostyle {command}", {"style": "number-7"}, user=mod)
                          ).wait_answer() for command in ("off", "on", "default")]
        audit = await stack.moderation.repo.latest_audit(5, guild_id=stack.fake.guild.id)

    for answer in answers:
        assert answer.ephemeral and len(answer.content) <= 2000
        assert answer.content.startswith(f"There is no style number-7; the styles are: {names[0]}, {names[1]}, ")
        assert re.search(r", … and \d+ more\.$", answer.content), answer.content
    assert [row.action for row in audit if row.action.startswith(("style", "defaults"))] == []  # nothing changed


async def test_a_misspelt_style_is_refused_naming_the_closest_and_nothing_changes(stacks: Stacks):
    mod = moderator(stacks)
    async with stacks.run(lambda device: styled_models(StyledPipeline())) as stack:
        fake = stack.fake
        answers = {command: await (await fake.slash(f"videostyle {command}", {"style": " Watercolr"}, user=mod)
                                   ).wait_answer() for command in ("off", "default")}
        listing = await (await fake.slash("videostyle list", {}, user=mod)).wait_answer()

    for answer in answers.values():
        assert answer.content == ("There is no style Watercolr; the styles are: claymation, watercolor. Did you mean "
                                  "watercolor?")
    assert "• `watercolor` · on —" in listing.content and "No default style" in listing.content


async def test_quota_of_zero_does_not_promise_videos_when_the_period_turns(stacks: Stacks):
    """/quota said "0 of 0 videos used today; it resets in 11 hours": a member waited for the reset, which brings
    nothing; /video's refusal already said the quota is 0."""
    mod = moderator(stacks)
    async with stacks.run() as stack:
        fake = stack.fake
        await (await fake.slash("videomod quota set", {"user": fake.default_user, "limit": 0}, user=mod)).wait_answer()
        shown = await (await fake.slash("quota")).wait_answer()

    assert shown.ephemeral and "resets" not in shown.content
    assert shown.content.split("\n")[1:] == [
        "Your quota is 0 videos per day, so you cannot make videos; a new day does not change that; ask a moderator "
        "if that seems wrong.", "0 left · limit from a limit a moderator set for you"]


async def test_a_video_naming_no_style_among_many_long_named_styles_is_answered_in_one_message(stacks: Stacks):
    """/video's refusal names the styles the member may pick: with a long STYLES_FILE it ran past Discord's 2000
    characters, and the member got no answer at all."""
    names = [f"a-rather-long-style-name-number-{n:03}" for n in range(70)]
    styles = {name: Style(name, Path(f"/styles/{name}.safetensors"), 1.0, "", "", "A look") for name in names}
    async with stacks.run(lambda device: Models(StyledPipeline(), styles=styles)) as stack:
        answer = await (await video(stack.fake, "a red kite over the sea", style="number-7")).wait_answer()

    assert answer.ephemeral and len(answer.content) <= 2000
    assert answer.content.startswith(f"There is no style number-7. Styles here: {names[0]}, {names[1]}, ")


async def test_an_answer_made_too_long_is_cut_to_one_message_not_lost(stacks: Stacks, monkeypatch, caplog):
    """The last line of defence: Discord refuses a message over 2000 characters whole, and the member got nothing."""
    import bot.moderation.styles

    monkeypatch.setattr(bot.moderation.styles, "listed", lambda names: "x" * 3000)
    async with stacks.run(lambda device: styled_models(StyledPipeline())) as stack:
        answer = await (await video(stack.fake, "a red kite over the sea", style="nope")).wait_answer()

    assert answer.ephemeral and len(answer.content) == 2000
    assert answer.content.startswith("There is no style nope. Styles here: xxx") and answer.content.endswith("x…")
    assert "an answer of 3038 characters was cut to Discord's 2000" in caplog.text
