"""Quotas through the real service and database: counting from the jobs log, refunds, limits, periods, order.

The service, the jobs repository and the moderation state share one clock the test moves by hand; the pipeline
finishes at once unless the test holds it, or fails for the prompts the test names.
"""

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from bot.errors import Refused, SettingsError
from bot.jobs.events import Submitted
from bot.jobs.service import VideoService
from bot.moderation.policy import PolicyGate
from bot.moderation.rules import Moderation, QuotaStatus, period_bounds
from bot.settings import load_settings
from storage import GLOBAL, JobState, ModerationRepository, Repository
from tests.bot.helpers import Events, FakePipeline, requester, spec
from tests.clocks import Clock

NOW = datetime(2026, 3, 4, 22, 30, tzinfo=UTC)  # a Wednesday
MIDNIGHT = datetime(2026, 3, 5, tzinfo=UTC)
MOD = 900
PROMPT = "A panda eating bamboo on a rock."
GUILD, OTHER = 600, 601  # the server of tests.bot.helpers.requester, and another one


@dataclass
class Harness:
    service: VideoService
    repo: Repository
    moderation: Moderation
    pipeline: FakePipeline
    events: Events
    clock: Clock

    async def submit(self, user: int = 1, prompt: str = PROMPT, roles: tuple[int, ...] = (),
                     channel: int = 500, guild: int | None = GUILD) -> Submitted:
        asker = requester(user, channel_id=channel, role_ids=roles, guild_id=guild)
        return await self.service.submit(asker, spec(prompt, steps=2))

    async def refused(self, user: int = 1, prompt: str = PROMPT, **kwargs: Any) -> Refused:
        with pytest.raises(Refused) as caught:
            await self.submit(user, prompt, **kwargs)
        return caught.value

    async def done(self, user: int = 1, prompt: str = PROMPT, roles: tuple[int, ...] = (),
                   guild: int | None = GUILD) -> None:
        job = (await self.submit(user, prompt, roles, guild=guild)).job
        await self.events.wait("failed" if prompt in self.pipeline.fail else "done", job.id)

    async def quota(self, user: int = 1, roles: tuple[int, ...] = (), guild: int | None = GUILD) -> QuotaStatus:
        return await self.moderation.quota(user, roles, guild)


@pytest.fixture
async def make(make_service: Any, database: Any) -> Any:
    """Start a service with moderation on the test's database, the jobs and the rules on one clock."""

    async def start(limit: int = 3, period: str = "day", per_user_cap: int = 10) -> Harness:
        clock = Clock(NOW)
        moderation = Moderation(ModerationRepository(database.engine(), clock=clock), default_limit=limit,
                                period=period, clock=clock)
        repo = database.repo(clock=clock)
        h = await make_service(repo=repo, per_user_cap=per_user_cap, clock=clock, moderation=moderation,
                               gate=PolicyGate(is_english=lambda text: True))  # the shipped denylist; all English
        return Harness(h.service, repo, moderation, h.pipeline, h.events, clock)

    return start


async def test_the_request_after_the_limit_is_refused_naming_used_limit_and_the_utc_reset(make):
    h = await make(limit=3)
    for _ in range(3):
        await h.done()
    refused = await h.refused()
    stamp = int(MIDNIGHT.timestamp())
    assert refused.reason == "quota"
    assert refused.message == (f"You have reached your video quota: 3 of 3 videos used today (UTC day); it resets "
                               f"<t:{stamp}:R> (<t:{stamp}:f>).")
    job = await h.repo.get_job(refused.job_id)
    assert (job.state, job.refusal_reason) == (JobState.REFUSED, "quota")
    assert (await h.quota()).used == 3  # the refused request did not count
    await h.done(user=2)  # another user's allowance is their own


async def test_failed_jobs_and_jobs_cancelled_before_running_are_refunded(make):
    h = await make(limit=2)
    h.pipeline.fail.add("A volcano erupting at night.")
    await h.done(prompt="A volcano erupting at night.")
    h.pipeline.hold.clear()
    first = await h.submit(prompt="A slow river in autumn.")
    await h.events.wait("started", first.job.id)
    queued = await h.submit(prompt="A fast river in spring.")
    await h.service.cancel(1, queued.job.id)
    assert (await h.quota()).used == 1  # the failed and the never-run jobs are free; the running one counts

    await h.service.cancel(1, first.job.id)  # cancelled while rendering: its GPU time was spent
    await h.events.wait("cancelled", first.job.id)
    assert (await h.quota()).used == 1


async def test_refused_requests_never_use_quota(make):
    h = await make(limit=1)
    for _ in range(3):
        assert (await h.refused(prompt="A nude woman on a beach.")).reason == "denylist"
    assert (await h.quota()).used == 0
    await h.done()


async def test_a_personal_limit_beats_role_defaults_and_the_best_role_beats_the_server_default(make):
    h = await make(limit=3)
    await h.moderation.set_default(MOD, 5, role_id=11, guild_id=GUILD)
    await h.moderation.set_default(MOD, 8, role_id=12, guild_id=GUILD)
    both = await h.quota(roles=(11, 12))
    assert (both.limit, both.source, both.role_id) == (8, "role", 12)
    assert (await h.quota(roles=(99,))).limit == 3

    await h.moderation.set_limit(MOD, 1, 1, guild_id=GUILD)
    personal = await h.quota(roles=(11, 12))
    assert (personal.limit, personal.source) == (1, "personal")
    await h.done(roles=(11, 12))
    assert (await h.refused(roles=(11, 12))).reason == "quota"

    await h.moderation.clear_limit(MOD, 1, guild_id=GUILD)
    await h.done(roles=(11, 12))  # the role default applies again


async def test_a_moderator_default_replaces_quota_default_and_zero_allows_none(make):
    h = await make(limit=3)
    await h.moderation.set_default(MOD, 0, guild_id=GUILD)
    refused = await h.refused()
    assert refused.reason == "quota" and "quota is 0 per day" in refused.message


async def test_the_allowance_comes_back_when_the_utc_day_turns(make):
    h = await make(limit=2)
    await h.done()
    await h.done()
    h.clock.now = MIDNIGHT - timedelta(microseconds=1)
    assert (await h.refused()).reason == "quota"
    h.clock.now = MIDNIGHT
    status = await h.quota()
    assert (status.used, status.remaining, status.resets_at) == (0, 2, MIDNIGHT + timedelta(days=1))
    await h.done()


async def test_a_usage_reset_forgives_this_periods_videos_only(make):
    h = await make(limit=1)
    await h.done()
    h.clock.now += timedelta(minutes=1)
    await h.moderation.reset_usage(MOD, 1, guild_id=GUILD)
    h.clock.now += timedelta(minutes=1)
    await h.done()
    assert (await h.refused()).reason == "quota"


async def test_checks_run_block_then_policy_then_quota_then_caps(make):
    h = await make(limit=1, per_user_cap=1)
    h.pipeline.hold.clear()
    await h.submit()  # uses the whole quota and the whole per-user cap
    assert (await h.refused(prompt="A nude woman on a beach.")).reason == "denylist"
    assert (await h.refused()).reason == "quota"
    await h.moderation.block(MOD, 1, "spamming", "2h", guild_id=GUILD)
    assert (await h.refused(prompt="A nude woman on a beach.")).reason == "blocked"


async def test_a_block_names_its_reason_and_end_and_lapses_by_itself(make):
    h = await make()
    block = await h.moderation.block(MOD, 1, "spamming the channel", "90m", guild_id=GUILD)
    assert block.until == NOW + timedelta(minutes=90)
    refused = await h.refused()
    stamp = int(block.until.timestamp())
    assert refused.reason == "blocked"
    assert refused.message == (f"You are blocked from making videos until <t:{stamp}:f> (<t:{stamp}:R>): "
                               "spamming the channel.")
    h.clock.now = block.until
    await h.done()


async def test_a_permanent_block_holds_until_lifted(make):
    h = await make()
    await h.moderation.block(MOD, 1, None, "permanent", guild_id=GUILD)
    h.clock.now += timedelta(days=3000)
    assert "A moderator can lift the block" in (await h.refused()).message
    assert await h.moderation.unblock(MOD, 1, guild_id=GUILD) is True
    await h.done()


async def test_channel_rules_refuse_denied_channels_and_everything_outside_an_allow_list(make):
    h = await make()
    await h.moderation.set_channel(MOD, 501, False, guild_id=GUILD)
    assert (await h.refused(channel=501)).reason == "channel"
    await h.done()  # channel 500 has no rule and there is no allow-list
    await h.moderation.set_channel(MOD, 502, True, guild_id=GUILD)
    refused = await h.refused(channel=500)
    assert refused.reason == "channel" and "<#502>" in refused.message
    await h.submit(channel=502)


async def test_one_user_in_two_servers_has_each_servers_quota_and_each_servers_moderators_decide(make):
    h = await make(limit=1)
    await h.moderation.set_limit(MOD, 1, 2, guild_id=OTHER)
    await h.done()
    assert (await h.refused()).reason == "quota"
    await h.done(guild=OTHER)  # the other server counts its own videos, against its own limit
    await h.done(guild=OTHER)
    assert (await h.refused(guild=OTHER)).reason == "quota"
    h.clock.now += timedelta(minutes=1)
    await h.moderation.reset_usage(MOD, 1, guild_id=OTHER)  # forgives that server's videos only
    assert (await h.refused()).reason == "quota"
    assert [(s.used, s.limit, s.source) for s in (await h.quota(), await h.quota(guild=OTHER))] == [
        (1, 1, "bot"), (0, 2, "personal")]


async def test_blocks_and_channel_rules_hold_in_their_own_server_only(make):
    h = await make()
    await h.moderation.block(MOD, 1, "spam", "permanent", guild_id=OTHER)
    await h.moderation.set_channel(MOD, 500, False, guild_id=OTHER)  # a forged rule for another server's channel
    await h.done()
    assert (await h.refused(guild=OTHER, channel=700)).reason == "blocked"


async def test_a_servers_default_and_period_replace_the_bots_there_only(make):
    h = await make(limit=3, period="day")
    default = await h.moderation.set_default(MOD, 5, guild_id=OTHER, period="week")
    assert (default.limit, default.period, default.source) == (5, "week", "server")
    assert [(s.limit, s.period, s.source) for s in (await h.quota(), await h.quota(guild=OTHER))] == [
        (3, "day", "bot"), (5, "week", "server")]
    assert await h.moderation.clear_default(MOD, guild_id=OTHER) is True
    assert (await h.quota(guild=OTHER)).limit == 3


async def test_the_operators_default_cap_and_block_hold_above_every_server(make):
    h = await make(limit=3)
    await h.moderation.set_default(MOD, 4, guild_id=GLOBAL)  # the bot's default: every server without its own
    await h.moderation.set_default(MOD, 9, guild_id=OTHER)
    assert [(await h.quota(guild=g)).limit for g in (GUILD, OTHER, None)] == [4, 9, 4]

    await h.moderation.set_limit(MOD, 2, 1, guild_id=GLOBAL)  # user 2: one video, all servers together
    await h.done(user=2)
    refused = await h.refused(user=2, guild=OTHER)
    assert refused.reason == "quota" and refused.message.startswith("You have reached your video quota across every "
                                                                    "server: 1 of 1 video used today")
    await h.moderation.block(MOD, 3, "abuse", "permanent", guild_id=GLOBAL)
    assert {(await h.refused(user=3, guild=g)).reason for g in (GUILD, OTHER, None)} == {"blocked"}


async def test_requests_in_direct_messages_count_against_the_bots_default_only(make):
    h = await make(limit=1)
    await h.done(guild=None)
    assert (await h.refused(guild=None)).reason == "quota"
    await h.done()  # the server's allowance is untouched


async def test_concurrent_requests_cannot_overrun_the_quota(make):
    h = await make(limit=2)
    h.pipeline.hold.clear()
    results = await asyncio.gather(*(h.submit(prompt=f"A paper boat number {n}.") for n in range(6)),
                                   return_exceptions=True)
    accepted = [r for r in results if isinstance(r, Submitted)]
    assert len(accepted) == 2
    assert {r.reason for r in results if isinstance(r, Refused)} == {"quota"}


@pytest.mark.parametrize(
    ("period", "now", "start", "end"),
    [
        ("hour", datetime(2026, 3, 4, 22, 30, 5, tzinfo=UTC), datetime(2026, 3, 4, 22, tzinfo=UTC),
         datetime(2026, 3, 4, 23, tzinfo=UTC)),
        ("day", datetime(2026, 3, 4, 23, 59, tzinfo=UTC), datetime(2026, 3, 4, tzinfo=UTC),
         datetime(2026, 3, 5, tzinfo=UTC)),
        ("week", datetime(2026, 3, 4, 1, tzinfo=UTC), datetime(2026, 3, 2, tzinfo=UTC),
         datetime(2026, 3, 9, tzinfo=UTC)),  # Monday to Monday
        ("month", datetime(2026, 12, 31, 23, tzinfo=UTC), datetime(2026, 12, 1, tzinfo=UTC),
         datetime(2027, 1, 1, tzinfo=UTC)),
        ("month", datetime(2026, 1, 31, 12, tzinfo=UTC), datetime(2026, 1, 1, tzinfo=UTC),
         datetime(2026, 2, 1, tzinfo=UTC)),
    ],
)
def test_periods_are_calendar_periods_in_utc(period, now, start, end):
    assert period_bounds(period, now) == (start, end)


def test_a_period_is_found_from_any_time_zone():
    local = datetime(2026, 3, 5, 1, 30, tzinfo=UTC).astimezone(ZoneInfo("Europe/Berlin"))
    assert period_bounds("day", local) == (datetime(2026, 3, 5, tzinfo=UTC), datetime(2026, 3, 6, tzinfo=UTC))


def test_quota_settings_are_checked_at_start():
    base = {"DISCORD_TOKEN": "a.token-of.a-bot", "T2V_MODEL": "tiny-random", "T2V_ALLOW_TINY": "1"}
    settings = load_settings({**base, "QUOTA_DEFAULT": "5", "QUOTA_PERIOD": "Week"}, env_file=None)
    assert (settings.quota_default, settings.quota_period) == (5, "week")
    with pytest.raises(SettingsError) as error:
        load_settings({**base, "QUOTA_DEFAULT": "-1", "QUOTA_PERIOD": "fortnight"}, env_file=None)
    assert error.value.lines == ["QUOTA_DEFAULT=-1 is outside 0..10000",
                                 "QUOTA_PERIOD=fortnight is not one of hour, day, week, month"]
