"""Moderation storage: quota usage from the jobs log, overrides and defaults, blocks, channel rules, audit, stats."""

from datetime import datetime, timedelta

import pytest

from storage import GLOBAL, ModerationRepository

MOD = 1_000_000_000_000_000_001  # a moderator's Discord id (64-bit, as Discord's are)
USER = 1_000_000_000_000_000_002
SERVER = 900  # make_job's server


@pytest.fixture
def mods(engine, clock) -> ModerationRepository:
    return ModerationRepository(engine, clock=clock)


async def job_in(repo, make_job, state: str, user_id: int = USER, gpu_s: float = 2.0):
    """A job of `user_id` brought to `state` through the real transitions."""
    if state == "refused":
        return await make_job(user_id, refusal_reason="denylist:sexual")
    job = await make_job(user_id)
    if state in ("running", "done", "failed_running", "cancelled_running"):
        job = await repo.mark_running(job.id)
    if state == "done":
        job = await repo.mark_done(job.id, seed=1, gpu_s=gpu_s, output_bytes=1000)
    elif state in ("failed", "failed_running"):
        job = await repo.mark_failed(job.id, "boom")
    elif state in ("cancelled", "cancelled_running"):
        job = await repo.mark_cancelled(job.id)
    return job


async def test_usage_counts_active_done_and_started_then_cancelled_jobs_and_refunds_the_rest(mods, repo, make_job,
                                                                                          clock):
    for state in ("queued", "running", "done", "cancelled_running"):
        await job_in(repo, make_job, state)
    for state in ("refused", "failed", "failed_running", "cancelled"):
        await job_in(repo, make_job, state)
    await job_in(repo, make_job, "done", user_id=USER + 1)  # someone else's

    assert await mods.count_usage(USER, clock.now - timedelta(hours=1), guild_id=SERVER) == 4
    assert await mods.count_usage(USER + 1, clock.now - timedelta(hours=1), guild_id=SERVER) == 1


async def test_usage_sums_each_jobs_cost_and_old_rows_without_one_count_one(mods, make_job, job_params, clock):
    await make_job(USER, params={**job_params, "cost": 2, "kind": "upscale"})  # an upscale
    await make_job(USER, params=job_params)  # a row from before costs: one video
    await make_job(USER, params={**job_params, "cost": 2}, refusal_reason="quota")  # refused: refunded
    assert await mods.count_usage(USER, clock.now - timedelta(hours=1), guild_id=SERVER) == 3


async def test_usage_counts_only_jobs_created_since_the_given_time(mods, repo, make_job, clock):
    await job_in(repo, make_job, "done")
    since = clock.advance(60)
    await job_in(repo, make_job, "done")
    assert await mods.count_usage(USER, since, guild_id=SERVER) == 1
    assert await mods.count_usage(USER, since + timedelta(seconds=1), guild_id=SERVER) == 0


async def test_a_personal_limit_and_a_usage_reset_keep_each_other(mods, clock):
    assert await mods.quota_override(USER, guild_id=SERVER) is None
    limited = await mods.set_quota_limit(USER, 5, guild_id=SERVER, by=MOD)
    assert (limited.max_videos, limited.counted_from, limited.set_by, limited.set_at) == (5, None, MOD, clock.now)

    reset_at = clock.advance(30)
    reset = await mods.reset_usage(USER, guild_id=SERVER, by=MOD + 1)
    assert (reset.max_videos, reset.counted_from, reset.set_by) == (5, reset_at, MOD + 1)

    cleared = await mods.set_quota_limit(USER, None, guild_id=SERVER, by=MOD)
    assert (cleared.max_videos, cleared.counted_from) == (None, reset_at)
    assert await mods.quota_override(USER, guild_id=SERVER) == cleared


async def test_role_defaults_are_set_replaced_filtered_and_removed(mods):
    await mods.set_role_quota(11, 50, guild_id=SERVER, by=MOD)
    await mods.set_role_quota(12, 5, guild_id=SERVER, by=MOD)
    await mods.set_role_quota(11, 40, guild_id=SERVER, by=MOD)

    assert [(r.role_id, r.max_videos) for r in await mods.role_quotas(guild_id=SERVER)] == [(11, 40), (12, 5)]
    assert [r.role_id for r in await mods.role_quotas([12, 99], guild_id=SERVER)] == [12]
    assert await mods.role_quotas([], guild_id=SERVER) == []
    assert await mods.remove_role_quota(12, guild_id=SERVER) is True
    assert await mods.remove_role_quota(12, guild_id=SERVER) is False
    assert [r.role_id for r in await mods.role_quotas(guild_id=SERVER)] == [11]


async def test_run_time_settings_round_trip_as_json(mods):
    assert await mods.setting("quota_default", guild_id=SERVER) is None
    await mods.set_setting("quota_default", 7, guild_id=SERVER, by=MOD)
    await mods.set_setting("quota_default", 8, guild_id=SERVER, by=MOD)
    await mods.set_setting("note", {"a": [1, 2]}, guild_id=SERVER, by=MOD)
    assert await mods.setting("quota_default", guild_id=SERVER) == 8
    assert await mods.setting("note", guild_id=SERVER) == {"a": [1, 2]}


async def test_a_timed_block_holds_until_its_end_and_a_permanent_one_until_unblocked(mods, clock):
    until = clock.now + timedelta(hours=2)
    timed = await mods.block(USER, "spam", until, guild_id=SERVER, by=MOD)
    forever = await mods.block(USER + 1, "abuse", None, guild_id=SERVER, by=MOD)

    assert await mods.active_block(USER, [SERVER]) == timed
    assert [b.user_id for b in await mods.active_blocks(guild_id=SERVER)] == [USER, USER + 1]
    clock.now = until
    assert await mods.active_block(USER, [SERVER]) is None and not timed.active(clock.now)
    assert await mods.active_block(USER + 1, [SERVER]) == forever and forever.active(clock.now + timedelta(days=9999))
    assert [b.user_id for b in await mods.active_blocks(guild_id=SERVER)] == [USER + 1]

    assert await mods.unblock(USER + 1, guild_id=SERVER) is True
    assert await mods.unblock(USER + 1, guild_id=SERVER) is False
    assert await mods.active_block(USER + 1, [SERVER]) is None


async def test_blocking_again_replaces_the_reason_and_the_end(mods, clock):
    await mods.block(USER, "spam", clock.now + timedelta(hours=1), guild_id=SERVER, by=MOD)
    again = await mods.block(USER, "more spam", None, guild_id=SERVER, by=MOD + 1)
    assert (again.reason, again.until, again.blocked_by) == ("more spam", None, MOD + 1)
    assert await mods.active_block(USER, [SERVER], clock.now + timedelta(days=1)) == again


async def test_channel_rules_are_set_replaced_listed_and_removed(mods):
    await mods.set_channel_rule(300, True, guild_id=SERVER, by=MOD)
    await mods.set_channel_rule(200, False, guild_id=SERVER, by=MOD)
    await mods.set_channel_rule(300, False, guild_id=SERVER, by=MOD)
    assert [(r.channel_id, r.allowed) for r in await mods.channel_rules([SERVER])] == [(200, False), (300, False)]
    assert await mods.remove_channel_rule(200, guild_id=SERVER) is True
    assert await mods.remove_channel_rule(200, guild_id=SERVER) is False
    assert [r.channel_id for r in await mods.channel_rules([SERVER])] == [300]


async def test_audit_rows_keep_actor_action_target_details_and_come_back_newest_first(mods, clock):
    first = await mods.audit(MOD, "quota.set", f"user:{USER}", {"limit": 5}, guild_id=SERVER)
    clock.advance(1)
    denied = await mods.audit(USER, "videomod block", None, {"reason": "not a moderator"}, guild_id=SERVER,
                            allowed=False)

    assert (first.actor_id, first.action, first.target, first.details, first.allowed) == (
        MOD, "quota.set", f"user:{USER}", {"limit": 5}, True)
    assert (denied.at, denied.allowed) == (clock.now, False)
    assert await mods.latest_audit(guild_id=SERVER) == [denied, first]
    assert await mods.latest_audit(1, guild_id=SERVER) == [denied]


async def test_pruning_the_audit_log_deletes_rows_written_before_a_time_in_every_server(mods, clock):
    old = [await mods.audit(MOD, "block", f"user:{n}", guild_id=server) for n, server in enumerate((SERVER, GLOBAL, 5))]
    cutoff = clock.advance(60)
    kept = await mods.audit(MOD, "unblock", f"user:{USER}", guild_id=SERVER)

    assert await mods.prune_audit(cutoff, batch=2) == len(old)
    assert await mods.latest_audit(guild_id=SERVER) == [kept]
    assert await mods.latest_audit(guild_id=GLOBAL) == [] and await mods.prune_audit(cutoff) == 0


async def test_pruning_keeps_the_audit_rows_asked_for_and_the_newest_row(mods, clock):
    removal = await mods.audit(MOD, "denylist.remove", "pattern:gore", guild_id=SERVER)
    edits = [await mods.audit(MOD, "denylist.add", f"pattern:{n}", guild_id=SERVER) for n in range(3)]

    assert await mods.prune_audit(clock.advance(3600), keep=["denylist.remove"]) == 2
    assert await mods.latest_audit(guild_id=SERVER) == [edits[-1], removal]
    assert await mods.audited_targets(["denylist.remove"], guild_id=None) == {"pattern:gore"}


async def test_usage_stats_count_states_refusal_reasons_gpu_time_and_the_busiest_users(mods, repo, make_job, clock):
    await job_in(repo, make_job, "done", user_id=1, gpu_s=1.5)  # before the window
    since = clock.advance(60)
    for _ in range(3):
        await job_in(repo, make_job, "done", user_id=2, gpu_s=2.0)
    await job_in(repo, make_job, "failed", user_id=3)
    await job_in(repo, make_job, "done", user_id=3, gpu_s=0.5)
    await job_in(repo, make_job, "refused", user_id=4)
    await job_in(repo, make_job, "refused", user_id=4)
    await make_job(5, refusal_reason="quota")

    stats = await mods.usage_stats(since, guild_id=SERVER, top=2)
    assert stats.requests == 8
    assert stats.by_state == {"done": 4, "failed": 1, "refused": 3}
    assert list(stats.refusals.items()) == [("denylist:sexual", 2), ("quota", 1)]
    assert stats.gpu_s == pytest.approx(6.5)
    assert [(u.user_id, u.user_name, u.requests, u.gpu_s) for u in stats.top_users] == [
        (2, "user2", 3, 6.0), (3, "user3", 2, 0.5)]

    everything = await mods.usage_stats(None, guild_id=SERVER)
    assert everything.requests == 9 and everything.gpu_s == pytest.approx(8.0)


async def test_stats_of_an_empty_log_are_zero(mods):
    stats = await mods.usage_stats(None, guild_id=SERVER)
    assert (stats.requests, stats.by_state, stats.refusals, stats.gpu_s, stats.top_users) == (0, {}, {}, 0.0, ())


async def test_naive_times_are_refused(mods):
    with pytest.raises(ValueError, match="timezone-aware"):
        await mods.audit(MOD, "block", guild_id=SERVER, now=datetime(2026, 1, 1))  # noqa: DTZ001 - naive on purpose
