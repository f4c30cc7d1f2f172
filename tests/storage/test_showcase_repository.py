"""The showcase repository: nominations of public finished results only, one decision, toggled votes, pages."""

from collections.abc import Awaitable, Callable
from datetime import timedelta

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from storage import GLOBAL, JobNotFoundError, JobRecord, ModerationRepository, Repository, ShowcaseError
from storage.records import ShowcaseState
from storage.showcase import ShowcaseRepository
from tests.clocks import Clock

MakeJob = Callable[..., Awaitable[JobRecord]]
SERVER = 900  # make_job's server
OTHER = 901


@pytest.fixture
def showcase(engine: AsyncEngine, clock: Clock) -> ShowcaseRepository:
    return ShowcaseRepository(engine, clock=clock)


async def finished(repo: Repository, make_job: MakeJob, user_id: int = 1, **overrides) -> JobRecord:
    job = await make_job(user_id, **overrides)
    await repo.mark_running(job.id)
    return await repo.mark_done(job.id, seed=7, gpu_s=1.0, output_bytes=1000)


async def test_a_finished_public_result_can_be_nominated_once(repo, make_job, showcase):
    job = await finished(repo, make_job, user_name="Bob <b>")

    entry = await showcase.nominate(job.id, user_id=5)
    with pytest.raises(ShowcaseError) as again:
        await showcase.nominate(job.id, user_id=6)

    assert (entry.job_id, entry.state, entry.nominated_by, entry.votes) == (job.id, ShowcaseState.PENDING, 5, 0)
    assert (entry.prompt, entry.author_id, entry.author_name) == (job.prompt, 1, "Bob <b>")
    assert again.value.code == "already" and "pending" in again.value.message
    assert [e.job_id for e in await showcase.pending(guild_id=SERVER)] == [job.id]


async def test_an_entry_carries_its_videos_size_for_the_gallery(repo, make_job, showcase, job_params):
    wide = await finished(repo, make_job, params={**job_params, "width": 448, "height": 256})
    unsized = await finished(repo, make_job, params={key: v for key, v in job_params.items()
                                                      if key not in ("width", "height")})

    assert [((e := await showcase.nominate(job.id, 5)).width, e.height) for job in (wide, unsized)] == [
        (448, 256), (None, None)]


@pytest.mark.parametrize("case", ["private", "deleted", "not_done", "missing"])
async def test_private_deleted_unfinished_or_unknown_jobs_cannot_be_nominated(repo, make_job, showcase, job_params,
                                                                               case):
    if case == "private":
        job = await finished(repo, make_job, params={**job_params, "private": True})
    elif case == "deleted":
        job = await finished(repo, make_job)
        await showcase.delete_job(job.id)
    elif case == "not_done":
        job = await make_job()
    with pytest.raises(ShowcaseError) as refused:
        await showcase.nominate(job.id if case != "missing" else 999, user_id=5)

    assert refused.value.code == case
    assert await showcase.pending(guild_id=SERVER) == []


async def test_a_decision_is_made_once_and_a_deleted_result_cannot_be_approved(repo, make_job, showcase, clock):
    kept, dropped, gone = [await finished(repo, make_job) for _ in range(3)]
    for job in (kept, dropped, gone):
        await showcase.nominate(job.id, user_id=5)
    clock.advance(60)

    approved = await showcase.decide(kept.id, guild_id=SERVER, approve=True, moderator_id=9)
    rejected = await showcase.decide(dropped.id, guild_id=SERVER, approve=False, moderator_id=9, reason="blurry")
    await showcase.delete_job(gone.id)
    with pytest.raises(ShowcaseError) as twice:
        await showcase.decide(kept.id, guild_id=SERVER, approve=False, moderator_id=9)
    with pytest.raises(ShowcaseError) as deleted:
        await showcase.decide(gone.id, guild_id=SERVER, approve=True, moderator_id=9)
    with pytest.raises(ShowcaseError) as unknown:
        await showcase.decide(12345, guild_id=SERVER, approve=True, moderator_id=9)

    assert (approved.state, approved.decided_by, approved.decided_at) == (ShowcaseState.APPROVED, 9, clock.now)
    assert (rejected.state, rejected.reason) == (ShowcaseState.REJECTED, "blurry")
    assert (twice.value.code, deleted.value.code, unknown.value.code) == ("decided", "deleted", "not_nominated")
    assert await showcase.pending(guild_id=SERVER) == []  # the deleted one no longer waits either


async def test_votes_toggle_one_per_member(repo, make_job, showcase):
    job = await finished(repo, make_job)
    entry = await showcase.nominate(job.id, user_id=5)
    with pytest.raises(ShowcaseError):
        await showcase.toggle_vote(entry.id, 11)  # not approved yet
    await showcase.decide(job.id, guild_id=SERVER, approve=True, moderator_id=9)

    steps = [await showcase.toggle_vote(entry.id, user) for user in (11, 12, 11, 11)]

    assert steps == [(True, 1), (True, 2), (False, 1), (True, 2)]
    assert (await showcase.get(job.id)).votes == 2


async def test_without_may_add_a_vote_is_only_taken_back_never_added(repo, make_job, showcase):
    """A blocked member's press (may_add=False) takes back their earlier vote; pressed again, it adds none."""
    job = await finished(repo, make_job)
    entry = await showcase.nominate(job.id, user_id=5)
    await showcase.decide(job.id, guild_id=SERVER, approve=True, moderator_id=9)
    await showcase.toggle_vote(entry.id, 11)
    await showcase.toggle_vote(entry.id, 12)

    taken_back = await showcase.toggle_vote(entry.id, 11, may_add=False)
    with pytest.raises(ShowcaseError) as again:
        await showcase.toggle_vote(entry.id, 11, may_add=False)

    assert taken_back == (False, 1) and again.value.code == "may_not_add"
    assert (await showcase.get(job.id)).votes == 1


async def test_the_gallery_pages_show_approved_undeleted_entries_newest_first(repo, make_job, showcase, clock):
    jobs = [await finished(repo, make_job, prompt=f"prompt {n}") for n in range(5)]
    for job in jobs:
        await showcase.nominate(job.id, user_id=5)
    for job in jobs[:4]:
        clock.advance(1)
        await showcase.decide(job.id, guild_id=SERVER, approve=True, moderator_id=9)
    await showcase.delete_job(jobs[1].id)

    first = await showcase.approved_page(1, 2)
    second = await showcase.approved_page(2, 2)
    beyond = await showcase.approved_page(3, 2)

    assert await showcase.approved_count() == 3
    assert [e.prompt for e in first + second] == ["prompt 3", "prompt 2", "prompt 0"]
    assert beyond == []


async def test_deleting_keeps_the_first_time_tells_a_second_deletion_and_names_unknown_jobs(repo, make_job, showcase,
                                                                                              clock):
    """A second deletion was told it had deleted the job, like the first (two 🗑 confirmations both read "Deleted")."""
    job = await finished(repo, make_job)
    first = await showcase.delete_job(job.id)
    clock.advance(5)
    with pytest.raises(ShowcaseError) as again:
        await showcase.delete_job(job.id)

    assert first.deleted_at == (await repo.get_job(job.id)).deleted_at is not None
    assert (again.value.code, again.value.message) == ("deleted", f"Job #{job.id} was deleted already.")
    with pytest.raises(JobNotFoundError):
        await showcase.delete_job(999)


async def test_set_post_remembers_where_the_video_was_posted(repo, make_job, showcase):
    job = await finished(repo, make_job)
    entry = await showcase.nominate(job.id, user_id=5)
    await showcase.set_post(entry.id, 111, 222)

    stored = await showcase.get_entry(entry.id)
    assert (stored.channel_id, stored.message_id) == (111, 222)


async def test_forget_posts_forgets_only_the_posts_discord_says_are_gone(repo, make_job, showcase):
    entries = []
    for channel, message in ((111, 222), (111, 333), (444, 555)):
        entry = await showcase.nominate((await finished(repo, make_job)).id, user_id=5)
        await showcase.decide(entry.job_id, guild_id=SERVER, approve=True, moderator_id=9)
        await showcase.set_post(entry.id, channel, message)
        entries.append(entry)

    one = await showcase.forget_posts(111, [333, 555])  # 555 is a post of another channel
    none = await showcase.forget_posts(111, [])
    channel = await showcase.forget_posts(111)  # the channel deleted
    posts = [((e := await showcase.get_entry(entry.id)).channel_id, e.message_id, e.state) for entry in entries]

    assert (one, none, channel) == ([entries[1].job_id], [], [entries[0].job_id])
    assert posts == [(None, None, ShowcaseState.APPROVED), (None, None, ShowcaseState.APPROVED),
                     (444, 555, ShowcaseState.APPROVED)]


async def test_the_showcase_keeps_the_videos_of_pending_and_approved_entries(repo, make_job, showcase):
    waiting, approved, rejected, _never_nominated = [await finished(repo, make_job) for _ in range(4)]
    for job in (waiting, approved, rejected):
        await showcase.nominate(job.id, user_id=5)
    await showcase.decide(approved.id, guild_id=SERVER, approve=True, moderator_id=9)
    await showcase.decide(rejected.id, guild_id=SERVER, approve=False, moderator_id=9, reason="blurry")

    assert await showcase.kept_job_ids() == {waiting.id, approved.id}


async def approved(repo: Repository, make_job: MakeJob, showcase: ShowcaseRepository, user_id: int,
                   guild_id: int = SERVER) -> JobRecord:
    job = await finished(repo, make_job, user_id, guild_id=guild_id)
    await showcase.nominate(job.id, user_id=5)
    await showcase.decide(job.id, guild_id=guild_id, approve=True, moderator_id=9)
    return job


async def test_the_gallery_hides_a_blocked_authors_videos_where_the_block_holds_while_it_holds(
        engine, repo, make_job, showcase, clock):
    blocks = ModerationRepository(engine, clock=clock)
    mine = await approved(repo, make_job, showcase, 1)
    elsewhere = await approved(repo, make_job, showcase, 1, OTHER)  # the same author's, in another server
    theirs = await approved(repo, make_job, showcase, 2)
    entry = await showcase.get(mine.id)
    await showcase.toggle_vote(entry.id, 11)

    async def gallery() -> tuple[list[int], int, list[tuple[int, int]], list[int]]:
        """What the gallery shows: every page's jobs, server SERVER's count, the servers, the jobs shown alone."""
        return ([e.job_id for e in await showcase.approved_page(1, 10)], await showcase.approved_count(guild_id=SERVER),
                sorted(await showcase.approved_servers()),
                [job.id for job in (mine, elsewhere, theirs) if await showcase.shown(job.id)])

    everything = await gallery()
    await blocks.block(1, "spam", clock.now + timedelta(hours=1), guild_id=SERVER, by=9)
    in_this_server = await gallery()
    clock.advance(3600)  # the block ran out
    ran_out = await gallery()
    await blocks.block(1, "spam", None, guild_id=GLOBAL, by=9)
    everywhere = await gallery()
    await blocks.unblock(1, guild_id=GLOBAL)
    lifted = await gallery()

    assert everything == lifted == ran_out == (
        [theirs.id, elsewhere.id, mine.id], 2, [(SERVER, 2), (OTHER, 1)], [mine.id, elsewhere.id, theirs.id])
    assert in_this_server == ([theirs.id, elsewhere.id], 1, [(SERVER, 1), (OTHER, 1)], [elsewhere.id, theirs.id])
    assert everywhere == ([theirs.id], 1, [(SERVER, 1)], [theirs.id])
    assert (await showcase.get(mine.id)).state == ShowcaseState.APPROVED  # hidden, never changed
    assert (await showcase.shown(mine.id)).votes == 1  # the votes come back with the video
    assert await showcase.kept_job_ids() == {mine.id, elsewhere.id, theirs.id}  # its video is kept meanwhile


async def test_a_blocked_authors_video_takes_no_votes_while_hidden_and_keeps_those_it_had(
        engine, repo, make_job, showcase, clock):
    blocks = ModerationRepository(engine, clock=clock)
    job = await approved(repo, make_job, showcase, 1)
    entry = await showcase.get(job.id)
    await showcase.toggle_vote(entry.id, 11)
    await blocks.block(1, "spam", clock.now + timedelta(hours=1), guild_id=SERVER, by=9)

    tries = []
    for voter in (11, 12):  # neither a new vote nor taking one back
        with pytest.raises(ShowcaseError) as hidden:
            await showcase.toggle_vote(entry.id, voter)
        tries.append(hidden.value.code)
    clock.advance(3600)  # the block ran out
    after = await showcase.toggle_vote(entry.id, 12)

    assert tries == ["hidden", "hidden"] and "hidden" in hidden.value.message and "block" not in hidden.value.message
    assert after == (True, 2)


async def test_shown_is_none_for_an_entry_the_gallery_does_not_show(repo, make_job, showcase):
    waiting, deleted = await finished(repo, make_job), await approved(repo, make_job, showcase, 1)
    await showcase.nominate(waiting.id, user_id=5)
    await showcase.delete_job(deleted.id)

    assert [await showcase.shown(job_id) for job_id in (waiting.id, deleted.id, 999)] == [None, None, None]
