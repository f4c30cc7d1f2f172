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
from storage import JobState, ModerationRepository, Repository
from tests.bot.helpers import Clock, Events, FakePipeline, requester, spec

NOW = datetime(2026, 3, 4, 22, 30, tzinfo=UTC)  # a Wednesday
MIDNIGHT = datetime(2026, 3, 5, tzinfo=UTC)
MOD = 900
PROMPT = "A panda eating bamboo on a rock."


@dataclass
class Harness:
    service: VideoService
    repo: Repository
    moderation: Moderation
    pipeline: FakePipeline
    events: Events
    clock: Clock

    async def submit(self, user: int = 1, prompt: str = PROMPT, roles: tuple[int, ...] = (),
                     channel: int = 500) -> Submitted:
        return await self.service.submit(requester(user, channel_id=channel, role_ids=roles), spec(prompt, steps=2))

    async def refused(self, user: int = 1, prompt: str = PROMPT, **kwargs: Any) -> Refused:
        with pytest.raises(Refused) as caught:
            await self.submit(user, prompt, **kwargs)
        return caught.value

    async def done(self, user: int = 1, prompt: str = PROMPT, roles: tuple[int, ...] = ()) -> None:
        job = (await self.submit(user, prompt, roles)).job
        await self.events.wait("failed" if prompt in self.pipeline.fail else "done", job.id)

    async def quota(self, user: int = 1, roles: tuple[int, ...] = ()) -> QuotaStatus:
        return await self.moderation.quota(user, roles)


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
    await h.moderation.set_default(MOD, 5, role_id=11)
    await h.moderation.set_default(MOD, 8, role_id=12)
    both = await h.quota(roles=(11, 12))
    assert (both.limit, both.source, both.role_id) == (8, "role", 12)
    assert (await h.quota(roles=(99,))).limit == 3

    await h.moderation.set_limit(MOD, 1, 1)
    personal = await h.quota(roles=(11, 12))
    assert (personal.limit, personal.source) == (1, "personal")
    await h.done(roles=(11, 12))
    assert (await h.refused(roles=(11, 12))).reason == "quota"

    await h.moderation.clear_limit(MOD, 1)
    await h.done(roles=(11, 12))  # the role default applies again


async def test_a_moderator_default_replaces_quota_default_and_zero_allows_none(make):
    h = await make(limit=3)
    await h.moderation.set_default(MOD, 0)
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
    await h.moderation.reset_usage(MOD, 1)
    h.clock.now += timedelta(minutes=1)
    await h.done()
    assert (await h.refused()).reason == "quota"


async def test_checks_run_block_then_policy_then_quota_then_caps(make):
    h = await make(limit=1, per_user_cap=1)
    h.pipeline.hold.clear()
    await h.submit()  # uses the whole quota and the whole per-user cap
    assert (await h.refused(prompt="A nude woman on a beach.")).reason == "denylist"
    assert (await h.refused()).reason == "quota"
    await h.moderation.block(MOD, 1, "spamming", "2h")
    assert (await h.refused(prompt="A nude woman on a beach.")).reason == "blocked"


async def test_a_block_names_its_reason_and_end_and_lapses_by_itself(make):
    h = await make()
    block = await h.moderation.block(MOD, 1, "spamming the channel", "90m")
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
    await h.moderation.block(MOD, 1, None, "permanent")
    h.clock.now += timedelta(days=3000)
    assert "A moderator can lift the block" in (await h.refused()).message
    assert await h.moderation.unblock(MOD, 1) is True
    await h.done()


async def test_channel_rules_refuse_denied_channels_and_everything_outside_an_allow_list(make):
    h = await make()
    await h.moderation.set_channel(MOD, 501, False)
    assert (await h.refused(channel=501)).reason == "channel"
    await h.done()  # channel 500 has no rule and there is no allow-list
    await h.moderation.set_channel(MOD, 502, True)
    refused = await h.refused(channel=500)
    assert refused.reason == "channel" and "<#502>" in refused.message
    await h.submit(channel=502)


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
    base = {"DISCORD_TOKEN": "t", "T2V_MODEL": "tiny-random", "T2V_ALLOW_TINY": "1"}
    settings = load_settings({**base, "QUOTA_DEFAULT": "5", "QUOTA_PERIOD": "Week"}, env_file=None)
    assert (settings.quota_default, settings.quota_period) == (5, "week")
    with pytest.raises(SettingsError) as error:
        load_settings({**base, "QUOTA_DEFAULT": "-1", "QUOTA_PERIOD": "fortnight"}, env_file=None)
    assert error.value.lines == ["QUOTA_DEFAULT=-1 is outside 0..10000",
                                 "QUOTA_PERIOD=fortnight is not one of hour, day, week, month"]
