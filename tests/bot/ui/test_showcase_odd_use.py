"""The showcase met the way moderators and members meet it when things are not as expected: a nomination whose
author is blocked by the time a moderator approves it, and a blocked member's ⭐."""

import pytest

from storage.records import ShowcaseState
from tests.bot.conftest import Stack, Stacks
from tests.bot.helpers import has_video, video
from tests.bot.moderation.test_videomod_odd_inputs import CATEGORY, FORUM, odd_channel
from tests.bot.ui.test_showcase import moderate, nominated, posts_in, vote_label
from tests.fakediscord import FakeChannel, FakeUser

pytestmark = pytest.mark.usefixtures("logged_errors")

HIDDEN = ("Approved job #1. Nothing was posted: its author is blocked (in this server or everywhere), so the video "
          "stays hidden from the showcase and the web gallery while the block holds; approve it again once the block "
          "ends to post it.")


async def blocked_then_approved(stack: Stack) -> tuple[FakeUser, FakeUser, str]:
    """Bob's video (job 1), nominated; bob blocked; then approved: (bob, the moderator, the approval's answer)."""
    fake = stack.fake
    bob, mod = fake.make_user(name="bob"), fake.make_user(name="mod", roles=[fake.moderator_role])
    await nominated(stack, bob)
    await (await fake.slash("videomod block", {"user": bob, "reason": "spam"}, user=mod)).wait_answer()
    return bob, mod, await moderate(stack, mod, "approve", job=1)


async def test_a_blocked_authors_video_approved_is_not_posted_until_the_block_ends(stacks: Stacks):
    """It was posted with a ⭐ that refused every press ("hidden for now"), and the moderator was told "Posted"."""
    showcase_channel: FakeChannel = stacks.fake.add_channel("showcase")
    async with stacks.run(showcase_channel_id=showcase_channel.id) as stack:
        fake = stack.fake
        bob, mod, approved = await blocked_then_approved(stack)
        posted_while_blocked = posts_in(stack, showcase_channel)
        entry = await stack.bot.showcase.repo.get(1)
        await (await fake.slash("videomod unblock", {"user": bob}, user=mod)).wait_answer()
        again = await moderate(stack, mod, "approve", job=1)
        [post] = posts_in(stack, showcase_channel)
        await (await fake.click(post, "showcase:vote:1", user=fake.make_user(name="ann"))).wait_callback()

    assert approved == HIDDEN and posted_while_blocked == []
    assert entry.state == ShowcaseState.APPROVED and entry.message_id is None  # decided, and hidden by the block
    assert again.startswith("Job #1 was already approved but had no showcase post. Posted in ")
    assert again.endswith(f"/{post.id}") and vote_label(post) == "1"


async def test_without_a_showcase_channel_a_blocked_authors_video_is_not_said_to_be_in_the_gallery(stacks: Stacks):
    async with stacks.run() as stack:
        _, _, approved = await blocked_then_approved(stack)
        shown = await stack.bot.showcase.repo.approved_count()

    assert approved == HIDDEN and shown == 0  # not "it appears in the web gallery only"


async def test_a_blocked_member_cannot_nominate_a_video(stacks: Stacks):
    """A nomination asks the moderators' time: a block (here, in this server) refuses it as it refuses /video."""
    async with stacks.run() as stack:
        fake = stack.fake
        ann, bob = fake.make_user(name="ann"), fake.make_user(name="bob")
        mod = fake.make_user(name="mod", roles=[fake.moderator_role])
        result = await (await video(fake, "a red kite over the sea", user=ann)).wait_followup(has_video)
        await (await fake.slash("videomod block", {"user": bob, "reason": "spam"}, user=mod)).wait_answer()
        refused = await (await fake.click(result, "video:showcase:1", user=bob)).wait_answer()
        entry = await stack.bot.showcase.repo.get(1)

    assert refused.ephemeral
    assert refused.content == "You are blocked from making videos: spam. A moderator can lift the block."
    assert entry is None


async def _anns_post(stack: Stack, showcase_channel: FakeChannel) -> tuple[FakeUser, FakeUser, object]:
    """Bob, a moderator and ann's approved showcase post."""
    fake = stack.fake
    bob, mod = fake.make_user(name="bob"), fake.make_user(name="mod", roles=[fake.moderator_role])
    await nominated(stack, fake.make_user(name="ann"))
    await moderate(stack, mod, "approve", job=1)
    [post] = posts_in(stack, showcase_channel)
    return bob, mod, post


async def test_a_blocked_member_cannot_vote_on_a_showcase_post(stacks: Stacks):
    """Bob, blocked, pressed ⭐ on ann's showcase post and his vote counted."""
    showcase_channel = stacks.fake.add_channel("showcase")
    async with stacks.run(showcase_channel_id=showcase_channel.id) as stack:
        fake = stack.fake
        bob, mod, post = await _anns_post(stack, showcase_channel)
        await (await fake.slash("videomod block", {"user": bob, "reason": "spam"}, user=mod)).wait_answer()
        refused = await (await fake.click(post, "showcase:vote:1", user=bob)).wait_answer()
        entry = await stack.bot.showcase.repo.get(1)

    assert refused.ephemeral
    assert refused.content == "You are blocked from making videos: spam. A moderator can lift the block."
    assert entry.votes == 0 and vote_label(post) == "0"


async def test_a_blocked_member_may_take_back_an_earlier_vote_but_not_vote_again(stacks: Stacks):
    """Bob voted, was blocked, and pressed ⭐ to take his vote back: he was refused as if voting anew, and his vote
    stayed counted for as long as the block held."""
    showcase_channel = stacks.fake.add_channel("showcase")
    async with stacks.run(showcase_channel_id=showcase_channel.id) as stack:
        fake = stack.fake
        bob, mod, post = await _anns_post(stack, showcase_channel)
        await (await fake.click(post, "showcase:vote:1", user=bob)).wait_callback()
        voted = vote_label(post)
        await (await fake.click(post, "showcase:vote:1", user=mod)).wait_callback()  # another's vote stays
        await (await fake.slash("videomod block", {"user": bob, "reason": "spam"}, user=mod)).wait_answer()
        taken_back = await (await fake.click(post, "showcase:vote:1", user=bob)).wait_callback()
        after_taking_back = vote_label(post)
        again = await (await fake.click(post, "showcase:vote:1", user=bob)).wait_answer()
        entry = await stack.bot.showcase.repo.get(1)

    assert voted == "1" and taken_back["type"] == 7  # the post's count edited, no refusal
    assert after_taking_back == "1" and entry.votes == 1 and vote_label(post) == "1"  # the moderator's vote alone
    assert again.ephemeral
    assert again.content == "You are blocked from making videos: spam. A moderator can lift the block."


@pytest.mark.parametrize("command", ["approve", "reject"])
async def test_a_job_number_past_what_the_jobs_table_holds_is_refused_as_typed(stacks: Stacks, command: str):
    """jobs.id is a 32-bit INTEGER: on PostgreSQL `/videomod showcase approve job:2147483648` reached the query and
    failed as "Something went wrong"; Discord now refuses it as typed, as it does for /cancel."""
    async with stacks.run() as stack:
        fake = stack.fake
        mod = fake.make_user(name="mod", roles=[fake.moderator_role])
        with pytest.raises(ValueError, match=r"outside \[1, 2147483647\]"):
            await fake.slash(f"videomod showcase {command}", {"job": 2**31}, user=mod)
        largest = await moderate(stack, mod, command, job=2**31 - 1)

    assert largest.startswith("Job #2147483647 ")


async def test_a_second_nomination_of_a_video_no_longer_kept_is_refused_without_fetching_it_again(stacks: Stacks):
    """⭐ on a video nominated before, whose kept file was removed since, downloaded the MP4 from the message into
    MEDIA_DIR again (a file the nomination does not need), then said it was already nominated."""
    async with stacks.run() as stack:
        fake = stack.fake
        result = await nominated(stack, fake.make_user(name="bob"))
        stack.bot.media.path(1).unlink()
        again = await (await fake.click(result, "video:showcase:1", user=fake.make_user())).wait_answer()

    assert again.content == "Job #1 was already nominated (pending)."
    assert not stack.bot.media.has(1)


@pytest.mark.parametrize(("kind", "called"), [(CATEGORY, "a category"), (FORUM, "a forum")])
async def test_a_category_or_forum_as_the_showcase_channel_is_refused_naming_it(stacks: Stacks, kind: int,
                                                                                 called: str):
    """It was set ("Set. Approved videos go to #…"), and every approval's post was then refused by Discord: a category
    or a forum takes no message of its own."""
    odd = odd_channel(stacks, "showcase", kind)
    async with stacks.run() as stack:
        fake = stack.fake
        mod = fake.make_user(name="mod", roles=[fake.moderator_role])
        answer = await (await fake.slash("videomod showcase channel", {"channel": odd}, user=mod)).wait_answer()
        where = await stack.bot.showcase.channel_for(fake.guild.id)

    assert answer.ephemeral and answer.content == (f"<#{odd.id}> is {called}, where the bot cannot post a message: "
                                                   "pick a text channel (or a thread) for the showcase.")
    assert where is None
