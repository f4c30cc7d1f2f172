"""/videomod and /videostyle at their edges, end to end, as a moderator new to the bot would try them: a command
repeated, undoing what was never done, blank or oddly typed values, and a change that meets one made before."""

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from storage import GLOBAL
from tests.bot.conftest import Stacks
from tests.bot.helpers import StyledPipeline, command, has_video, people, plain, styled_models, video

pytestmark = pytest.mark.usefixtures("logged_errors")

EVER = datetime(2000, 1, 1, tzinfo=UTC)  # usage counted from here: all of it
BLOCKED = "✖ A moderator cancelled job #{}: you are blocked from making videos."  # a block's cancel


async def test_clearing_a_personal_quota_that_was_never_set_says_so_and_audits_nothing(stacks: Stacks, scripted):
    async with stacks.run(lambda device: scripted, operator_user_ids=999) as stack:
        fake = stack.fake
        mod, bob = people(fake)
        await command(fake, "videomod quota set", mod, user=bob, limit=2)
        cleared = await command(fake, "videomod quota clear", mod, user=bob)
        again = await command(fake, "videomod quota clear", mod, user=bob)
        actions = [row.action for row in await stack.moderation.repo.latest_audit(10, guild_id=fake.guild.id)]

    assert cleared.content.startswith("Personal quota removed.\n")
    assert again.content.startswith(f"<@{bob.id}> had no personal quota here.\n")
    assert actions == ["quota.clear", "quota.set"]


async def test_an_operator_clearing_a_cap_that_was_never_set_is_told_so(stacks: Stacks, scripted):
    operator = stacks.fake.make_user(name="operator", roles=[stacks.fake.moderator_role])
    async with stacks.run(lambda device: scripted, operator_user_ids=operator.id) as stack:
        bob = stack.fake.make_user(name="bob")
        answer = await command(stack.fake, "videomod operator quota-clear", operator, user=bob)

    assert answer.content.startswith(f"<@{bob.id}> had no cap across every server.\n")


async def test_blocking_someone_already_blocked_says_which_block_it_replaces(stacks: Stacks, scripted):
    async with stacks.run(lambda device: scripted) as stack:
        fake = stack.fake
        mod, bob = people(fake)
        other = fake.make_user(name="other mod", roles=[fake.moderator_role])
        first = await command(fake, "videomod block", other, user=bob, reason="spamming")
        second = await command(fake, "videomod block", mod, user=bob, reason="still spamming", duration="2h")

    assert first.content == f"Blocked <@{bob.id}> permanently. Reason shown to them: spamming."
    assert plain(second.content).startswith(f"Blocked <@{bob.id}> until <t:")
    assert second.content.endswith(f"This replaces their earlier block (permanent, by <@{other.id}>: spamming). "
                                   "Reason shown to them: still spamming.")


async def test_a_reason_that_ends_its_own_sentence_gets_no_second_full_stop(stacks: Stacks, scripted):
    async with stacks.run(lambda device: scripted) as stack:
        fake = stack.fake
        mod, bob = people(fake)
        confirmation = await command(fake, "videomod block", mod, user=bob, reason="Spamming the channel!")
        refused = await (await fake.slash("video", {"prompt": "a red kite", "aspect": "tiny"}, user=bob)).wait_answer(
            lambda m: not m.loading and m.content != "")

    assert confirmation.content.endswith("Reason shown to them: Spamming the channel!")
    assert refused.content.startswith("You are blocked from making videos: Spamming the channel! A moderator")


@pytest.mark.parametrize("reason", ["\u200b\u200b", "\x01\x02", "\u200e \ufeff"])
async def test_a_reason_of_invisible_characters_is_no_reason(stacks: Stacks, scripted, reason: str):
    """The blocked member read "You are blocked from making videos: . A moderator can lift the block.", and the
    moderator "Reason shown to them: ." (or a zero-width space that reads as nothing)."""
    async with stacks.run(lambda device: scripted) as stack:
        fake = stack.fake
        mod, bob = people(fake)
        confirmation = await command(fake, "videomod block", mod, user=bob, reason=reason)
        refused = await (await fake.slash("video", {"prompt": "a red kite", "aspect": "tiny"}, user=bob)).wait_answer(
            lambda m: not m.loading and m.content != "")
        [block] = await stack.moderation.repo.active_blocks(guild_id=fake.guild.id)

    assert confirmation.content.endswith("Reason shown to them: no reason given.")
    assert refused.content == "You are blocked from making videos: no reason given. A moderator can lift the block."
    assert block.reason == "no reason given"


async def test_unblocking_someone_whose_block_ran_out_or_who_is_blocked_everywhere_says_so(stacks: Stacks,
                                                                                           scripted):
    async with stacks.run(lambda device: scripted) as stack:
        fake = stack.fake
        mod, bob = people(fake)
        carol = fake.make_user(name="carol")
        await command(fake, "videomod block", mod, user=bob, duration="1h")
        stacks.calendar.now += timedelta(hours=2)
        expired = await command(fake, "videomod unblock", mod, user=bob)
        await stack.moderation.block(999, carol.id, "abuse", None, guild_id=GLOBAL)  # the operators'
        await command(fake, "videomod block", mod, user=carol)
        everywhere = await command(fake, "videomod unblock", mod, user=carol)

    assert expired.content == f"<@{bob.id}> was not blocked here."
    assert everywhere.content == (f"Unblocked <@{carol.id}>. They are still blocked in every server by the bot's "
                                  "operators.")


async def test_allowing_or_turning_off_a_channel_twice_says_it_already_was(stacks: Stacks, scripted):
    async with stacks.run(lambda device: scripted) as stack:
        fake = stack.fake
        mod, _ = people(fake)
        await command(fake, "videomod channel allow", mod, channel=fake.channel)
        allowed = await command(fake, "videomod channel allow", mod, channel=fake.channel)
        await command(fake, "videomod channel deny", mod, channel=fake.channel)
        denied = await command(fake, "videomod channel deny", mod, channel=fake.channel)

    assert allowed.content.startswith(f"/video was already allowed in <#{fake.channel.id}>.\n")
    assert denied.content.startswith(f"/video was already turned off in <#{fake.channel.id}>.\n")


async def test_a_default_above_the_operators_cap_is_refused_without_naming_a_setting(stacks: Stacks, scripted):
    async with stacks.run(lambda device: scripted, max_steps=20) as stack:
        mod, _ = people(stack.fake)
        answer = await command(stack.fake, "videomod defaults set", mod, steps=21)

    assert answer.content == "Steps must be at most 20 on this bot; you asked for 21."


async def test_a_prompt_test_names_a_refusal_other_than_the_denylist_in_words(stacks: Stacks, scripted):
    async with stacks.run(lambda device: scripted) as stack:
        mod, _ = people(stack.fake)
        answer = await command(stack.fake, "videomod denylist test", mod, prompt="猫が走っている")

    assert answer.content.splitlines()[1].startswith("⛔ Refused (not English): Your prompt must be in English")


@pytest.mark.parametrize(("path", "option", "says"), [
    ("videomod denylist add", "pattern", "The pattern is blank: give a word, phrase, stem* or a + b"),
    ("videomod denylist remove", "pattern", "The pattern is blank: give a word, phrase, stem* or a + b"),
    ("videomod allowlist add", "phrase", "The phrase is blank: give a word or phrase"),
    ("videomod allowlist remove", "phrase", "The phrase is blank: give a word or phrase"),
])
async def test_a_blank_pattern_or_phrase_is_refused_as_blank(stacks: Stacks, scripted, path, option, says):
    async with stacks.run(lambda device: scripted) as stack:
        mod, _ = people(stack.fake)
        extra = {"category": "violence"} if path == "videomod denylist add" else {}
        answer = await command(stack.fake, path, mod, **{option: "   "}, **extra)

    assert plain(answer.content).startswith(says), answer.content


async def test_a_category_is_read_in_any_case_and_a_refused_entry_ends_its_sentence(stacks: Stacks, scripted):
    async with stacks.run(lambda device: scripted) as stack:
        mod, _ = people(stack.fake)
        added = await command(stack.fake, "videomod denylist add", mod, pattern="exploding kittens",
                              category=" Violence ")
        refused = await command(stack.fake, "videomod denylist add", mod, pattern="kill.*", category="violence")

    assert added.content.startswith("Added “exploding kittens” to this server's denylist under violence;")
    assert refused.content.startswith("Not added:") and refused.content.endswith(".")


async def test_making_a_style_that_is_off_the_default_says_it_renders_without_a_style(stacks: Stacks):
    async with stacks.run(lambda device: styled_models(StyledPipeline())) as stack:
        mod, _ = people(stack.fake)
        await command(stack.fake, "videostyle off", mod, style="claymation")
        answer = await command(stack.fake, "videostyle default", mod, style="claymation")

    assert answer.content.startswith("/video now uses the style claymation here when a member names none. It is off "
                                     "in this server: /video renders without a style until it is on again.\n")


@pytest.mark.parametrize("path", ["videostyle on", "videostyle off", "videostyle default"])
async def test_a_blank_style_is_refused_naming_the_styles(stacks: Stacks, path):
    async with stacks.run(lambda device: styled_models(StyledPipeline())) as stack:
        mod, _ = people(stack.fake)
        answer = await command(stack.fake, path, mod, style="  ")

    assert answer.content == "The style is blank; name one of this bot's styles: claymation, watercolor."


async def test_a_phrase_a_listed_word_already_refuses_is_not_added_twice_over(stacks: Stacks, scripted):
    async with stacks.run(lambda device: scripted) as stack:
        fake = stack.fake
        mod, _ = people(fake)
        shared = await command(fake, "videomod denylist add", mod, pattern="nude beach", category="sexual")
        await command(fake, "videomod denylist add", mod, pattern="exploding kittens", category="violence")
        own = await command(fake, "videomod denylist add", mod, pattern="three exploding kittens", category="hate")
        rule = await command(fake, "videomod denylist add", mod, pattern="nude + beach", category="sexual")
        entries = [entry.pattern for entry in stack.bot.service.gate.own_entries(fake.guild.id)]

    assert shared.content == ("“nude beach” is already refused by “nude” on the shared denylist; nothing to add.")
    assert own.content == ("“three exploding kittens” is already refused by “exploding kittens” on this server's "
                           "denylist; nothing to add.")
    assert rule.content.startswith("Added “nude + beach”")  # a rule is not judged: its parts may stand apart
    assert entries == ["exploding kittens", "nude + beach"]


async def test_a_block_cancels_the_users_queued_videos_and_stops_the_running_one(stacks: Stacks, scripted):
    running = scripted.gate("a long train journey")
    async with stacks.run(lambda device: scripted) as stack:
        fake = stack.fake
        mod, bob = people(fake)
        first = await video(fake, "a long train journey", user=bob)
        await first.wait_original(lambda m: m.content.startswith("Starting"))
        second = await video(fake, "a short boat trip", user=bob)
        await second.wait_original(lambda m: m.content.startswith("Queued"))
        carols = await video(fake, "a quiet harbour at dawn", user=fake.make_user(name="carol"))
        await carols.wait_original(lambda m: m.content.startswith("Queued"))
        answer = await command(fake, "videomod block", mod, user=bob, reason="spamming")
        await second.wait_original(lambda m: m.content == BLOCKED.format(2))
        running.release(100)
        await first.wait_original(lambda m: m.content == BLOCKED.format(1))  # not as if bob had
        await carols.wait_followup(has_video)
        used = await stack.moderation.repo.count_usage(bob.id, EVER, guild_id=fake.guild.id)

    assert answer.content == (f"Blocked <@{bob.id}> permanently. Reason shown to them: spamming. Their 1 queued video "
                              "is cancelled and 1 running video stops at its next step.")
    assert scripted.started == ["a long train journey", "a quiet harbour at dawn"]
    assert used == 0  # the running one too: bob did not stop it


async def test_an_operators_block_cancels_the_users_videos_in_every_server_and_a_servers_block_only_its_own(
        stacks: Stacks, scripted):
    running = scripted.gate("a long train journey")
    operator = stacks.fake.make_user(name="operator", roles=[stacks.fake.moderator_role])
    async with stacks.run(lambda device: scripted, operator_user_ids=operator.id) as stack:
        fake = stack.fake
        mod, bob = people(fake)
        first = await video(fake, "a long train journey")
        await first.wait_original(lambda m: m.content.startswith("Starting"))
        queued = await video(fake, "a short boat trip", user=bob)
        await queued.wait_original(lambda m: m.content.startswith("Queued"))
        unrelated = await command(fake, "videomod block", mod, user=fake.make_user(name="dave"))
        everywhere = await command(fake, "videomod operator block", operator, user=bob, duration="1d")
        await queued.wait_original(lambda m: m.content == BLOCKED.format(2))
        running.release(100)
        await first.wait_followup(has_video)

    assert "Their" not in unrelated.content
    assert plain(everywhere.content).startswith(f"Blocked in every server <@{bob.id}> until <t:")
    assert everywhere.content.endswith("Their 1 queued video is cancelled.")
    assert scripted.started == ["a long train journey"]


async def test_a_video_asked_for_as_its_user_is_blocked_is_cancelled_with_the_others(stacks: Stacks, scripted,
                                                                                      monkeypatch):
    async with stacks.run(lambda device: scripted) as stack:
        fake = stack.fake
        mod, bob = people(fake)
        checking, go_on, blocked = asyncio.Event(), asyncio.Event(), asyncio.Event()
        check_quota, block = stack.moderation.check_quota, stack.moderation.block

        async def held_quota(*args, **kwargs):  # bob's request is past the block check when the block is written
            checking.set()
            await go_on.wait()
            return await check_quota(*args, **kwargs)

        async def noted_block(*args, **kwargs):
            record = await block(*args, **kwargs)
            blocked.set()
            return record

        monkeypatch.setattr(stack.moderation, "check_quota", held_quota)
        monkeypatch.setattr(stack.moderation, "block", noted_block)
        late = await video(fake, "a short boat trip", user=bob)
        await checking.wait()
        answer = asyncio.create_task(command(fake, "videomod block", mod, user=bob, reason="spamming"))
        await blocked.wait()
        go_on.set()
        await late.wait_original(lambda m: m.content == BLOCKED.format(1))
        confirmation = await answer

    assert confirmation.content.endswith("Their 1 queued video is cancelled.")
    assert scripted.started == []
