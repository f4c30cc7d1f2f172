"""Every user text through the real /video on the fake Discord: checked by the policy gate, and inert when shown."""

import pytest

from storage import JobState
from tests.bot.conftest import Stacks
from tests.bot.helpers import command, has_video, video
from tests.fakediscord import FakeDiscord, FakeMessage

pytestmark = pytest.mark.usefixtures("logged_errors")


async def edited(fake: FakeDiscord, prompt: str) -> FakeMessage:
    """Bob's first video (job 1), then ✏️ Edit prompt on it with `prompt`: the answer to the edit."""
    bob = fake.make_user(name="bob")
    first = await (await video(fake, "a hot air balloon over green hills", user=bob, steps=2)).wait_followup(has_video)
    await (await fake.click(first, "video:edit:1", user=bob)).wait_modal()
    return await (await fake.submit_modal("video:edit-prompt:1", {"prompt": prompt}, user=bob)).wait_answer()


async def test_a_negative_prompt_with_sexual_words_is_refused_privately_naming_the_field(stacks: Stacks, scripted):
    async with stacks.run(lambda device: scripted) as stack:
        handle = await video(stack.fake, "a cat sitting in a garden", negative="clothes, n@ked, t0pless")
        answer = await handle.wait_answer()
        [job] = await stack.jobs()
    assert answer.ephemeral and "negative prompt" in answer.content and "sexual content" in answer.content
    assert (job.state, job.refusal_reason) == (JobState.REFUSED, "denylist:sexual")
    assert scripted.started == []


async def test_a_foreign_negative_prompt_is_refused_as_not_english(stacks: Stacks, scripted):
    async with stacks.run(lambda device: scripted) as stack:
        answer = await (await video(stack.fake, "a cat sitting in a garden", negative="ropa desnuda")).wait_answer()
        [job] = await stack.jobs()
    assert "negative prompt" in answer.content and job.refusal_reason == "not_english"


async def test_a_negative_prompt_that_is_the_prompt_itself_is_refused_naming_it(stacks: Stacks, scripted):
    """It rendered: guidance pushed the video towards the prompt and away from it at once, and nothing said so."""
    async with stacks.run(lambda device: scripted) as stack:
        handle = await video(stack.fake, "A cat sitting in a garden", negative="  a CAT sitting in  a garden ")
        answer = await handle.wait_answer()
        [job] = await stack.jobs()

    assert answer.ephemeral and answer.content == (
        "The negative prompt “a CAT sitting in a garden” is the prompt itself, so guidance would cancel out (the "
        "video renders as at guidance 1): give it what to avoid, such as “blurry, low quality”, or `none` for no "
        "negative prompt.")
    assert (job.state, job.refusal_reason) == (JobState.REFUSED, "invalid:negative") and scripted.started == []


async def test_a_blank_negative_prompt_takes_the_servers_default_and_none_renders_without_it(stacks: Stacks,
                                                                                             scripted):
    """A negative of nothing but spaces cleared the server's default negative prompt, which nothing documented."""
    async with stacks.run(lambda device: scripted) as stack:
        fake = stack.fake
        mod = fake.make_user(name="mod", roles=[fake.moderator_role])
        await command(fake, "videomod defaults set", mod, negative="blurry, low quality")
        for negative in ("   ", "None", " none ", "shaky", None):
            options = {} if negative is None else {"negative": negative}
            await (await video(fake, "a cat sitting in a garden", user=fake.make_user(), **options)).wait_answer()
        jobs = await stack.jobs()

    assert JobState.REFUSED not in [job.state for job in jobs]
    assert [job.negative_prompt for job in jobs] == ["blurry, low quality", "", "", "shaky", "blurry, low quality"]


async def test_a_negative_of_invisible_characters_is_blank_and_takes_the_servers_default(stacks: Stacks):
    """A negative of zero-width spaces (pasted, or typed to "clear" the option) stepped over the server's default
    negative prompt and rendered as none, and the result read "Negative: " with nothing after it."""
    async with stacks.run() as stack:
        fake = stack.fake
        mod = fake.make_user(name="mod", roles=[fake.moderator_role])
        await command(fake, "videomod defaults set", mod, negative="blurry, low quality")
        result = await (await video(fake, "a cat sitting in a garden", user=fake.make_user(),
                                    negative="\u200b\u2060 \ufeff")).wait_followup(has_video)
        job = await stack.job(1)

    assert job.negative_prompt == "blurry, low quality"
    assert "\nNegative: blurry, low quality\n" in result.content


async def test_an_edited_prompt_goes_through_the_same_gate(stacks: Stacks):
    async with stacks.run() as stack:
        fake = stack.fake
        answer = await edited(fake, "a hot air balloon, n u d e pilot")
        job = await stack.job(2)
    assert answer.ephemeral and "Your prompt was refused" in answer.content
    assert (job.state, job.refusal_reason) == (JobState.REFUSED, "denylist:sexual")


async def test_a_url_in_a_prompt_is_shown_wrapped_so_discord_never_unfurls_it(stacks: Stacks):
    async with stacks.run() as stack:
        prompt = "a cat watching https://example.com/cats_video on a laptop"
        result = await (await video(stack.fake, prompt, steps=2)).wait_followup(has_video)
    assert "<https://example.com/cats_video>" in result.content
    assert "https://example.com" not in result.content.replace("<https://example.com/cats_video>", "")
    assert not result.embeds


@pytest.mark.parametrize(("typed", "code"), [("a cat \u202esleeping on a sofa", "U+202E"),
                                             ("a cat sleeping\x00 on a sofa", "U+0000"),
                                             ("a cat \x1b[31msleeping on a sofa", "U+001B")])
async def test_bidi_overrides_and_control_characters_are_refused_and_stored_without_nul(stacks: Stacks, scripted,
                                                                                       typed, code):
    async with stacks.run(lambda device: scripted) as stack:
        answer = await (await video(stack.fake, typed)).wait_answer()
        [job] = await stack.jobs()
    assert answer.ephemeral and code in answer.content and "Your prompt" in answer.content
    assert (job.state, job.refusal_reason) == (JobState.REFUSED, "invalid:characters")
    assert job.prompt == typed.replace("\x00", "")  # what the user typed, minus what the database cannot hold
    assert scripted.started == []


async def test_markdown_and_mentions_in_a_prompt_show_as_typed(stacks: Stacks):
    async with stacks.run() as stack:
        prompt = "a **bold** cat named @everyone [click](https://example.com) ||hidden||"
        result = await (await video(stack.fake, prompt, steps=2)).wait_followup(has_video)
    assert "\\*\\*bold\\*\\*" in result.content and "@\u200beveryone" in result.content
    assert "\\[click\\](<https://example.com>)" in result.content and "\\|\\|hidden\\|\\|" in result.content


EMPTY = "Your prompt is empty. Describe the video you want, in English."


@pytest.mark.parametrize("typed", ["   ", "\n\n", "\u3000", "\u200b", " \u200b\t"])
async def test_every_blank_prompt_gets_the_same_refusal_before_any_work_and_nothing_is_charged(stacks: Stacks,
                                                                                              scripted, typed):
    async with stacks.run(lambda device: scripted) as stack:
        fake = stack.fake
        bob = fake.make_user(name="bob")
        answer = await (await video(fake, typed, user=bob, steps=2)).wait_answer()
        [job] = await stack.jobs()
        quota = await stack.moderation.quota(bob.id, (), fake.guild.id)
    assert answer.ephemeral and answer.content == EMPTY
    assert (job.state, job.refusal_reason, job.prompt) == (JobState.REFUSED, "empty", typed)
    assert scripted.started == [] and quota.used == 0


async def test_a_blank_edited_prompt_gets_the_same_refusal_as_a_blank_video_prompt(stacks: Stacks):
    async with stacks.run() as stack:
        fake = stack.fake
        answer = await edited(fake, " \n ")
        job = await stack.job(2)
        quota = await stack.moderation.quota(job.user_id, (), fake.guild.id)
    assert answer.ephemeral and answer.content == EMPTY
    assert (job.state, job.refusal_reason) == (JobState.REFUSED, "empty") and quota.used == 1


async def test_a_prompt_clipped_for_its_message_never_keeps_half_a_link(stacks: Stacks):
    prompt = "a red fox running in the snow " + "*" * 312 + " https://example.com/some/long/path/to/the/page"
    async with stacks.run() as stack:
        result = await (await video(stack.fake, prompt, steps=2)).wait_followup(has_video)
    assert "> a red fox running in the snow " + "\\*" * 312 + "…\n" in result.content
    assert "example.com" not in result.content and not result.embeds
