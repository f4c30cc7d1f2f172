"""/videomod as a stranger moderator tries it, end to end on the fake Discord: odd values in every option, undoing
what was never done, channels where /video cannot be typed, long lists and text that could ping or format. Each test
reads what the moderator sees (and, where a change is at stake, what the database keeps)."""

import pytest

from storage import ModerationRepository
from tests.bot.conftest import Stacks
from tests.bot.helpers import audit_actions, autocomplete, command, people, plain, recording_removals, video_answer
from tests.fakediscord import FakeChannel

pytestmark = pytest.mark.usefixtures("logged_errors")

CATEGORY, FORUM = 4, 15  # Discord's channel types where no command is typed


def odd_channel(stacks: Stacks, name: str, kind: int) -> FakeChannel:
    """A channel of the test guild of another type than text (added before the bot connects)."""
    channel = stacks.fake.add_channel(name)
    channel.type = kind
    return channel


# --- quotas --------------------------------------------------------------------------------------------------------


async def test_a_quota_of_zero_and_a_moderators_own_quota_are_set_and_shown(stacks: Stacks, scripted):
    async with stacks.run(lambda device: scripted) as stack:
        fake = stack.fake
        mod, bob = people(fake)
        zero = await command(fake, "videomod quota set", mod, user=bob, limit=0)
        own = await command(fake, "videomod quota set", mod, user=mod, limit=3)
        refused = await video_answer(fake, "a paper boat on a pond", bob)

    assert zero.content.startswith("Personal quota set: 0 videos per day.\n")
    assert "0 of 0 videos used today" in zero.content
    assert own.content.startswith("Personal quota set: 3 videos per day.\n")
    assert refused.ephemeral and refused.content.startswith("Your video quota is 0 per day")


async def test_clearing_defaults_that_were_never_set_says_so_and_audits_nothing(stacks: Stacks, scripted):
    async with stacks.run(lambda device: scripted) as stack:
        fake = stack.fake
        mod, _ = people(fake)
        server = await command(fake, "videomod quota default-clear", mod)
        by_role = await command(fake, "videomod quota default-clear", mod, role=fake.moderator_role)
        everyone = await command(fake, "videomod quota default-clear", mod, role=fake.guild.everyone)
        presets = await command(fake, "videomod defaults reset", mod)
        actions = await audit_actions(stack)

    assert server.content == "This server had no default of its own; the bot's applies: 20 videos per day."
    assert by_role.content.endswith("> had no default quota.")
    assert everyone.content == ("The role @everyone is every member of the server: leave the role out to clear the "
                                "server's default quota.")  # was "<@&server> had no default quota." (@@everyone)
    assert presets.content.startswith("This server had no defaults of its own.\n")
    assert actions == []


async def test_a_default_quota_for_everyone_set_before_it_was_refused_can_still_be_cleared(stacks: Stacks, scripted):
    async with stacks.run(lambda device: scripted) as stack:
        fake = stack.fake
        mod, bob = people(fake)
        # written as `quota default role=@everyone` did before 2026-12-04: it holds for every member
        await stack.moderation.set_default(mod.id, 0, fake.guild.id, guild_id=fake.guild.id)
        held = await video_answer(fake, "a red kite", bob)
        cleared = await command(fake, "videomod quota default-clear", mod, role=fake.guild.everyone)
        again = await command(fake, "videomod quota default-clear", mod, role=fake.guild.everyone)
        made = await video_answer(fake, "a red kite", bob)

    assert held.ephemeral and held.content.startswith("Your video quota is 0 per day")
    assert cleared.content == "The default quota set for @everyone (every member) was removed."
    assert again.content.startswith("The role @everyone is every member of the server")
    assert not made.ephemeral


async def test_a_server_period_without_a_role_and_a_role_with_a_period_are_told_apart(stacks: Stacks, scripted):
    async with stacks.run(lambda device: scripted) as stack:
        fake = stack.fake
        mod, _ = people(fake)
        hourly = await command(fake, "videomod quota default", mod, limit=0, period="hour")
        both = await command(fake, "videomod quota default", mod, limit=2, role=fake.moderator_role, period="week")
        shown = await command(fake, "videomod quota show", mod)

    assert hourly.content == "Default quota for everyone without a personal or role quota: 0 videos per hour."
    assert both.content == "The quota period (week) is the whole server's, and roles share it: set it without a role."
    assert shown.content.splitlines() == ["**Quota defaults** (per hour, calendar periods in UTC)",
                                          "Server default: 0 videos (this server's own)"]


async def test_a_hundred_role_defaults_fit_one_message(stacks: Stacks, scripted):
    roles = [stacks.fake.add_role(f"a role with a rather long name {i}") for i in range(120)]
    async with stacks.run(lambda device: scripted) as stack:
        fake = stack.fake
        mod, _ = people(fake)
        for i, role in enumerate(roles):
            await command(fake, "videomod quota default", mod, limit=i, role=role)
        shown = await command(fake, "videomod quota show", mod)

    assert len(shown.content) <= 2000 and shown.content.endswith(" more")


async def test_a_quota_then_a_block_then_a_reset_shows_the_block_beside_the_fresh_allowance(stacks: Stacks,
                                                                                            scripted):
    async with stacks.run(lambda device: scripted) as stack:
        fake = stack.fake
        mod, bob = people(fake)
        await command(fake, "videomod quota set", mod, user=bob, limit=1)
        await command(fake, "videomod block", mod, user=bob, reason="spam")
        reset = await command(fake, "videomod quota reset", mod, user=bob)
        refused = await video_answer(fake, "a red kite", bob)

    assert reset.content.startswith("Usage reset: only videos from now on count.\n")
    assert reset.content.endswith("⛔ They are blocked from making videos: spam. A moderator can lift the block.")
    assert refused.content.startswith("You are blocked from making videos: spam.")


# --- blocks --------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("duration", "says"), [
    ("0", "“0” is not a duration: use a number and a unit"),
    ("0m", "A block of “0m” is out of range: it must be longer than 0 and at most 3650 days"),
    ("-1h", "“-1h” is not a duration"),
    ("1.5h", "“1.5h” is not a duration"),
    ("99999999999999999999999d", "A block of “99999999999999999999999d” is out of range"),
    ("permanently", "“permanently” is not a duration"),
])
async def test_odd_block_durations_are_refused_in_one_line_and_block_nobody(stacks: Stacks, scripted, duration,
                                                                            says):
    async with stacks.run(lambda device: scripted) as stack:
        fake = stack.fake
        mod, bob = people(fake)
        answer = await command(fake, "videomod block", mod, user=bob, duration=duration)
        blocks = await stack.moderation.repo.active_blocks(guild_id=fake.guild.id)

    assert plain(answer.content).startswith(says) and "\n" not in answer.content
    assert blocks == []


@pytest.mark.parametrize("duration", ["２h", " 2 h ", "2hours"])
async def test_durations_with_wide_digits_or_spaces_read_as_two_hours(stacks: Stacks, scripted, duration):
    async with stacks.run(lambda device: scripted) as stack:
        fake = stack.fake
        mod, bob = people(fake)
        answer = await command(fake, "videomod block", mod, user=bob, duration=duration)
        [block] = await stack.moderation.repo.active_blocks(guild_id=fake.guild.id)

    assert plain(answer.content).startswith(f"Blocked <@{bob.id}> until <t:")
    assert block.until is not None and (block.until - stacks.calendar()).total_seconds() == 7200


async def test_a_reason_with_mentions_markdown_and_direction_marks_pings_nobody_and_shows_as_typed(stacks: Stacks,
                                                                                                  scripted):
    async with stacks.run(lambda device: scripted) as stack:
        fake = stack.fake
        mod, bob = people(fake)
        reason = "@everyone <@1234> **bold** ||spoiler|| \u202eevil\u202c"
        answer = await command(fake, "videomod block", mod, user=bob, reason=reason)
        refused = await video_answer(fake, "a red kite", bob)

    assert answer.content.endswith("Reason shown to them: @\u200beveryone \\<@1234> \\*\\*bold\\*\\* "
                                   "\\|\\|spoiler\\|\\| evil.")
    assert answer.extra["allowed_mentions"] == {"parse": []}
    assert "\u202e" not in refused.content and "@\u200beveryone" in refused.content


async def test_a_moderator_may_block_themselves_and_unblock_someone_never_blocked(stacks: Stacks, scripted):
    async with stacks.run(lambda device: scripted) as stack:
        fake = stack.fake
        mod, bob = people(fake)
        own = await command(fake, "videomod block", mod, user=mod, reason="testing")
        never = await command(fake, "videomod unblock", mod, user=bob)
        lifted = await command(fake, "videomod unblock", mod, user=mod)

    assert own.content == f"Blocked <@{mod.id}> permanently. Reason shown to them: testing."
    assert never.content == f"<@{bob.id}> was not blocked here."
    assert lifted.content == f"Unblocked <@{mod.id}>."


async def test_forty_blocks_with_long_escaped_reasons_fit_one_message(stacks: Stacks, scripted):
    async with stacks.run(lambda device: scripted) as stack:
        fake = stack.fake
        mod, _ = people(fake)
        for i in range(40):
            await command(fake, "videomod block", mod, user=fake.make_user(name=f"u{i}"), reason="*_~`|>#[]()<@" * 23)
        listed = await command(fake, "videomod blocks", mod)
        audit = await command(fake, "videomod audit", mod, limit=25)

    assert len(listed.content) <= 2000 and listed.content.startswith("**Blocked users** (40)")
    assert listed.content.endswith(" more")
    assert len(audit.content) <= 2000 and audit.content.endswith(" more")


async def test_a_videomod_command_sent_from_a_direct_message_is_refused_privately(stacks: Stacks, scripted):
    async with stacks.run(lambda device: scripted) as stack:
        fake = stack.fake
        mod, _ = people(fake)
        handle = await fake.slash("videomod blocks", {}, user=mod, channel=fake.dm_channel(mod))
        answer = await handle.wait_answer()

    assert answer.ephemeral
    assert answer.content == "/videomod blocks is for moderators only (Manage Server permission or the moderator role)."


# --- channels ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("verb", ["allow", "deny"])
async def test_a_rule_for_a_category_is_refused_naming_it_and_video_still_works(stacks: Stacks, scripted, verb):
    odd = odd_channel(stacks, "a category", CATEGORY)
    async with stacks.run(lambda device: scripted) as stack:
        fake = stack.fake
        mod, bob = people(fake)
        answer = await command(fake, f"videomod channel {verb}", mod, channel=odd)
        made = await video_answer(fake, "a red kite", bob)
        rules = await stack.moderation.repo.channel_rules([fake.guild.id])

    assert answer.content == (f"<#{odd.id}> is a category, where /video cannot be used, and the channels in it do not "
                              "follow its rules: allow or turn off the channels themselves.")
    assert rules == [] and not made.ephemeral


async def test_a_forum_turned_off_turns_off_its_posts(stacks: Stacks, scripted):
    forum = odd_channel(stacks, "a forum", FORUM)
    post = stacks.fake.add_thread(forum, "show your kites")  # a forum's post is a thread in it
    async with stacks.run(lambda device: scripted) as stack:
        fake = stack.fake
        mod, bob = people(fake)
        answer = await command(fake, "videomod channel deny", mod, channel=forum)
        made = await video_answer(fake, "a red kite", bob, channel=post)

    assert answer.content.startswith(f"/video is now turned off in <#{forum.id}>"), answer.content
    assert made.ephemeral and made.content.startswith("Videos cannot be made in this channel")


async def test_a_thread_follows_its_channels_rule_unless_it_has_its_own(stacks: Stacks, scripted):
    videos = stacks.fake.add_channel("videos")
    off_topic = stacks.fake.add_thread(stacks.fake.channel, "off topic")  # in #general
    on_topic = stacks.fake.add_thread(videos, "kites")
    async with stacks.run(lambda device: scripted) as stack:
        fake = stack.fake
        mod, bob = people(fake)
        await command(fake, "videomod channel allow", mod, channel=videos)  # then only #videos has /video
        in_general = await video_answer(fake, "a red kite", bob, channel=off_topic)  # outside the allowed ones
        in_videos = await video_answer(fake, "a red kite", bob, channel=on_topic)
        await command(fake, "videomod channel deny", mod, channel=on_topic)  # a thread's own rule comes first
        denied_thread = await video_answer(fake, "a red kite", bob, channel=on_topic)
        await command(fake, "videomod channel allow", mod, channel=off_topic)
        allowed_thread = await video_answer(fake, "a red kite", bob, channel=off_topic)

    assert in_general.ephemeral and in_general.content.startswith("Videos cannot be made in this channel; please use "
                                                                  f"<#{videos.id}>")
    assert not in_videos.ephemeral and not allowed_thread.ephemeral, allowed_thread.content
    assert denied_thread.ephemeral and denied_thread.content.startswith("Videos cannot be made in this channel")


async def test_a_channel_deleted_while_the_bot_was_down_loses_its_rule_when_its_server_arrives(stacks: Stacks,
                                                                                                  scripted,
                                                                                                  monkeypatch):
    videos, art = stacks.fake.add_channel("videos"), stacks.fake.add_channel("art")
    sketches = stacks.fake.add_thread(art, "sketches")
    async with stacks.run(lambda device: scripted) as stack:
        mod, bob = people(stack.fake)
        await command(stack.fake, "videomod channel allow", mod, channel=videos)
        await command(stack.fake, "videomod channel deny", mod, channel=art)
        await command(stack.fake, "videomod channel deny", mod, channel=sketches)
    await stacks.fake.delete_channel(videos, away=True)  # no event tells the bot: it is not running
    stacks.fake.guild.channels.remove(sketches)  # archived meanwhile: the next start's server lists it no more
    forgotten = recording_removals(stacks.fake, monkeypatch, ModerationRepository, "remove_channel_rule")
    async with stacks.run(lambda device: scripted) as stack:
        await stack.fake.wait_for(lambda: forgotten, what="the deleted channel's rule to be forgotten")
        listed = await command(stack.fake, "videomod channel list", mod)
        made = await video_answer(stack.fake, "a red kite", bob)  # in #general: every channel but #art again

    assert forgotten == [videos.id]  # #art's rule stays, and the archived thread's: Discord still has both
    assert listed.content == ("/video works in every channel except those turned off.\nTurned off in: "
                              f"<#{art.id}>, <#{sketches.id}>")
    assert not made.ephemeral


async def test_resetting_a_channel_without_a_rule_says_so_and_audits_nothing(stacks: Stacks, scripted):
    async with stacks.run(lambda device: scripted) as stack:
        fake = stack.fake
        mod, _ = people(fake)
        answer = await command(fake, "videomod channel reset", mod, channel=fake.channel)
        actions = await audit_actions(stack)

    assert answer.content == f"<#{fake.channel.id}> had no rule.\n/video works in every channel."
    assert actions == []


@pytest.mark.parametrize("kind", ["channel", "thread"])
async def test_the_only_allowed_channel_deleted_its_rule_goes_and_video_works_again(stacks: Stacks, scripted,
                                                                                   monkeypatch, kind):
    videos = stacks.fake.add_channel("videos")
    if kind == "thread":  # THREAD_DELETE, an event of its own
        videos = stacks.fake.add_thread(videos, "kites")
    async with stacks.run(lambda device: scripted) as stack:
        fake = stack.fake
        mod, bob = people(fake)
        await command(fake, "videomod channel allow", mod, channel=videos)
        forgotten: list[int] = []
        remove = stack.moderation.repo.remove_channel_rule

        async def removing(channel_id: int, *, guild_id: int) -> bool:
            removed = await remove(channel_id, guild_id=guild_id)
            forgotten.append(channel_id)
            fake.notify()
            return removed

        monkeypatch.setattr(stack.moderation.repo, "remove_channel_rule", removing)
        await fake.delete_channel(videos)
        await fake.wait_for(lambda: forgotten, what="the deleted channel's rule to be forgotten")
        listed = await command(fake, "videomod channel list", mod)
        made = await video_answer(fake, "a red kite", bob)
        actions = await audit_actions(stack)

    assert forgotten == [videos.id]
    assert listed.content == "/video works in every channel."
    assert not made.ephemeral
    assert actions[0] == ("channel.reset", True)


# --- the denylist and allowlist ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("pattern", "says"), [
    ("*", "Not added: entry '\\*': every part needs at least one letter or digit"),
    ("**", "Not added: entry '\\*\\*': every part needs at least one letter or digit"),
    ("+", "Not added: entry '+': every part needs at least one letter or digit"),
    ("a +", "Not added: entry 'a +': + cannot be in an entry"),
    ("kitten + ", "Not added: entry 'kitten +': + cannot be in an entry"),
    ("a", "Not added: entry 'a': entries need at least 4 letters"),
    ("a + b", "Not added: entry 'a + b': entries need at least 4 letters"),
    ("@everyone", "Not added: entry '@\u200beveryone': @ cannot be in an entry"),  # discord.py's escape: no ping
    ("<@123>", "Not added: entry '\\<@123>': < > @ cannot be in an entry"),
    ("kitten|puppy", "Not added: entry 'kitten\\|puppy': \\| cannot be in an entry"),
    ("n\u200bude", "“nude” is already on the shared denylist, which holds in every server."),
    ("猫", "Not added: entry '猫': every part needs at least one letter or digit (a–z, 0–9: the gate reads prompts "
          "as English)."),  # was "at least one letter", as if 猫 were none
])
async def test_malformed_or_shared_patterns_are_refused_in_one_line_and_add_nothing(stacks: Stacks, scripted,
                                                                                    pattern, says):
    async with stacks.run(lambda device: scripted) as stack:
        fake = stack.fake
        mod, _ = people(fake)
        answer = await command(fake, "videomod denylist add", mod, pattern=pattern, category="violence")
        own = stack.bot.service.gate.own_entries(fake.guild.id)

    assert answer.content.startswith(says), answer.content
    assert "\n" not in answer.content and len(answer.content) <= 400
    assert not own


async def test_the_same_pattern_in_another_case_or_spacing_is_one_entry_and_removes_as_typed(stacks: Stacks,
                                                                                            scripted):
    async with stacks.run(lambda device: scripted) as stack:
        fake = stack.fake
        mod, _ = people(fake)
        first = await command(fake, "videomod denylist add", mod, pattern="Exploding  Kittens", category="violence")
        again = await command(fake, "videomod denylist add", mod, pattern=" EXPLODING KITTENS ", category="violence")
        wide = await command(fake, "videomod denylist add", mod, pattern="ｅｘｐｌｏｄｉｎｇ kittens", category="hate")
        removed = await command(fake, "videomod denylist remove", mod, pattern="EXPLODING   kittens")
        missing = await command(fake, "videomod denylist remove", mod, pattern="never there")
        own = stack.bot.service.gate.own_entries(fake.guild.id)

    assert first.content.startswith("Added “exploding kittens” to this server's denylist under violence;")
    assert again.content == wide.content == "“exploding kittens” is already on this server's denylist."
    assert removed.content.startswith("Removed “EXPLODING kittens” from this server's denylist;")
    assert missing.content == ("This server's denylist has no entry “never there”; `/videomod denylist list` shows "
                               "them all.")
    assert not own


async def test_an_odd_category_is_refused_naming_the_categories_within_a_short_line(stacks: Stacks, scripted):
    async with stacks.run(lambda device: scripted) as stack:
        fake = stack.fake
        mod, _ = people(fake)
        spaced = await command(fake, "videomod denylist add", mod, pattern="odd thing", category="real person")
        huge = await command(fake, "videomod denylist add", mod, pattern="odd thing", category="x" * 3000)

    assert spaced.content == ("Not added: entry 'odd thing': category must be one of sexual, violence, hate, "
                              r"misinformation, real\_person, not 'real person'.")
    assert huge.content.startswith("Not added: entry 'odd thing': category must be one of sexual, violence")
    assert len(huge.content) < 450


async def test_a_long_pattern_is_offered_for_removal_only_whole(stacks: Stacks, scripted):
    long = "longword " * 16 + "tailend"  # 151 characters: more than a choice's 100
    async with stacks.run(lambda device: scripted) as stack:
        fake = stack.fake
        mod, _ = people(fake)
        await command(fake, "videomod denylist add", mod, pattern=long, category="violence")
        await command(fake, "videomod denylist add", mod, pattern="longword parade", category="violence")
        offered = await autocomplete(fake, "videomod denylist remove", mod, "pattern", pattern="longword")
        removed = [await command(fake, "videomod denylist remove", mod, pattern=choice) for choice in offered]
        whole = await command(fake, "videomod denylist remove", mod, pattern=long)

    assert offered == ["longword parade"]  # a clipped value would name no entry
    assert [answer.content.startswith("Removed") for answer in removed] == [True]
    assert whole.content.startswith("Removed “longword longword")


async def test_a_prompt_test_with_mentions_and_markdown_shows_them_as_typed(stacks: Stacks, scripted):
    async with stacks.run(lambda device: scripted) as stack:
        mod, _ = people(stack.fake)
        answer = await command(stack.fake, "videomod denylist test", mod, prompt="@everyone <@123> hi **bold**")

    assert answer.content.splitlines() == ["Prompt: “@\u200beveryone \\<@123> hi \\*\\*bold\\*\\*”",
                                           "✅ Allowed: it would be generated.", "No denylist entry fires."]
    assert answer.extra["allowed_mentions"] == {"parse": []}


async def test_an_allowlist_phrase_added_twice_in_another_case_is_one_and_a_missing_one_is_named(stacks: Stacks,
                                                                                                scripted):
    async with stacks.run(lambda device: scripted) as stack:
        fake = stack.fake
        mod, _ = people(fake)
        first = await command(fake, "videomod allowlist add", mod, phrase="a perfectly harmless phrase")
        again = await command(fake, "videomod allowlist add", mod, phrase="A perfectly  HARMLESS phrase")
        missing = await command(fake, "videomod allowlist remove", mod, phrase="not there")

    assert first.content.startswith("Added “a perfectly harmless phrase” to this server's allowlist;")
    assert again.content == "“a perfectly harmless phrase” is already on this server's allowlist."
    assert missing.content.startswith("This server's allowlist has no entry “not there”;")


async def test_a_long_denylist_is_sent_as_files_under_one_short_line_each(stacks: Stacks, scripted):
    async with stacks.run(lambda device: scripted) as stack:
        mod, _ = people(stack.fake)
        listed = await command(stack.fake, "videomod denylist list", mod)

    assert len(listed.content) <= 2000 and listed.content.endswith("The full lists are attached.")
    assert [a.filename for a in listed.attachments] == ["denylist.txt", "denylist-this-server.txt"]


# --- presets, stats ------------------------------------------------------------------------------------------------


async def test_a_negative_preset_with_mentions_is_shown_inert_and_an_odd_guidance_as_given(stacks: Stacks, scripted):
    async with stacks.run(lambda device: scripted) as stack:
        mod, _ = people(stack.fake)
        answer = await command(stack.fake, "videomod defaults set", mod, negative="@everyone <@123>",
                               guidance=7.123456789)

    assert "• negative: @\u200beveryone \\<@123> (the bot's: none)" in answer.content
    assert "• guidance: 7.123456789 (the bot's: 9.0)" in answer.content


@pytest.mark.parametrize("period", ["hour", "day", "week", "month", "all"])
async def test_stats_of_an_empty_server_answer_for_every_period(stacks: Stacks, scripted, period):
    async with stacks.run(lambda device: scripted) as stack:
        mod, _ = people(stack.fake)
        answer = await command(stack.fake, "videomod stats", mod, period=period)

    assert answer.content.splitlines()[1:] == ["Requests: 0", "GPU time: 0.0 s"]
