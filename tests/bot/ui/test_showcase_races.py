"""The showcase when presses and decisions cross: two ⭐ votes at once, and nominations and votes met in odd orders
(a job deleted, a file removed by hand, a moderator who lost the role)."""

import asyncio

import pytest

from storage.records import ShowcaseState
from tests.bot.conftest import Stacks
from tests.bot.helpers import delete_result, has_video, video
from tests.bot.ui.test_showcase import approved, moderate, nominated, posts_in, vote_label
from tests.fakediscord import FakeChannel, FakeMessage

pytestmark = pytest.mark.usefixtures("logged_errors")


@pytest.fixture
def showcase_channel(stacks: Stacks) -> FakeChannel:
    return stacks.fake.add_channel("showcase")


def labels(post: FakeMessage) -> list[str]:
    """Every count the post's ⭐ has shown, oldest first."""
    shown = [*post.history, post.snapshot()]
    return [state["components"][0]["components"][0]["label"] for state in shown]


async def test_two_votes_at_once_end_at_the_true_count_and_it_never_goes_back(stacks: Stacks, showcase_channel):
    """Ann's count (1) was on its way when cid's (2) landed; ann's then landed last and the post read 1 vote of 2."""
    async with stacks.run(showcase_channel_id=showcase_channel.id) as stack:
        fake = stack.fake
        _, _, post = await approved(stack, showcase_channel)
        first_shown = fake.hold_next("POST /interactions/*/callback")  # ann's count, on its way
        ann = await fake.click(post, "showcase:vote:1", user=fake.make_user(name="ann"))
        await fake.wait_for(lambda: fake.requests_to(f"POST /interactions/{ann.id}/*"), what="ann's count")
        cid = await fake.click(post, "showcase:vote:1", user=fake.make_user(name="cid"))
        await cid.wait_callback()  # answered at once, whether its count is shown now or after ann's
        first_shown.set()
        await ann.wait_callback()
        await fake.wait_for(lambda: post.edits == 2, what="both counts to be shown")
        entry = await stack.bot.showcase.repo.get(1)

    assert entry.votes == 2 and vote_label(post) == "2"
    assert labels(post) == ["0", "1", "2"]


async def test_a_second_moderator_approving_while_the_first_approval_s_post_goes_up_does_not_post_it_twice(
        stacks: Stacks, showcase_channel):
    """The second approval found the video approved with no post yet on record, and posted it a second time."""
    async with stacks.run(showcase_channel_id=showcase_channel.id) as stack:
        fake = stack.fake
        first_mod, second_mod = (fake.make_user(roles=[fake.moderator_role]) for _ in range(2))
        await nominated(stack, fake.make_user(name="bob"))
        upload = f"POST /channels/{showcase_channel.id}/messages"
        release = fake.hold_next(upload)
        first = await fake.slash("videomod showcase approve", {"job": 1}, user=first_mod)
        await fake.wait_for(lambda: fake.requests_to(upload), what="the post to be on its way")
        second = await moderate(stack, second_mod, "approve", job=1)
        release.set()
        answer = (await first.wait_answer()).content
        posts = posts_in(stack, showcase_channel)
        entry = await stack.bot.showcase.repo.get(1)

    assert second == ("Job #1 was already approved but had no showcase post. It is being posted now, as another "
                      "moderator asked a moment ago.")
    assert answer.startswith("Approved job #1. Posted in ")
    assert len(posts) == 1 and entry.message_id == posts[0].id


@pytest.mark.parametrize("decision", ["approve", "reject"])
async def test_deciding_a_video_deleted_after_its_approval_says_it_was_deleted(stacks: Stacks, showcase_channel,
                                                                               decision: str):
    """The moderator read "Job #1 was already approved.", as if it were still in the showcase."""
    async with stacks.run(showcase_channel_id=showcase_channel.id) as stack:
        fake = stack.fake
        bob, result, post = await approved(stack, showcase_channel)
        await delete_result(fake, result, 1, bob)
        answer = await moderate(stack, fake.make_user(roles=[fake.moderator_role]), decision, job=1)
        entry = await stack.bot.showcase.repo.get(1)

    assert answer == "Job #1 was deleted; there is nothing to show."
    assert post.deleted and entry.state == ShowcaseState.APPROVED and entry.job_deleted


async def test_a_video_deleted_while_its_nomination_fetches_it_leaves_no_file(stacks: Stacks, monkeypatch):
    """⭐ on a result whose video was not kept fetches the MP4 from the message. 🗑 Delete, confirmed meanwhile, found
    no file to remove; then the nomination wrote the MP4 into MEDIA_DIR and was refused ("Job #1 was deleted."), and
    the deleted video's file stayed there."""
    async with stacks.run() as stack:
        fake, media = stack.fake, stack.bot.media
        bob = fake.make_user(name="bob")
        result = await (await video(fake, "a kite over the dunes", user=bob)).wait_followup(has_video)
        assert await media.delete(1)  # delivered before videos were kept: the nomination fetches it
        fetched, go_on = asyncio.Event(), asyncio.Event()
        save = media.save

        async def held_save(job_id: int, data: bytes):  # the nomination has the MP4 and is about to write it
            fetched.set()
            await go_on.wait()
            return await save(job_id, data)

        monkeypatch.setattr(media, "save", held_save)
        nomination = await fake.click(result, "video:showcase:1", user=fake.make_user(name="ann"))
        async with asyncio.timeout(10):  # no hang if the nomination never gets there
            await fetched.wait()
        deleted = await delete_result(fake, result, 1, bob)  # the whole deletion, in between
        go_on.set()
        refused = await nomination.wait_answer()
        entry = await stack.bot.showcase.repo.get(1)

    assert deleted.content == "🗑️ Deleted job #1."
    assert refused.ephemeral and refused.content == "Job #1 was deleted."
    assert entry is None
    assert not media.has(1) and not media.poster_path(1).exists()
