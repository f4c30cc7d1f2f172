"""Styles end to end: /video style: picked from its autocomplete, rendered with the LoRA and the prompt's prefix and
suffix, named under the result, kept by Reroll and Edit; turned off (and on) by a server's moderators, a server's
default style; an unknown or turned-off style refused privately, naming what there is."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.gpu.models import Models
from bot.gpu.styles import Style
from storage import JobState
from tests.bot.conftest import Stack, Stacks
from tests.bot.helpers import STYLES, StyledPipeline, has_video, styled_models, video
from tests.fakediscord import FakeUser

pytestmark = pytest.mark.usefixtures("logged_errors")

PROMPT = "a fox jumping over a fence"


def styled_stack(stacks: Stacks, pipeline: StyledPipeline):
    """A bot whose worker holds the claymation and watercolor styles."""
    return stacks.run(lambda device: styled_models(pipeline))


def moderator(stack: Stack) -> FakeUser:
    return stack.fake.make_user(name="mod", roles=[stack.fake.moderator_role])


async def test_a_picked_style_renders_with_its_lora_and_words_and_the_result_names_it(stacks: Stacks):
    pipeline = StyledPipeline()
    async with styled_stack(stacks, pipeline) as stack:
        result = await (await video(stack.fake, PROMPT, style="claymation")).wait_followup(has_video)
        job = await stack.job(1)

    assert pipeline.switches == [("claymation", 0.8)]
    assert pipeline.started == [f"claymation style, {PROMPT}, stop motion"]  # what the model is given
    assert (job.prompt, job.params["style"]) == (PROMPT, "claymation")  # what the member typed, kept and shown
    assert f"> {PROMPT}\n" in result.content and "style `claymation`" in result.content


async def test_the_style_option_autocompletes_the_styles_on_in_the_server(stacks: Stacks):
    async with styled_stack(stacks, StyledPipeline()) as stack:
        everything = await stack.fake.autocomplete("video", {"prompt": PROMPT, "style": ""}, "style")
        water = await stack.fake.autocomplete("video", {"prompt": PROMPT, "style": "paint"}, "style")
        await (await stack.fake.slash("videostyle off", {"style": "watercolor"}, user=moderator(stack))).wait_answer()
        after = await stack.fake.autocomplete("video", {"prompt": PROMPT, "style": ""}, "style")

    assert everything == [{"name": "claymation — Clay figures, stop-motion look", "value": "claymation"},
                          {"name": "watercolor — Soft washes of paint", "value": "watercolor"}]
    assert [choice["value"] for choice in water] == ["watercolor"]  # found by its description
    assert [choice["value"] for choice in after] == ["claymation"]


async def test_videos_of_one_style_batch_together_and_the_worker_switches_once_per_batch(stacks: Stacks):
    pipeline = StyledPipeline()
    blocker = pipeline.gate("a lone tree on a hill")
    async with stacks.run(lambda device: styled_models(pipeline), batch_max=4) as stack:
        fake = stack.fake
        first = await video(fake, "a lone tree on a hill")
        await first.wait_original(lambda message: "Starting" in message.content)  # the worker is busy with it
        asked = [(fake.make_user(name=f"member{i}"), prompt, style) for i, (prompt, style) in enumerate(
            [("a red fox", "claymation"), ("a blue whale", "watercolor"), ("a green frog", "claymation"),
             ("a white owl", "watercolor")])]
        handles = []
        for user, prompt, style in asked:  # each queued before the next is asked, so the fair order is this one
            handles.append(await video(fake, prompt, user=user, style=style))
            await handles[-1].wait_original(lambda message: "Queued" in message.content)
        blocker.release(3)
        results = [await handle.wait_followup(has_video) for handle in [first, *handles]]

    clay, water = STYLES["claymation"], STYLES["watercolor"]
    assert pipeline.batches == [(clay.prompt("a red fox"), clay.prompt("a green frog")),
                                (water.prompt("a blue whale"), water.prompt("a white owl"))]
    assert pipeline.switches == [("claymation", 0.8), ("watercolor", 1.0)]
    assert ["style `claymation`" in result.content for result in results[1:]] == [True, False, True, False]


async def test_reroll_and_edit_keep_the_style(stacks: Stacks):
    pipeline = StyledPipeline()
    async with styled_stack(stacks, pipeline) as stack:
        fake = stack.fake
        bob = fake.make_user(name="bob")
        first = await (await video(fake, PROMPT, user=bob, style="watercolor")).wait_followup(has_video)
        rerolled = await (await fake.click(first, "video:reroll:1", user=bob)).wait_followup(has_video)
        await (await fake.click(first, "video:edit:1", user=bob)).wait_modal()
        edited = await fake.submit_modal("video:edit-prompt:1", {"prompt": "a fox asleep in the snow"}, user=bob)
        await edited.wait_followup(has_video)
        jobs = [await stack.job(job_id) for job_id in (1, 2, 3)]

    assert [job.params["style"] for job in jobs] == ["watercolor"] * 3
    assert "style `watercolor`" in rerolled.content
    assert pipeline.started[2] == "a fox asleep in the snow, watercolor painting"
    assert pipeline.switches == [("watercolor", 1.0)]  # applied once, kept for the same style


async def test_an_unknown_style_is_refused_privately_naming_the_styles_and_nothing_runs(stacks: Stacks):
    pipeline = StyledPipeline()
    async with styled_stack(stacks, pipeline) as stack:
        answer = await (await video(stack.fake, PROMPT, style="vaporwave")).wait_answer()
        [job] = await stack.jobs()

    assert answer.ephemeral
    assert answer.content == "There is no style vaporwave. Styles here: claymation, watercolor."
    assert (job.state, job.refusal_reason) == (JobState.REFUSED, "invalid:style")
    assert pipeline.started == [] and pipeline.switches == []


async def test_a_style_is_named_in_any_case_and_a_blank_one_is_left_out(stacks: Stacks):
    pipeline = StyledPipeline()
    async with styled_stack(stacks, pipeline) as stack:
        fake = stack.fake
        await (await fake.slash("videostyle default", {"style": "watercolor"}, user=moderator(stack))).wait_answer()
        loud = await (await video(fake, PROMPT, style="CLAYMATION")).wait_followup(has_video)
        await (await video(fake, PROMPT, style="   ")).wait_followup(has_video)  # as if left out: the default
        await (await video(fake, PROMPT, style="None")).wait_followup(has_video)
        unknown = await (await video(fake, PROMPT, style="  Vaporwave ")).wait_answer()
        jobs = await stack.jobs()

    assert "style `claymation`" in loud.content
    assert [job.params["style"] for job in jobs] == ["claymation", "watercolor", None, "Vaporwave"]
    assert unknown.ephemeral and unknown.content == "There is no style Vaporwave. Styles here: claymation, watercolor."
    assert (jobs[3].state, jobs[3].refusal_reason) == (JobState.REFUSED, "invalid:style")


async def test_a_style_typed_full_width_or_with_zero_width_characters_is_that_style_and_an_invisible_one_is_blank(
        stacks: Stacks):
    """"ｃｌａｙｍａｔｉｏｎ" (as a Japanese or Chinese IME types Latin letters) and a name pasted with a
    zero-width space were refused as "There is no style ｃｌａｙｍａｔｉｏｎ.", and a style of a zero-width space
    alone as "There is no style ." (reading as nothing), where a blank one takes the server's default."""
    pipeline = StyledPipeline()
    async with styled_stack(stacks, pipeline) as stack:
        fake, mod = stack.fake, moderator(stack)
        await (await fake.slash("videostyle default", {"style": "watercolor"}, user=mod)).wait_answer()
        wide = await (await video(fake, PROMPT, style="ｃｌａｙｍａｔｉｏｎ")).wait_followup(has_video)
        await (await video(fake, PROMPT, style="\u200bclaymation\u2060")).wait_followup(has_video)
        await (await video(fake, PROMPT, style="\u200b")).wait_followup(has_video)  # as if left out: the default
        turned = await (await fake.slash("videostyle off", {"style": "ＷＡＴＥＲＣＯＬＯＲ"}, user=mod)).wait_answer()
        blank = await (await fake.slash("videostyle default", {"style": "\u200b\ufeff"}, user=mod)).wait_answer()
        jobs = await stack.jobs()

    assert "style `claymation`" in wide.content
    assert [job.params["style"] for job in jobs] == ["claymation", "claymation", "watercolor"]
    assert turned.content.startswith("The style watercolor is now off in this server.")
    assert blank.content == "The style is blank; name one of this bot's styles: claymation, watercolor."


async def test_a_long_style_listing_fits_one_message_and_says_how_many_more_there_are(stacks: Stacks):
    styles = {f"style-{n:02}": Style(f"style-{n:02}", Path(f"/styles/{n}.safetensors"), 1.0, "", f", look {n}",
                                     f"A look of its own, number {n}, with a description that runs on and on")
              for n in range(40)}
    async with stacks.run(lambda device: Models(StyledPipeline(), styles=styles)) as stack:
        mod = moderator(stack)
        listing = await (await stack.fake.slash("videostyle list", {}, user=mod)).wait_answer()
        turned = await (await stack.fake.slash("videostyle off", {"style": "style-00"}, user=mod)).wait_answer()

    for answer, head in ((listing, "**Styles** of /video in this server"),
                         (turned, "The style style-00 is now off in this server.")):
        lines = answer.content.split("\n")
        listed = [line for line in lines if line.startswith("• `style-")]
        assert len(answer.content) <= 2000 and lines[0] == head
        assert lines[-1] == f"… and {40 - len(listed)} more" and 40 - len(listed) > 0
    assert "• `style-00` · off — A look of its own" in turned.content


async def test_without_styles_a_moderator_reads_that_the_operator_listed_none(stacks: Stacks):
    async with stacks.run() as stack:
        mod = moderator(stack)
        listing = await (await stack.fake.slash("videostyle list", {}, user=mod)).wait_answer()
        turned = await (await stack.fake.slash("videostyle off", {"style": "claymation"}, user=mod)).wait_answer()

    assert listing.content == "This bot has no styles: its operator has not listed any."
    assert turned.content == ("There is no style claymation; the styles are: none (the bot's operator has not listed "
                              "any).")


async def test_a_moderator_turns_a_style_off_for_the_server_and_on_again(stacks: Stacks):
    pipeline = StyledPipeline()
    async with styled_stack(stacks, pipeline) as stack:
        fake, mod = stack.fake, moderator(stack)
        turned = await (await fake.slash("videostyle off", {"style": " Claymation"}, user=mod)).wait_answer()
        refused = await (await video(fake, PROMPT, style="claymation")).wait_answer()
        await (await fake.slash("videostyle on", {"style": "CLAYMATION"}, user=mod)).wait_answer()
        await (await video(fake, PROMPT, style="claymation")).wait_followup(has_video)
        audit = await stack.moderation.repo.latest_audit(5, guild_id=fake.guild.id)

    assert turned.ephemeral and turned.content.startswith("The style claymation is now off in this server.")
    assert "• `claymation` · off — Clay figures, stop-motion look" in turned.content
    assert refused.ephemeral
    assert refused.content == "The style claymation is turned off in this server. Styles here: watercolor."
    assert pipeline.switches == [("claymation", 0.8)]  # only the video after it was on again
    assert [row.action for row in audit][:2] == ["style.on", "style.off"]


async def test_members_cannot_turn_styles_off(stacks: Stacks):
    async with styled_stack(stacks, StyledPipeline()) as stack:
        answer = await (await stack.fake.slash("videostyle off", {"style": "claymation"})).wait_answer()
        await (await video(stack.fake, PROMPT, style="claymation")).wait_followup(has_video)

    assert answer.ephemeral and "for moderators only" in answer.content


async def test_a_servers_default_style_applies_when_a_member_names_none_and_none_opts_out(stacks: Stacks):
    pipeline = StyledPipeline()
    async with styled_stack(stacks, pipeline) as stack:
        fake, mod = stack.fake, moderator(stack)
        named = await (await fake.slash("videostyle default", {"style": "WaterColor"}, user=mod)).wait_answer()
        await (await video(fake, PROMPT)).wait_followup(has_video)
        await (await video(fake, PROMPT, style="none")).wait_followup(has_video)
        await (await fake.slash("videostyle off", {"style": "watercolor"}, user=mod)).wait_answer()
        await (await video(fake, PROMPT)).wait_followup(has_video)  # the default is off: no style
        jobs = await stack.jobs()

    assert named.content.startswith("/video now uses the style watercolor here when a member names none.")
    assert [job.params["style"] for job in jobs] == ["watercolor", None, None]
    assert pipeline.switches == [("watercolor", 1.0), (None, 1.0)]


async def test_video_shows_its_style_option_only_where_the_operator_listed_styles(stacks: Stacks, scripted):
    async with styled_stack(stacks, StyledPipeline()) as stack:
        [styled] = [c for c in stack.fake.commands if c["name"] == "video"]
    async with stacks.run(lambda device: scripted) as stack:
        [plain] = [c for c in stack.fake.commands if c["name"] == "video"]
        result = await (await video(stack.fake, PROMPT)).wait_followup(has_video)

    [style] = [o for o in styled["options"] if o["name"] == "style"]
    assert style["autocomplete"] is True and style["description"].startswith("A look for the video")
    assert "style" not in [o["name"] for o in plain["options"]]  # nothing to pick: no option that can only refuse
    assert [o["name"] for o in plain["options"]] == [o["name"] for o in styled["options"] if o["name"] != "style"]
    assert result.attachments


async def test_a_reroll_or_edit_of_a_job_whose_style_was_turned_off_says_what_can_be_done_from_there(stacks: Stacks):
    """🔁 and ✏️ were refused with "Styles here: watercolor.", as if the member could pick one: no button can change a
    job's style."""
    async with styled_stack(stacks, StyledPipeline()) as stack:
        fake, bob = stack.fake, stack.fake.make_user(name="bob")
        first = await (await video(fake, PROMPT, user=bob, style="claymation")).wait_followup(has_video)
        await (await fake.slash("videostyle off", {"style": "claymation"}, user=moderator(stack))).wait_answer()
        answers = [await (await fake.click(first, f"video:{action}:1", user=bob)).wait_answer()
                   for action in ("reroll", "edit")]
        jobs = await stack.jobs()

    assert [answer.content for answer in answers] == [
        f"The style claymation is turned off in this server. {button} keeps job #1's style: run /video with another "
        "style (watercolor) or `style:none`." for button in ("🔁 Reroll", "✏️ Edit prompt")]
    assert [(job.state, job.refusal_reason) for job in jobs] == [(JobState.DONE, None),
                                                                 (JobState.REFUSED, "invalid:style")]
