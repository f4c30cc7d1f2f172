"""/videomod and /quota end to end: the real discord.py client on the fake Discord, the real service and database."""

import re
from datetime import timedelta

import pytest

from bot.moderation.rules import period_bounds
from storage import JobState
from tests.bot.conftest import Stacks
from tests.bot.helpers import audit_actions, autocomplete, command, people, plain, video_answer

pytestmark = pytest.mark.usefixtures("logged_errors")


async def test_a_moderator_lowers_a_users_quota_and_the_next_request_obeys_it(stacks: Stacks, scripted):
    async with stacks.run(lambda device: scripted) as stack:
        fake = stack.fake
        mod, bob = people(fake)
        limit = _option(fake.find_command("videomod", fake.guild), "quota", "set", "limit")
        answer = await command(fake, "videomod quota set", mod, user=bob, limit=1)
        first = await video_answer(fake, "a paper boat on a pond", bob)
        second = await video_answer(fake, "a paper plane over a city", bob)
        jobs = await stack.jobs()
        actions = await audit_actions(stack)

    assert answer.ephemeral and answer.content.startswith("Personal quota set: 1 video per day.")
    assert f"**Video quota of <@{bob.id}>**" in answer.content
    assert answer.extra["allowed_mentions"] == {"parse": []}  # names users without pinging them
    assert not first.ephemeral
    assert second.ephemeral and second.content.startswith(
        "You have reached your video quota: 1 of 1 video used today (UTC day); it resets <t:")
    assert [(job.state != JobState.REFUSED, job.refusal_reason) for job in jobs] == [(True, None), (False, "quota")]
    assert ("quota.set", True) in actions
    assert (limit["min_value"], limit["max_value"]) == (0, 10_000)  # Discord's client refuses other values


def _option(definition: dict | None, *path: str) -> dict:
    """A nested option of a synced command definition."""
    assert definition is not None
    for name in path:
        definition = next(o for o in definition["options"] if o["name"] == name)
    return definition


async def test_quota_shows_usage_what_is_left_and_the_reset_time(stacks: Stacks, scripted):
    async with stacks.run(lambda device: scripted, quota_default=5, quota_period="week") as stack:
        fake = stack.fake
        bob = fake.make_user(name="bob")
        await video_answer(fake, "a lighthouse in the fog", bob)
        answer = await command(fake, "quota", bob)
        _, resets = period_bounds("week", stacks.calendar())

    stamp = int(resets.timestamp())
    assert answer.ephemeral
    assert answer.content.splitlines() == [
        "**Your video quota**",
        f"1 of 5 videos used this week (UTC, from Monday); it resets <t:{stamp}:R> (<t:{stamp}:f>).",
        "4 left · limit from the bot's default",
    ]


async def test_a_non_moderator_is_refused_privately_and_the_attempt_is_audited(stacks: Stacks, scripted):
    async with stacks.run(lambda device: scripted) as stack:
        fake = stack.fake
        eve, bob = fake.make_user(name="eve"), fake.make_user(name="bob")
        answer = await command(fake, "videomod block", eve, user=bob, reason="I do not like him")
        still_works = await video_answer(fake, "a quiet harbour at dawn", bob)
        blocks = await stack.moderation.repo.active_blocks(guild_id=fake.guild.id)
        [row] = await stack.moderation.repo.latest_audit(guild_id=fake.guild.id)

    assert answer.ephemeral
    assert answer.content == "/videomod block is for moderators only (Manage Server permission or the moderator role)."
    assert blocks == [] and not still_works.ephemeral
    assert (row.actor_id, row.action, row.allowed) == (eve.id, "/videomod block", False)


async def test_a_block_stops_video_with_its_reason_and_end_and_an_expired_block_does_not(stacks: Stacks, scripted):
    async with stacks.run(lambda device: scripted) as stack:
        fake = stack.fake
        mod, bob = people(fake)
        confirmation = await command(fake, "videomod block", mod, user=bob, reason="spamming", duration="2h")
        refused = await video_answer(fake, "a windmill at sunset", bob)
        quota = await command(fake, "quota", bob)
        stacks.calendar.now += timedelta(hours=2, minutes=1)
        accepted = await video_answer(fake, "a windmill at sunrise", bob)
        [block] = await stack.moderation.repo.latest_audit(guild_id=fake.guild.id)

    assert confirmation.content.startswith(f"Blocked <@{bob.id}> until <t:")
    assert refused.ephemeral and refused.content.startswith("You are blocked from making videos until <t:")
    assert refused.content.endswith(":R>): spamming.")
    assert "⛔ You are blocked from making videos until" in quota.content
    assert not accepted.ephemeral
    assert (block.action, block.details["reason"]) == ("block", "spamming")


async def test_an_unreadable_block_duration_is_refused_naming_it_and_the_accepted_forms(stacks: Stacks, scripted):
    async with stacks.run(lambda device: scripted) as stack:
        fake = stack.fake
        mod, bob = people(fake)
        answer = await command(fake, "videomod block", mod, user=bob, duration="soon-ish")
        blocks = await stack.moderation.repo.active_blocks(guild_id=fake.guild.id)

    assert answer.ephemeral and blocks == []
    assert answer.content == ("“soon-ish” is not a duration: use a number and a unit such as 30m, 2h, 7d or 2w "
                              "(or combined, 1d12h), or 'permanent'.")


async def test_a_denylist_entry_added_by_command_refuses_the_next_matching_prompt(stacks: Stacks, scripted):
    prompt = "a herd of exploding kittens in a garden"
    async with stacks.run(lambda device: scripted) as stack:
        fake = stack.fake
        mod, bob = people(fake)
        before = await video_answer(fake, prompt, bob)
        added = await command(fake, "videomod denylist add", mod, pattern="Exploding  Kittens", category="violence")
        after = await video_answer(fake, prompt, bob)
        removed = await command(fake, "videomod denylist remove", mod, pattern="exploding kittens")
        again = await video_answer(fake, prompt, bob)
        actions = await audit_actions(stack)

    assert not before.ephemeral
    assert added.content == ("Added “exploding kittens” to this server's denylist under violence; it applies in this "
                             "server from the next prompt.")
    assert after.ephemeral and "violent or graphic content is not allowed" in after.content
    assert "kittens" not in after.content  # users are told the category, never the entry
    assert removed.content.startswith("Removed “exploding kittens” from this server's denylist")
    assert not again.ephemeral
    assert actions[:2] == [("denylist.remove", True), ("denylist.add", True)]


@pytest.mark.parametrize(
    ("pattern", "category", "says"),
    [
        ("sex*", "sexual", "prefix stems need at least 5 letters"),
        ("abc", "sexual", "entries need at least 4 letters"),
        ("exploding kittens", "gross", "category must be one of sexual, violence, hate, misinformation, real_person"),
        ("nude", "sexual", "“nude” is already on the shared denylist, which holds in every server."),
    ],
)
async def test_denylist_entries_that_would_misfire_are_refused_with_the_reason(stacks: Stacks, scripted, pattern,
                                                                               category, says):
    async with stacks.run(lambda device: scripted) as stack:
        fake = stack.fake
        mod, _ = people(fake)
        answer = await command(fake, "videomod denylist add", mod, pattern=pattern, category=category)
        actions = await audit_actions(stack)

    assert answer.ephemeral and says in plain(answer.content)
    assert actions == []


async def test_denylist_test_shows_moderators_the_entry_that_fires_and_the_allowlist_that_overrides(stacks: Stacks,
                                                                                                   scripted):
    async with stacks.run(lambda device: scripted) as stack:
        fake = stack.fake
        mod, _ = people(fake)
        fires = await command(fake, "videomod denylist test", mod, prompt="a nude statue in a museum")
        await command(fake, "videomod denylist add", mod, pattern="exploding kittens", category="violence")
        await command(fake, "videomod allowlist add", mod, phrase="exploding kittens cake")
        spared = await command(fake, "videomod denylist test", mod, prompt="an exploding kittens cake")
        shared = await command(fake, "videomod allowlist add", mod, phrase="nude statue")
        still = await command(fake, "videomod denylist test", mod, prompt="a nude statue in a museum")

    assert fires.content.splitlines()[1:] == ["⛔ Refused by the denylist: sexual content.",
                                              "Fires: “nude” (sexual); the refusal names “nude”"]
    assert spared.content.splitlines()[1] == "✅ Allowed: it would be generated."
    assert ("Let through by the allowlist: “exploding kittens” (violence) (allowlist: “exploding kittens cake” "
            "(allow))") in spared.content
    assert shared.content.endswith("it applies in this server (its own denylist entries only) from the next prompt.")
    assert still.content.splitlines()[1] == "⛔ Refused by the denylist: sexual content."  # shared: not weakened


async def test_denylist_test_that_many_entries_fire_on_fits_one_message_and_says_how_many_more_fire(stacks: Stacks,
                                                                                                    scripted):
    shared = "kaleidoscope + hippopotamus + marshmallow + accordion + trampoline + lighthouse + porcupine"
    extras = ["bicycle", "umbrella", "pineapple", "saxophone", "volcano", "penguin", "cactus", "giraffe", "tornado",
              "teapot", "compass", "lantern", "anchor", "harmonica", "snowman", "octopus", "pelican", "meadow"]
    prompt = " ".join(shared.split(" + ") + extras)
    async with stacks.run(lambda device: scripted) as stack:
        fake = stack.fake
        mod, _ = people(fake)
        for extra in extras:
            added = await command(fake, "videomod denylist add", mod, pattern=f"{extra} + {shared}",
                                  category="violence")
            assert added.content.startswith("Added"), added.content
        tested = await command(fake, "videomod denylist test", mod, prompt=prompt)

    lines = tested.content.splitlines()
    assert len(tested.content) <= 2000 and lines[1] == "⛔ Refused by the denylist: violent or graphic content."
    fired = re.fullmatch(r"Fires: (.*), … and (\d+) more; the refusal names “.*”", lines[2])
    assert fired is not None, lines[2]
    assert fired[1].count("(violence)") + int(fired[2]) == len(extras)


async def test_channel_deny_refuses_video_there_and_an_allow_list_limits_it_to_its_channels(stacks: Stacks, scripted):
    art = stacks.fake.add_channel("art")
    videos = stacks.fake.add_channel("videos")
    async with stacks.run(lambda device: scripted) as stack:
        fake = stack.fake
        mod, bob = people(fake)
        await command(fake, "videomod channel deny", mod, channel=art)
        in_art = await video_answer(fake, "a bowl of fruit", bob, channel=art)
        in_general = await video_answer(fake, "a bowl of pears", bob)
        listing = await command(fake, "videomod channel allow", mod, channel=videos)
        general_now = await video_answer(fake, "a bowl of plums", bob)
        in_videos = await video_answer(fake, "a bowl of cherries", bob, channel=videos)

    assert in_art.ephemeral and in_art.content == "Videos cannot be made in this channel."
    assert not in_general.ephemeral
    assert listing.content == (f"/video is now allowed in <#{videos.id}>.\n/video works only in: <#{videos.id}>\n"
                               f"Turned off in: <#{art.id}>")
    assert general_now.ephemeral
    assert general_now.content == f"Videos cannot be made in this channel; please use <#{videos.id}>."
    assert not in_videos.ephemeral


async def test_a_long_channel_list_fits_one_message_and_says_how_many_more_channels(stacks: Stacks, scripted):
    channels = [stacks.fake.add_channel(f"room-{n}") for n in range(90)]  # 90 mentions: 2,160 characters
    async with stacks.run(lambda device: scripted) as stack:
        fake = stack.fake
        mod, _ = people(fake)
        for channel in channels:
            await command(fake, "videomod channel deny", mod, channel=channel)
        listing = await command(fake, "videomod channel list", mod)

    head, off = listing.content.split("\n")
    shown = re.fullmatch(r"Turned off in: ((?:<#\d+>, )+)… and (\d+) more", off)
    assert head == "/video works in every channel except those turned off." and shown is not None, off
    assert shown[1].count("<#") + int(shown[2]) == len(channels) and len(listing.content) <= 2000


async def test_stats_and_audit_answer_moderators(stacks: Stacks, scripted):
    async with stacks.run(lambda device: scripted) as stack:
        fake = stack.fake
        mod, bob = people(fake)
        await video_answer(fake, "a train crossing a bridge", bob)
        await video_answer(fake, "a nude woman on a beach", bob)
        await command(fake, "videomod quota default", mod, limit=7)
        await command(fake, "videomod stats", fake.make_user(name="eve"))
        stats = await command(fake, "videomod stats", mod, period="week")
        audit = await command(fake, "videomod audit", mod, limit=5)

    lines = stats.content.splitlines()
    assert lines[0].startswith("**Usage, last week** (since <t:")
    assert lines[1].startswith("Requests: 2 · ") and "refused 1" in lines[1]
    assert lines[2] == "Refusals: content policy (sexual) 1"
    assert lines[4] == f"Top users: <@{bob.id}> 1 (0.0 s)"
    audit_lines = audit.content.splitlines()
    assert audit_lines[0] == "**Audit log**, newest first"
    assert "⛔ refused" in audit_lines[1] and "/videomod stats" in audit_lines[1]
    assert f"<@{mod.id}> quota.default · server" in audit_lines[2]
    assert audit_lines[2].endswith(" · server · limit: 7")  # details in words, not JSON



async def test_a_quota_for_the_everyone_role_and_a_blank_block_duration_are_refused_and_change_nothing(
        stacks: Stacks, scripted):
    async with stacks.run(lambda device: scripted) as stack:
        fake = stack.fake
        mod, bob = people(fake)
        everyone = await command(fake, "videomod quota default", mod, limit=1, role=fake.guild.everyone)
        blank = await command(fake, "videomod block", mod, user=bob, duration="   ")
        rows = await stack.service.moderation.repo.role_quotas(guild_id=fake.guild.id)
        blocked = await stack.service.moderation.active_block(bob.id, fake.guild.id)

    assert everyone.content == ("The role @everyone is every member of the server: leave the role out to set the "
                                "server's default quota.")
    assert blank.content.startswith("The duration is blank: use a number and a unit")
    assert rows == [] and blocked is None


async def test_someone_who_is_not_a_member_of_the_server_is_named_as_such(stacks: Stacks, scripted):
    async with stacks.run(lambda device: scripted) as stack:
        fake = stack.fake
        mod, _ = people(fake)
        gone = fake.make_user(name="gone")
        del fake.guild.members[gone.id]  # they left the server after the moderator picked them
        answer = await command(fake, "videomod quota set", mod, user=gone, limit=2)

    assert answer.ephemeral and answer.content == (f"<@{gone.id}> is not a member of this server (any more): pick one "
                                                   "of its members.")


async def test_a_bot_cannot_be_blocked_or_given_a_quota(stacks: Stacks, scripted):
    async with stacks.run(lambda device: scripted) as stack:
        fake = stack.fake
        mod, _ = people(fake)
        answers = [await command(fake, path, mod, user=fake.bot_user, **options) for path, options in
                   [("videomod block", {}), ("videomod quota set", {"limit": 5}), ("videomod quota reset", {})]]
        blocked = await stack.service.moderation.active_block(fake.bot_user.id, fake.guild.id)
        audited = await audit_actions(stack)

    assert [answer.content for answer in answers] == [
        f"<@{fake.bot_user.id}> is a bot: bots make no videos, so they need no block or quota."] * 3
    assert blocked is None and audited == []  # a bot's usage was "reset" ("Usage reset: …"), and audited


async def test_the_configured_moderator_role_is_enough_and_discord_hides_videomod_from_others(stacks: Stacks,
                                                                                               scripted):
    helpers = stacks.fake.add_role("Video helpers")  # no Manage Server
    async with stacks.run(lambda device: scripted, mod_role_id=helpers.id) as stack:
        fake = stack.fake
        helper, bob = fake.make_user(name="helper", roles=[helpers]), fake.make_user(name="bob")
        answer = await command(fake, "videomod quota set", helper, user=bob, limit=2)
        definition = fake.find_command("videomod", fake.guild)

    assert answer.content.startswith("Personal quota set: 2 videos per day.")
    assert definition is not None and int(definition["default_member_permissions"]) == 32  # Manage Server
    assert definition["contexts"] == [0]  # guilds only


async def test_pattern_suggestions_go_to_moderators_only(stacks: Stacks, scripted):
    async with stacks.run(lambda device: scripted) as stack:
        fake = stack.fake
        mod, eve = people(fake)[0], fake.make_user(name="eve")
        await command(fake, "videomod denylist add", mod, pattern="nudibranch parade", category="sexual")
        for_mod = await autocomplete(fake, "videomod denylist remove", mod, "pattern", pattern="nud")
        for_eve = await autocomplete(fake, "videomod denylist remove", eve, "pattern", pattern="nud")
        categories = await autocomplete(fake, "videomod denylist add", mod, "category", pattern="x", category="vi")

    assert for_mod == ["nudibranch parade"] and for_eve == []  # the server's own entries: the shared ones stay
    assert categories == ["violence"]
