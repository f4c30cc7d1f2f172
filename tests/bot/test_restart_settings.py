"""Restarts with changed settings or moderation while jobs wait in the database: each queued job is served, or its
user is told in one line what happened to it, never rendered against what the new start holds, nothing charged for
a job that never rendered."""

import pytest

from bot.jobs.spec import JobSpec
from storage import GLOBAL, JobState, ModerationRepository, Repository, create_engine, migrate
from t2v import TINY_RANDOM, load_pipeline
from tests.bot.conftest import Stacks
from tests.bot.helpers import decoded_frames, has_video, requester, spec
from tests.fakediscord import FakeUser

pytestmark = pytest.mark.usefixtures("logged_errors")

WHALE, OWL = "a blue whale swimming slowly", "an owl hunting at night"


async def queued_before(stacks: Stacks, *jobs: tuple[FakeUser, JobSpec]) -> list[int]:
    """Jobs a bot queued before it stopped (rows in the database, answered by channel message: their tokens ran out);
    their ids."""
    engine = create_engine(stacks.db_url)
    try:
        await migrate(engine)
        repo, ids = Repository(engine), []
        for user, asked in jobs:
            who = requester(user.id, channel_id=stacks.fake.channel.id, guild_id=stacks.fake.guild.id,
                            interaction_token=None)
            ids.append((await repo.create_job(**who.row(asked), seed=7)).id)
        return ids
    finally:
        await engine.dispose()


def told(stacks: Stacks, user: FakeUser, job_id: int):
    """A wait for the channel message to `user` about job `job_id`."""
    return stacks.fake.wait_for_message(lambda m: m.content.startswith(f"<@{user.id}>") and f"#{job_id}" in m.content)


@pytest.mark.parametrize("where", ["server", "everywhere"])
async def test_the_queued_jobs_of_a_user_blocked_while_the_bot_was_down_are_cancelled_at_start_never_rendered(
        stacks: Stacks, where: str):
    fake = stacks.fake
    alice, bob = fake.make_user(name="alice"), fake.make_user(name="bob")
    blocked, other = await queued_before(stacks, (bob, spec(WHALE, aspect="tiny")), (alice, spec(OWL, aspect="tiny")))
    engine = create_engine(stacks.db_url)  # the block was written, and the bot stopped before its cancels ran
    try:
        await ModerationRepository(engine).block(bob.id, "spam", None, by=1,
                                                 guild_id=fake.guild.id if where == "server" else GLOBAL)
    finally:
        await engine.dispose()

    async with stacks.run() as stack:
        cancelled = await told(stacks, bob, blocked)
        await told(stacks, alice, other)
        jobs = {job.id: job for job in await stack.jobs()}
        used = await stack.moderation.quota(bob.id, guild_id=fake.guild.id)

    assert cancelled.content.endswith(f"✖ A moderator cancelled job #{blocked}: you are blocked from making videos.")
    assert not has_video(cancelled)
    assert (jobs[blocked].state, jobs[blocked].started_at) == (JobState.CANCELLED, None)
    assert jobs[other].state == JobState.DONE
    assert used.used == 0


async def test_a_job_queued_before_the_model_was_switched_renders_at_the_new_models_size_for_its_aspect(
        stacks: Stacks, caplog):
    """T2V_MODEL now names a checkpoint of other sizes (as zeroscope's 576×320 is to ModelScope's 448×256): the 16:9
    job queued before renders at the new model's 16:9, not at a size it was not trained for."""
    caplog.set_level("INFO", "bot.jobs.service")
    fake = stacks.fake
    bob = fake.make_user(name="bob")
    [job_id] = await queued_before(stacks, (bob, spec(WHALE, aspect="16:9")))  # ModelScope's 448×256
    switched = load_pipeline(TINY_RANDOM, width=128, height=64)  # its 16:9 is 128×64

    async with stacks.run(lambda device: switched) as stack:
        result = await told(stacks, bob, job_id)
        job = await stack.job(job_id)

    assert job.state == JobState.DONE
    assert decoded_frames(result.attachments[0].data) == [(128, 64)] * 2
    assert (job.params["width"], job.params["height"]) == (128, 64)  # as its status and record show it
    assert (f"job {job_id} was queued at 448×256; the model loaded now renders 16:9 at 128×64, so it renders at that "
            "size") in caplog.text  # the sizes written as every message writes them
