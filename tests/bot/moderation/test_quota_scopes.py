"""Where a quota, a reset or a /cancel applies: a server's own default keeps the period it was set with when the bot's
changes, an operator's reset reaches the usage of direct messages, and /cancel without a job id picks the newest job
in the place it is used (a server, or direct messages), never one of elsewhere.

The real discord.py client against the fake Discord where the place matters; nothing sleeps.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from bot.moderation.rules import DEFAULT_KEY, QuotaDefault
from bot.ui.cogs import moderation_text as text
from storage import GLOBAL, JobState, RoleQuotaRecord
from tests.bot.conftest import Stacks
from tests.bot.helpers import has_video
from tests.bot.moderation import test_quota
from tests.bot.moderation.test_quota import GUILD, MOD, NOW
from tests.fakediscord import FakeDiscord, FakeUser, InteractionHandle

pytestmark = pytest.mark.usefixtures("logged_errors")
make = test_quota.make  # the service, its database and the rules on one clock the test moves

RUNNING = "a lighthouse beam sweeping over fog"
IN_SERVER = "a paper crane unfolding on a desk"
IN_DMS = "a snail crossing a mossy log"


async def queued(fake: FakeDiscord, prompt: str, user: FakeUser, *, dms: bool = False) -> InteractionHandle:
    """/video as `user` in the server's first channel (or in direct messages), answered "Queued"."""
    handle = await fake.slash("video", {"prompt": prompt, "aspect": "tiny"}, user=user,
                              channel=fake.dm_channel(user) if dms else None)
    await handle.wait_original(lambda m: m.content.startswith("Queued"))
    return handle


async def holding_the_gpu(fake: FakeDiscord) -> InteractionHandle:
    """Someone else's /video of RUNNING (gated by the test), started: the next jobs wait in the queue."""
    first = await fake.slash("video", {"prompt": RUNNING, "aspect": "tiny"})
    await first.wait_original(lambda m: m.content.startswith("Starting"))
    return first


async def cancel(fake: FakeDiscord, user: FakeUser, *, dms: bool = False, **options: object) -> str:
    """/cancel as `user` in the server (or in direct messages): its private answer."""
    handle = await fake.slash("cancel", dict(options), user=user, channel=fake.dm_channel(user) if dms else None)
    answer = await handle.wait_answer(lambda m: not m.loading)
    assert answer.ephemeral
    return answer.content


# --- a server's own default keeps its period -------------------------------------------------------------------------


async def test_a_servers_own_default_set_without_a_period_keeps_the_period_it_was_set_with(make):
    h = await make(limit=3, period="day")
    told = await h.moderation.set_default(MOD, 5, guild_id=GUILD)  # "Default quota …: 5 videos per day."
    await h.moderation.set_default(MOD, 10, guild_id=GLOBAL, period="week")  # the operator changes the bot's
    here = await h.moderation.default_quota(GUILD)
    status = await h.quota()

    assert (told.limit, told.period, told.own_period) == (5, "day", True)
    assert (here.limit, here.period, here.source) == (5, "day", "server")  # was 5 per week, silently
    assert (status.limit, status.period) == (5, "day")
    assert (await h.quota(guild=None)).period == "week"  # the bot's own default follows the operator


async def test_a_server_period_set_once_is_kept_when_its_limit_changes_and_role_defaults_share_it(make):
    h = await make(limit=3, period="day")
    await h.moderation.set_default(MOD, 5, guild_id=GUILD, period="month")
    await h.moderation.set_default(MOD, 7, guild_id=GUILD)  # no period: the server's month stays
    await h.moderation.set_default(MOD, 9, 77, guild_id=GUILD)  # a role's default: the server's period
    await h.moderation.set_default(MOD, 1, guild_id=GLOBAL, period="hour")
    status = await h.quota(roles=(77,))

    assert (await h.moderation.default_quota(GUILD)).period == "month"
    assert (status.limit, status.period, status.source) == (9, "month", "role")


def test_quota_show_says_when_a_servers_period_is_the_bots_and_changes_with_it():
    """A server default stored before periods were kept (a limit alone), or role defaults in a server with no default
    of its own, count per the bot's period: the list says so, not just "per week"."""
    role = RoleQuotaRecord(GUILD, 77, 9, MOD, NOW)
    legacy = text.defaults(QuotaDefault(5, "week", "server"), [])
    roles = text.defaults(QuotaDefault(3, "week", "bot"), [role])
    own = text.defaults(QuotaDefault(5, "day", "server", own_period=True), [role])
    plain = text.defaults(QuotaDefault(3, "week", "bot"), [])

    assert legacy.splitlines()[0] == ("**Quota defaults** (per week, the bot's period, which changes with it, calendar "
                                      "periods in UTC)")
    assert roles.splitlines()[0] == legacy.splitlines()[0]
    assert own.splitlines()[0] == "**Quota defaults** (per day, calendar periods in UTC)"
    assert plain.splitlines()[0] == "**Quota defaults** (per week, calendar periods in UTC)"


async def test_a_server_default_stored_as_a_limit_alone_follows_the_bots_period_and_a_new_set_keeps_one(make):
    h = await make(limit=3, period="day")
    await h.moderation.repo.set_setting(DEFAULT_KEY, 5, guild_id=GUILD, by=MOD)  # as stored before 2026-12-06
    before = await h.moderation.default_quota(GUILD)
    await h.moderation.set_default(MOD, 5, guild_id=GUILD)
    await h.moderation.set_default(MOD, 5, guild_id=GLOBAL, period="week")

    assert (before.period, before.own_period) == ("day", False)
    assert (await h.moderation.default_quota(GUILD)).period == "day"


# --- an operator's reset reaches direct messages ----------------------------------------------------------------


async def test_an_operators_reset_gives_a_fresh_allowance_in_direct_messages_and_leaves_servers_counts(make):
    h = await make(limit=1)
    await h.done(guild=None)
    await h.done()
    assert (await h.refused(guild=None)).reason == "quota"

    h.clock.now += timedelta(minutes=1)
    await h.moderation.reset_usage(MOD, 1, guild_id=GLOBAL)
    h.clock.now += timedelta(minutes=1)
    direct, server = await h.quota(guild=None), await h.quota()
    await h.done(guild=None)  # was refused: nothing reached the usage of direct messages

    assert (direct.used, direct.limit, direct.source) == (0, 1, "bot")
    assert (server.used, server.limit) == (1, 1)  # the server's own count stays: its moderators' to reset
    assert (await h.refused()).reason == "quota"


async def test_a_cap_across_every_server_is_no_personal_limit_in_direct_messages(make):
    h = await make(limit=2)
    await h.moderation.set_limit(MOD, 1, 5, guild_id=GLOBAL)  # a cap of 5, all places together
    direct = await h.quota(guild=None)

    assert (direct.limit, direct.source) == (2, "bot")  # the bot's default applies there, under the cap


async def test_operator_quota_reset_reaches_direct_messages_and_says_where(stacks: Stacks, scripted):
    """The answer says what was reset (the test above shows the fresh allowance; here every video's row is stamped
    after the calendar's time, so no reset forgives one)."""
    fake = stacks.fake
    operator, bob = fake.make_user(name="op"), fake.make_user(name="bob")
    async with stacks.run(lambda device: scripted, quota_default=1, operator_user_ids=operator.id) as stack:
        made = await fake.slash("video", {"prompt": IN_DMS, "aspect": "tiny"}, user=bob, channel=fake.dm_channel(bob))
        await made.wait_followup(has_video)
        answer = await (await fake.slash("videomod operator quota-reset", {"user": bob}, user=operator)).wait_answer()
        stored = await stack.moderation.repo.quota_override(bob.id, guild_id=GLOBAL)
        audit = await stack.moderation.repo.latest_audit(5, guild_id=GLOBAL)

    assert answer.content.startswith("Usage reset in direct messages: only videos from now on count (each server's "
                                     "own count stays).\n")  # was refused: "has no cap across every server"
    assert "In direct messages, video quota of" in answer.content
    assert stored is not None and stored.counted_from == stacks.calendar() and stored.max_videos is None
    assert [(row.action, row.target) for row in audit] == [("quota.reset", f"user:{bob.id}")]


# --- /cancel picks in the place it is used -------------------------------------------------------------------------


async def test_cancel_without_an_id_picks_the_newest_job_of_the_place_it_is_used_in(stacks: Stacks, scripted):
    gate = scripted.gate(RUNNING)
    async with stacks.run(lambda device: scripted) as stack:
        fake = stack.fake
        bob, first = fake.make_user(name="bob"), await holding_the_gpu(fake)
        await queued(fake, IN_SERVER, bob)  # job 2
        await queued(fake, IN_DMS, bob, dms=True)  # job 3, his newest
        in_server = await cancel(fake, bob)
        in_dms = await cancel(fake, bob, dms=True)
        gate.release(100)
        await first.wait_followup(has_video)
        states = [(await stack.job(job_id)).state for job_id in (2, 3)]

    assert in_server == "✖ Cancelled job #2."  # was job #3, the direct messages' one, from the server
    assert in_dms == "✖ Cancelled job #3."
    assert states == [JobState.CANCELLED, JobState.CANCELLED]


async def test_cancel_without_an_id_where_the_user_has_no_job_names_the_one_elsewhere_and_cancels_nothing(
    stacks: Stacks, scripted
):
    gate = scripted.gate(RUNNING)
    async with stacks.run(lambda device: scripted) as stack:
        fake = stack.fake
        bob, first = fake.make_user(name="bob"), await holding_the_gpu(fake)
        await queued(fake, IN_DMS, bob, dms=True)  # job 2
        from_server = await cancel(fake, bob)
        kept = (await stack.job(2)).state
        by_id = await cancel(fake, bob, job=2)  # an explicit id still reaches any of his own jobs
        gate.release(100)
        await first.wait_followup(has_video)
        state = (await stack.job(2)).state

    assert from_server == ("You have no queued or running videos in this server; your newest, job #2, is in direct "
                           "messages: to cancel it, use `/cancel job:2`.")
    assert kept == JobState.QUEUED
    assert by_id == "✖ Cancelled job #2 (in direct messages)." and state == JobState.CANCELLED


# --- odd values -----------------------------------------------------------------------------------------------------


async def test_cancel_takes_no_job_number_beyond_what_the_jobs_table_holds(stacks: Stacks, scripted):
    """jobs.id is a 32-bit INTEGER: on PostgreSQL a larger number in the query is an error (asyncpg: "value out of
    int32 range"), so `/cancel job:2147483648` failed as "Something went wrong"; Discord now refuses it as typed."""
    async with stacks.run(lambda device: scripted) as stack:
        fake = stack.fake
        with pytest.raises(ValueError, match=r"outside \[1, 2147483647\]"):
            await fake.slash("cancel", {"job": 2**31})
        largest = await cancel(fake, fake.default_user, job=2**31 - 1)

    assert largest == "There is no job #2147483647."


async def test_cancel_in_direct_messages_names_a_server_job_as_in_a_server_and_reaches_it_by_its_number(
    stacks: Stacks, scripted
):
    gate = scripted.gate(RUNNING)
    async with stacks.run(lambda device: scripted) as stack:
        fake = stack.fake
        bob, first = fake.make_user(name="bob"), await holding_the_gpu(fake)
        await queued(fake, IN_SERVER, bob)  # job 2, in the server
        from_dms = await cancel(fake, bob, dms=True)
        by_id = await cancel(fake, bob, dms=True, job=2)
        gate.release(100)
        await first.wait_followup(has_video)

    assert from_dms == ("You have no queued or running videos in direct messages; your newest, job #2, is in a "
                        "server: to cancel it, use `/cancel job:2`.")  # not "in another server": none is here
    assert by_id == "✖ Cancelled job #2 (in a server)."
