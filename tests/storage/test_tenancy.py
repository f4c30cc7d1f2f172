"""Every moderation record belongs to one server (or to every server, GLOBAL): one server's rows are never read or
changed through another server's id, on both backends."""

from datetime import timedelta

import pytest

from storage import GLOBAL, DenyKind, DuplicateEntryError, ModerationRepository, ShowcaseError, ShowcaseRepository

A, B = 900, 901  # two servers (make_job's jobs are in A unless told otherwise)
MOD, USER = 7, 8


@pytest.fixture
def mods(engine, clock) -> ModerationRepository:
    return ModerationRepository(engine, clock=clock)


@pytest.fixture
def showcase(engine, clock) -> ShowcaseRepository:
    return ShowcaseRepository(engine, clock=clock)


async def test_each_server_keeps_its_own_quota_of_the_same_user(mods):
    await mods.set_quota_limit(USER, 5, guild_id=A, by=MOD)
    await mods.set_quota_limit(USER, 50, guild_id=B, by=MOD)
    await mods.reset_usage(USER, guild_id=B, by=MOD)

    a, b = await mods.quota_override(USER, guild_id=A), await mods.quota_override(USER, guild_id=B)
    assert (a.guild_id, a.max_videos, a.counted_from) == (A, 5, None)
    assert (b.guild_id, b.max_videos, b.counted_from is not None) == (B, 50, True)
    assert await mods.quota_override(USER, guild_id=GLOBAL) is None


async def test_role_defaults_settings_and_channel_rules_are_per_server(mods):
    await mods.set_role_quota(11, 3, guild_id=A, by=MOD)
    await mods.set_setting("quota_default", 4, guild_id=A, by=MOD)
    await mods.set_setting("quota_default", 9, guild_id=GLOBAL, by=MOD)
    await mods.set_channel_rule(100, False, guild_id=A, by=MOD)

    assert await mods.role_quotas(guild_id=B) == [] and await mods.remove_role_quota(11, guild_id=B) is False
    assert (await mods.setting("quota_default", guild_id=A), await mods.setting("quota_default", guild_id=B),
            await mods.setting("quota_default", guild_id=GLOBAL)) == (4, None, 9)
    assert await mods.channel_rules([B]) == [] and await mods.remove_channel_rule(100, guild_id=B) is False
    assert await mods.remove_setting("quota_default", guild_id=A) is True
    assert await mods.setting("quota_default", guild_id=A) is None
    assert [r.guild_id for r in await mods.role_quotas(guild_id=A)] == [A]


async def test_a_block_holds_in_its_server_and_a_global_one_everywhere(mods):
    await mods.block(USER, "spam in A", None, guild_id=A, by=MOD)
    assert await mods.active_block(USER, [B, GLOBAL]) is None
    assert await mods.unblock(USER, guild_id=B) is False
    assert [b.guild_id for b in await mods.active_blocks(guild_id=B)] == []

    everywhere = await mods.block(USER, "abuse", None, guild_id=GLOBAL, by=MOD)
    assert await mods.active_block(USER, [B, GLOBAL]) == everywhere
    assert (await mods.active_block(USER, [A])).reason == "spam in A"


async def test_the_longest_of_several_blocks_is_the_one_shown(mods, clock):
    await mods.block(USER, "short", clock.now + timedelta(hours=1), guild_id=A, by=MOD)
    await mods.block(USER, "long", clock.now + timedelta(days=1), guild_id=GLOBAL, by=MOD)
    assert (await mods.active_block(USER, [A, GLOBAL])).reason == "long"


async def test_audit_and_usage_are_read_per_server(mods, make_job, clock):
    await mods.audit(MOD, "block", f"user:{USER}", guild_id=A)
    await mods.audit(MOD, "quota.default", "server", guild_id=GLOBAL)
    await make_job(USER, guild_id=A)
    await make_job(USER, guild_id=B)
    await make_job(USER, guild_id=B)
    await make_job(USER, guild_id=None)  # a direct message
    since = clock.now - timedelta(hours=1)

    assert [r.action for r in await mods.latest_audit(guild_id=A)] == ["block"]
    assert await mods.latest_audit(guild_id=B) == []
    assert [await mods.count_usage(USER, since, guild_id=g) for g in (A, B, None, GLOBAL)] == [1, 2, 1, 4]
    assert [(await mods.usage_stats(None, guild_id=g)).requests for g in (A, B, None, GLOBAL)] == [1, 2, 1, 4]
    assert [(s.guild_id, s.requests, s.users) for s in await mods.server_usage(None)] == [(B, 2, 1), (A, 1, 1),
                                                                                          (None, 1, 1)]


async def test_a_servers_denylist_additions_stand_beside_the_shared_list_and_other_servers(repo):
    await repo.seed_denylist([("nude", "sexual", "deny")])
    await repo.add_denylist_entry("nude", "sexual", added_by=MOD, guild_id=A)  # a server may repeat a shared one
    await repo.add_denylist_entry("kittens", "violence", added_by=MOD, guild_id=A)
    with pytest.raises(DuplicateEntryError) as twice:
        await repo.add_denylist_entry("kittens", "violence", added_by=MOD, guild_id=A)

    assert twice.value.guild_id == A
    assert await repo.remove_denylist_entry("nude", guild_id=B) is False
    assert await repo.remove_denylist_entry("nude", guild_id=A) is True
    assert [(e.pattern, e.guild_id) for e in await repo.list_denylist(guild_ids=[GLOBAL, B])] == [("nude", GLOBAL)]
    assert [(e.pattern, e.guild_id) for e in await repo.list_denylist(DenyKind.DENY, guild_ids=[A])] == [
        ("kittens", A)]
    assert await repo.seed_denylist([("nude", "sexual", "deny")]) == 0  # the shared list has it; A's own is apart


async def test_a_nomination_belongs_to_its_jobs_server_and_only_that_server_decides_it(repo, make_job, showcase):
    job_a, job_b, direct = [await make_job(USER, guild_id=g) for g in (A, B, None)]
    for job in (job_a, job_b, direct):
        await repo.mark_running(job.id)
        await repo.mark_done(job.id, seed=1, gpu_s=1.0, output_bytes=10)
    entry = await showcase.nominate(job_a.id, user_id=5)
    await showcase.nominate(job_b.id, user_id=5)
    with pytest.raises(ShowcaseError) as in_dm:
        await showcase.nominate(direct.id, user_id=5)
    with pytest.raises(ShowcaseError) as from_b:
        await showcase.decide(job_a.id, guild_id=B, approve=True, moderator_id=MOD)

    assert entry.guild_id == A and in_dm.value.code == "no_server"
    assert from_b.value.message == f"Job #{job_a.id} has not been nominated for the showcase."
    assert [e.job_id for e in await showcase.pending(guild_id=B)] == [job_b.id]
    await showcase.decide(job_a.id, guild_id=A, approve=True, moderator_id=MOD)
    await showcase.decide(job_b.id, guild_id=B, approve=True, moderator_id=MOD)
    assert [e.job_id for e in await showcase.approved_page(1, 10, guild_id=A)] == [job_a.id]
    assert await showcase.approved_count(guild_id=B) == 1 and await showcase.approved_count() == 2
    assert sorted(await showcase.approved_servers()) == [(A, 1), (B, 1)]
