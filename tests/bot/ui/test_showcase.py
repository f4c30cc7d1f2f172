"""The showcase end to end: nominate with ⭐, moderators review with /videomod showcase, posts with credit and votes."""

import pytest

from storage.records import ShowcaseState
from tests.bot.conftest import Stack, Stacks
from tests.bot.helpers import InstantPipeline, delete_result, has_video, video
from tests.fakediscord import FakeChannel, FakeMessage, FakeUser

pytestmark = pytest.mark.usefixtures("logged_errors")

PROMPT = "a lighthouse keeper feeding seagulls"


async def nominated(stack: Stack, author: FakeUser, prompt: str = PROMPT) -> FakeMessage:
    """A result by `author`, nominated by another member; returns the result message."""
    fake = stack.fake
    result = await (await video(fake, prompt, user=author)).wait_followup(has_video)
    job_id = int(result.custom_ids()[0].rsplit(":", 1)[1])
    answer = await (await fake.click(result, f"video:showcase:{job_id}", user=fake.make_user())).wait_answer()
    assert answer.content.startswith(f"⭐ Job #{job_id} is nominated"), answer.content
    return result


async def moderate(stack: Stack, moderator: FakeUser, command: str, **options: object) -> str:
    """Run `/videomod showcase <command>` and return the private answer."""
    handle = await stack.fake.slash(f"videomod showcase {command}", options, user=moderator)
    answer = await handle.wait_answer()
    assert answer.ephemeral
    return answer.content


def posts_in(stack: Stack, channel: FakeChannel) -> list[FakeMessage]:
    return [m for m in stack.fake.messages.values() if m.channel_id == channel.id and not m.deleted]


def vote_label(message: FakeMessage) -> str:
    return message.components[0]["components"][0]["label"]


@pytest.fixture
def showcase_channel(stacks: Stacks) -> FakeChannel:
    return stacks.fake.add_channel("showcase")


async def test_approving_posts_the_video_with_credit_without_a_ping_and_a_vote_button(stacks: Stacks,
                                                                                      showcase_channel):
    async with stacks.run(showcase_channel_id=showcase_channel.id) as stack:
        fake = stack.fake
        mod = fake.make_user(name="mod", roles=[fake.moderator_role])
        await nominated(stack, fake.make_user(name="bob"))
        pending = await moderate(stack, mod, "pending")
        approved = await moderate(stack, mod, "approve", job=1)
        [post] = posts_in(stack, showcase_channel)
        entry = await stack.bot.showcase.repo.get(1)

    assert "job #1 by bob" in pending and PROMPT in pending
    assert approved.startswith("Approved job #1. Posted in ") and approved.endswith(f"/{post.id}")
    assert post.content.startswith("⭐ **Showcase** · job #1 · by bob") and f"> {PROMPT}" in post.content
    assert post.extra["allowed_mentions"] == {"parse": []}
    assert post.attachments[0].content_type == "video/mp4"
    assert post.custom_ids() == ["showcase:vote:1"] and vote_label(post) == "0"
    assert (entry.state, entry.message_id, entry.decided_by) == (ShowcaseState.APPROVED, post.id, mod.id)


async def test_with_a_public_gallery_address_the_post_links_the_video_s_page_without_a_preview(stacks: Stacks,
                                                                                               showcase_channel):
    async with stacks.run(showcase_channel_id=showcase_channel.id,
                          gallery_public_url="https://videos.example.org/") as stack:
        fake = stack.fake
        mod = fake.make_user(name="mod", roles=[fake.moderator_role])
        await nominated(stack, fake.make_user(name="bob"))
        await moderate(stack, mod, "approve", job=1)
        [post] = posts_in(stack, showcase_channel)
    assert post.content.endswith("[Open in the gallery](<https://videos.example.org/videos/1>)")
    assert post.flags & 4  # SUPPRESS_EMBEDS: the attached video is the preview


async def test_votes_toggle_one_per_member_and_the_count_is_shown(stacks: Stacks, showcase_channel):
    async with stacks.run(showcase_channel_id=showcase_channel.id) as stack:
        fake = stack.fake
        mod = fake.make_user(name="mod", roles=[fake.moderator_role])
        ann, cid = fake.make_user(name="ann"), fake.make_user(name="cid")
        await nominated(stack, fake.make_user(name="bob"))
        await moderate(stack, mod, "approve", job=1)
        [post] = posts_in(stack, showcase_channel)
        labels = []
        for voter in (ann, cid, ann):
            press = await fake.click(post, "showcase:vote:1", user=voter)
            await press.wait_callback()
            labels.append(vote_label(post))
        entry = await stack.bot.showcase.repo.get(1)

    assert labels == ["1", "2", "1"]
    assert press.callback_type == 7 and entry.votes == 1


async def test_votes_count_on_a_post_from_before_a_restart(stacks: Stacks, showcase_channel):
    async with stacks.run(showcase_channel_id=showcase_channel.id) as stack:
        fake = stack.fake
        await nominated(stack, fake.make_user(name="bob"))
        await moderate(stack, fake.make_user(roles=[fake.moderator_role]), "approve", job=1)
        [post] = posts_in(stack, showcase_channel)

    async with stacks.run(showcase_channel_id=showcase_channel.id) as stack:
        await (await stack.fake.click(post, "showcase:vote:1", user=stack.fake.make_user())).wait_callback()
        entry = await stack.bot.showcase.repo.get(1)

    assert vote_label(post) == "1" and entry.votes == 1


async def test_members_without_moderator_rights_cannot_review(stacks: Stacks, showcase_channel):
    async with stacks.run(showcase_channel_id=showcase_channel.id) as stack:
        fake = stack.fake
        eve = fake.make_user(name="eve")
        await nominated(stack, fake.make_user(name="bob"))
        answers = [await moderate(stack, eve, "pending"), await moderate(stack, eve, "approve", job=1)]
        entry = await stack.bot.showcase.repo.get(1)

    assert answers[0] == ("/videomod showcase pending is for moderators only (Manage Server permission or the "
                          "moderator role).")
    assert answers[1].startswith("/videomod showcase approve is for moderators only")
    assert entry.state == ShowcaseState.PENDING and posts_in(stack, showcase_channel) == []


async def test_the_moderator_role_setting_grants_review_rights(stacks: Stacks, showcase_channel):
    role = stacks.fake.add_role("Curators")
    async with stacks.run(showcase_channel_id=showcase_channel.id, mod_role_id=role.id) as stack:
        fake = stack.fake
        await nominated(stack, fake.make_user(name="bob"))
        curator = fake.make_user(name="cur", roles=[role])
        answer = await moderate(stack, curator, "reject", job=1, reason="  too\n dark ")
        entry = await stack.bot.showcase.repo.get(1)
        again = await moderate(stack, fake.make_user(name="cur2", roles=[role]), "approve", job=1)

    assert answer == "Rejected job #1."
    assert (entry.state, entry.reason) == (ShowcaseState.REJECTED, "too dark")
    assert again == "Job #1 was already rejected." and posts_in(stack, showcase_channel) == []


async def approved(stack: Stack, showcase_channel: FakeChannel) -> tuple[FakeUser, FakeMessage, FakeMessage]:
    """Bob's video (job 1), nominated and approved: (bob, his result message, its showcase post)."""
    fake = stack.fake
    bob = fake.make_user(name="bob")
    result = await nominated(stack, bob)
    await moderate(stack, fake.make_user(roles=[fake.moderator_role]), "approve", job=1)
    [post] = posts_in(stack, showcase_channel)
    return bob, result, post


async def test_deleting_an_approved_video_takes_its_showcase_post_down(stacks: Stacks, showcase_channel):
    async with stacks.run(showcase_channel_id=showcase_channel.id) as stack:
        bob, result, post = await approved(stack, showcase_channel)
        await delete_result(stack.fake, result, 1, bob)
        entry = await stack.bot.showcase.repo.get(1)

    assert post.deleted and entry.job_deleted and entry.message_id is None
    assert await stack.bot.showcase.repo.approved_count() == 0


async def test_a_video_its_owner_deletes_between_approval_and_post_is_not_posted(stacks: Stacks, showcase_channel,
                                                                                 monkeypatch):
    async with stacks.run(showcase_channel_id=showcase_channel.id) as stack:
        fake = stack.fake
        bob = fake.make_user(name="bob")
        result = await nominated(stack, bob)
        repo = stack.bot.showcase.repo
        decide = repo.decide

        async def decided_then_deleted(*args: object, **kwargs: object) -> object:
            entry = await decide(*args, **kwargs)  # type: ignore[arg-type]
            assert (await delete_result(fake, result, 1, bob)).content == "🗑️ Deleted job #1."
            return entry

        monkeypatch.setattr(repo, "decide", decided_then_deleted)
        answer = await moderate(stack, fake.make_user(roles=[fake.moderator_role]), "approve", job=1)
        entry = await repo.get(1)

    assert answer == "Approved job #1. Nothing was posted: the video was deleted meanwhile (by its requester or a " \
                     "moderator)."
    assert posts_in(stack, showcase_channel) == [] and not stack.bot.media.has(1)
    assert entry.job_deleted and entry.message_id is None and await repo.approved_count() == 0


async def test_a_nomination_whose_file_is_gone_is_not_approved_and_stays_pending_until_it_is_back(
        stacks: Stacks, showcase_channel):
    """It was approved and listed in the gallery, whose tile would not play (and a post, had the file gone later); the
    pending list did not say which nominations could not be approved."""
    async with stacks.run(showcase_channel_id=showcase_channel.id) as stack:
        fake, repo = stack.fake, stack.bot.showcase.repo
        mod = fake.make_user(roles=[fake.moderator_role])
        await nominated(stack, fake.make_user(name="bob"))
        await nominated(stack, fake.make_user(name="cid"), "a kite over a beach")
        kept = stack.bot.media.path(1)
        aside = kept.rename(kept.with_name("aside.mp4"))  # removed by hand from MEDIA_DIR
        pending = await moderate(stack, mod, "pending")
        refused = await moderate(stack, mod, "approve", job=1)
        entry, listed = await repo.get(1), await repo.approved_count()
        aside.rename(kept)  # and put back
        pending_again = await moderate(stack, mod, "pending")
        again = await moderate(stack, mod, "approve", job=1)
        [post] = posts_in(stack, showcase_channel)

    assert refused == ("Job #1 was not approved: its video file is gone from the bot's media folder, so its post "
                       "would not play. It stays nominated: reject it, or approve it again once the file is back.")
    assert entry.state == ShowcaseState.PENDING and entry.decided_by is None and listed == 0
    gone = "⚠️ Its video file is gone from the bot's media folder, so it cannot be approved until the file is back."
    _, bob_s, cid_s = pending.split("\n• ")
    assert "job #1 by bob" in bob_s and gone in bob_s and "job #2 by cid" in cid_s and gone not in cid_s
    assert "job #1 by bob" in pending_again and gone not in pending_again
    assert again.startswith("Approved job #1. Posted in ") and again.endswith(f"/{post.id}")


async def test_a_video_deleted_while_its_showcase_post_goes_up_is_taken_down_again(stacks: Stacks, showcase_channel):
    async with stacks.run(showcase_channel_id=showcase_channel.id) as stack:
        fake = stack.fake
        bob = fake.make_user(name="bob")
        result = await nominated(stack, bob)
        upload = f"POST /channels/{showcase_channel.id}/messages"
        release = fake.hold_next(upload)
        handle = await fake.slash("videomod showcase approve", {"job": 1},
                                  user=fake.make_user(roles=[fake.moderator_role]))
        await fake.wait_for(lambda: fake.requests_to(upload), what="the showcase post to be on its way")
        await delete_result(fake, result, 1, bob)  # its withdrawal finds no post yet
        release.set()
        answer = await handle.wait_answer()
        entry = await stack.bot.showcase.repo.get(1)

    assert answer.content == ("Approved job #1. Nothing stays posted: the video was deleted while its post went up "
                              "(by its requester or a moderator), so the post was taken down.")
    assert posts_in(stack, showcase_channel) == [] and entry.job_deleted and entry.message_id is None


@pytest.mark.parametrize(("status", "code"), [(403, 50001), (503, 0)])  # the bot lost the channel; Discord down
async def test_a_showcase_post_that_cannot_be_taken_down_still_lets_its_result_be_deleted(
        stacks: Stacks, showcase_channel, caplog, status: int, code: int):
    async with stacks.run(showcase_channel_id=showcase_channel.id) as stack:
        bob, result, post = await approved(stack, showcase_channel)
        stack.fake.fail_next(f"DELETE /channels/{showcase_channel.id}/messages/{post.id}", status, code=code)
        answer = await delete_result(stack.fake, result, 1, bob)
        entry = await stack.bot.showcase.repo.get(1)

    link = f"https://discord.com/channels/{stack.fake.guild.id}/{showcase_channel.id}/{post.id}"
    assert answer.content == ("🗑️ Deleted job #1. Its showcase post could not be taken down; a moderator can delete "
                              f"it: {link}")
    assert result.deleted and entry.job_deleted and not post.deleted and entry.message_id == post.id
    assert f"showcase post {post.id} of job 1 could not be taken down" in caplog.text


def forgetting(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> list[int | None]:
    """The channels whose gone posts the bot has forgotten so far (None: none yet), as each forgetting ends."""
    showcase, done = stack.bot.showcase, []
    forget = showcase.forget

    async def forgotten(channel_id: int, message_ids: list[int] | None = None) -> None:
        await forget(channel_id, message_ids)
        done.append(channel_id)
        stack.fake.notify()

    monkeypatch.setattr(showcase, "forget", forgotten)
    return done


async def test_a_post_deleted_by_hand_leaves_no_link_and_approving_the_video_again_posts_it_anew(
        stacks: Stacks, showcase_channel, monkeypatch):
    async with stacks.run(showcase_channel_id=showcase_channel.id) as stack:
        fake, repo = stack.fake, stack.bot.showcase.repo
        mod = fake.make_user(roles=[fake.moderator_role])
        _, _, post = await approved(stack, showcase_channel)
        standing = await moderate(stack, mod, "approve", job=1)
        forgotten = forgetting(stack, monkeypatch)
        await fake.delete_by_hand(post)  # a moderator deletes it in Discord: MESSAGE_DELETE
        await fake.wait_for(lambda: forgotten, what="the deleted post to be forgotten")
        shown = await repo.shown(1)  # what the gallery's page of the video reads
        again = await moderate(stack, mod, "approve", job=1)
        [new] = posts_in(stack, showcase_channel)
        entry = await repo.get(1)

    assert standing == "Job #1 was already approved."
    assert shown is not None and (shown.channel_id, shown.message_id) == (None, None)
    assert again == (f"Job #1 was already approved but had no showcase post. Posted in <#{showcase_channel.id}>: "
                     f"https://discord.com/channels/{fake.guild.id}/{showcase_channel.id}/{new.id}")
    assert new.id != post.id and entry.message_id == new.id and entry.state == ShowcaseState.APPROVED


async def test_two_moderators_approving_a_video_whose_post_is_gone_post_it_once(stacks: Stacks, showcase_channel,
                                                                                monkeypatch):
    async with stacks.run(showcase_channel_id=showcase_channel.id) as stack:
        fake = stack.fake
        first_mod, second_mod = (fake.make_user(roles=[fake.moderator_role]) for _ in range(2))
        _, _, post = await approved(stack, showcase_channel)
        forgotten = forgetting(stack, monkeypatch)
        await fake.delete_by_hand(post)
        await fake.wait_for(lambda: forgotten, what="the deleted post to be forgotten")
        upload = f"POST /channels/{showcase_channel.id}/messages"
        posted = len(fake.requests_to(upload))  # the first post's
        release = fake.hold_next(upload)
        first = await fake.slash("videomod showcase approve", {"job": 1}, user=first_mod)
        await fake.wait_for(lambda: len(fake.requests_to(upload)) > posted, what="the new post to be on its way")
        second = await moderate(stack, second_mod, "approve", job=1)  # while the first one's post goes up
        release.set()
        answer = (await first.wait_answer()).content
        posts = posts_in(stack, showcase_channel)

    assert second == ("Job #1 was already approved but had no showcase post. It is being posted now, as another "
                      "moderator asked a moment ago.")
    assert answer.startswith("Job #1 was already approved but had no showcase post. Posted in ")
    assert len(posts) == 1 and posts[0].id != post.id


async def test_a_post_deleted_while_the_bot_was_offline_is_found_gone_when_its_video_is_deleted_or_approved_again(
        stacks: Stacks, showcase_channel):
    async with stacks.run(showcase_channel_id=showcase_channel.id) as stack:
        bob, result, _ = await approved(stack, showcase_channel)
        await nominated(stack, bob, "a second lighthouse at dawn")
        await moderate(stack, stack.fake.make_user(roles=[stack.fake.moderator_role]), "approve", job=2)
        posts = posts_in(stack, showcase_channel)
    stacks.fake.delete_while_away(*posts)  # no session of the bot was there to get the MESSAGE_DELETE
    looking = stacks.fake.hold_next("GET /channels/*/messages")  # the start's own look for them comes later

    async with stacks.run(showcase_channel_id=showcase_channel.id) as stack:
        fake = stack.fake
        deleted = await delete_result(fake, result, 1, bob)
        again = await moderate(stack, fake.make_user(roles=[fake.moderator_role]), "approve", job=2)
        looking.set()
        await stack.bot.post_check  # and forgets nothing more: the new post stands
        [new] = posts_in(stack, showcase_channel)
        entries = [await stack.bot.showcase.repo.get(job) for job in (1, 2)]

    assert deleted.content == "🗑️ Deleted job #1. Its showcase post was already gone."
    assert again.startswith("Job #2 was already approved but had no showcase post. Posted in ")
    assert [(e.job_deleted, e.message_id) for e in entries] == [(True, None), (False, new.id)]


async def test_a_vote_on_a_post_deleted_while_the_press_was_on_its_way_counts_and_says_the_post_is_gone(
        stacks: Stacks, showcase_channel):
    async with stacks.run(showcase_channel_id=showcase_channel.id) as stack:
        fake = stack.fake
        _, _, post = await approved(stack, showcase_channel)
        shown = fake.hold_next("POST /interactions/*/callback")  # the new count, on its way
        press = await fake.click(post, "showcase:vote:1", user=fake.make_user(name="ann"))
        await fake.wait_for(lambda: fake.requests_to(f"POST /interactions/{press.id}/*"), what="the vote's answer")
        await fake.delete_by_hand(post)
        shown.set()
        answer = await press.wait_answer()
        entry = await stack.bot.showcase.repo.get(1)

    assert answer.ephemeral and answer.content == ("Voted for job #1 (1 vote), but this showcase post has been "
                                                   "deleted, so it cannot show the count.")
    assert entry.votes == 1 and entry.message_id is None


async def test_a_blocked_authors_post_takes_no_votes_while_the_block_holds(stacks: Stacks, showcase_channel):
    async with stacks.run(showcase_channel_id=showcase_channel.id) as stack:
        fake = stack.fake
        bob, _, post = await approved(stack, showcase_channel)
        mod = fake.make_user(roles=[fake.moderator_role])
        await (await fake.slash("videomod block", {"user": bob, "reason": "spam"}, user=mod)).wait_answer()
        refused = await (await fake.click(post, "showcase:vote:1", user=fake.make_user(name="ann"))).wait_answer()
        await (await fake.slash("videomod unblock", {"user": bob}, user=mod)).wait_answer()
        counted = await fake.click(post, "showcase:vote:1", user=fake.make_user(name="cid"))
        await counted.wait_callback()
        entry = await stack.bot.showcase.repo.get(1)

    assert refused.ephemeral and refused.content == ("This video is hidden from the showcase for now, so it takes no "
                                                     "votes.")
    assert vote_label(post) == "1" and entry.votes == 1


async def test_posts_deleted_while_the_bot_was_away_are_forgotten_at_the_next_start(stacks: Stacks,
                                                                                     showcase_channel):
    async with stacks.run(showcase_channel_id=showcase_channel.id) as stack:
        fake = stack.fake
        mod = fake.make_user(roles=[fake.moderator_role])
        bob, _, first = await approved(stack, showcase_channel)
        for n in range(150):  # the members' chatter between the posts: the history is read in pages of 100
            fake.seed_message(f"nice {n}", channel=showcase_channel, author=bob)
        for job, prompt in ((2, "a second lighthouse at dawn"), (3, "a third lighthouse at dusk")):
            await nominated(stack, bob, prompt)
            await moderate(stack, mod, "approve", job=job)
        second, third = [post for post in posts_in(stack, showcase_channel) if post.author is fake.bot_user][1:]
    for n in range(150):  # and after them, never read
        fake.seed_message(f"great {n}", channel=showcase_channel, author=bob)
    fake.delete_while_away(first, third)

    async with stacks.run(showcase_channel_id=showcase_channel.id) as stack:
        await stack.bot.post_check
        entries = [await stack.bot.showcase.repo.get(job) for job in (1, 2, 3)]
        again = await moderate(stack, mod, "approve", job=1)
        reads = stack.fake.requests_to(f"GET /channels/{showcase_channel.id}/messages")

    assert [entry.message_id for entry in entries] == [None, second.id, None]
    assert [entry.state for entry in entries] == [ShowcaseState.APPROVED] * 3
    assert again.startswith("Job #1 was already approved but had no showcase post. Posted in ")
    assert len(reads) == 2  # read up to the newest post, not the chatter after it


async def test_a_channel_whose_history_the_bot_may_not_read_keeps_its_posts_on_record(stacks: Stacks,
                                                                                       showcase_channel):
    async with stacks.run(showcase_channel_id=showcase_channel.id) as stack:
        await approved(stack, showcase_channel)
    stacks.fake.deny_history(showcase_channel)  # Discord then lists no message, without an error

    async with stacks.run(showcase_channel_id=showcase_channel.id) as stack:
        await stack.bot.post_check
        entry = await stack.bot.showcase.repo.get(1)

    assert entry.message_id is not None


async def test_a_showcase_channel_deleted_while_the_bot_was_away_forgets_its_posts_and_a_hidden_one_keeps_them(
        stacks: Stacks, showcase_channel):
    hidden = stacks.fake.add_channel("hidden showcase")
    async with stacks.run(showcase_channel_id=showcase_channel.id) as stack:
        fake = stack.fake
        mod = fake.make_user(roles=[fake.moderator_role])
        bob, _, _ = await approved(stack, showcase_channel)
        await (await fake.slash("videomod showcase channel", {"channel": hidden}, user=mod)).wait_answer()
        await nominated(stack, bob, "a second lighthouse at dawn")
        await moderate(stack, mod, "approve", job=2)
    await fake.delete_channel(showcase_channel, away=True)
    fake.hide_channel(hidden)

    async with stacks.run() as stack:
        await stack.bot.post_check
        entries = [await stack.bot.showcase.repo.get(job) for job in (1, 2)]

    assert entries[0].message_id is None
    assert entries[1].message_id is not None and entries[1].channel_id == hidden.id


async def test_a_deleted_showcase_channel_forgets_its_posts_and_the_next_approval_says_it_is_gone(
        stacks: Stacks, showcase_channel, monkeypatch):
    async with stacks.run() as stack:
        fake = stack.fake
        mod = fake.make_user(roles=[fake.moderator_role])
        await (await fake.slash("videomod showcase channel", {"channel": showcase_channel}, user=mod)).wait_answer()
        bob, _, _ = await approved(stack, showcase_channel)
        forgotten = forgetting(stack, monkeypatch)
        await fake.delete_channel(showcase_channel)  # CHANNEL_DELETE
        await fake.wait_for(lambda: forgotten, what="the channel's posts to be forgotten")
        await nominated(stack, bob, "a second lighthouse at dawn")
        answer = await moderate(stack, mod, "approve", job=2)
        entries = [await stack.bot.showcase.repo.get(job) for job in (1, 2)]

    assert answer == (f"Approved job #2. Posting it to <#{showcase_channel.id}> failed: that channel no longer exists "
                      "(`/videomod showcase channel` picks another); it is in the web gallery.")
    assert [(e.state, e.message_id) for e in entries] == [(ShowcaseState.APPROVED, None)] * 2
    assert await stack.bot.showcase.repo.approved_count() == 2


async def test_a_showcase_channel_the_bot_lost_is_named_and_its_posts_stay_on_record(stacks: Stacks,
                                                                                     showcase_channel):
    async with stacks.run(showcase_channel_id=showcase_channel.id) as stack:
        fake = stack.fake
        mod = fake.make_user(roles=[fake.moderator_role])
        bob, _, post = await approved(stack, showcase_channel)
        fake.hide_channel(showcase_channel)  # 403 Missing Access from now on
        await nominated(stack, bob, "a second lighthouse at dawn")
        refused = await moderate(stack, mod, "approve", job=2)
        again = await moderate(stack, mod, "approve", job=1)
        entry = await stack.bot.showcase.repo.get(1)

    assert refused == (f"Approved job #2. Posting it to <#{showcase_channel.id}> failed: the bot cannot post there "
                       "(`/videomod showcase channel` picks another); it is in the web gallery.")
    assert again == "Job #1 was already approved." and entry.message_id == post.id


async def test_a_post_discord_did_not_take_is_posted_when_the_video_is_approved_again(stacks: Stacks,
                                                                                       showcase_channel, logged_errors):
    logged_errors.expect("showcase entry 1: posting to channel")
    async with stacks.run(showcase_channel_id=showcase_channel.id) as stack:
        fake = stack.fake
        mod = fake.make_user(roles=[fake.moderator_role])
        await nominated(stack, fake.make_user(name="bob"))
        fake.fail_next(f"POST /channels/{showcase_channel.id}/messages", 503)
        failed = await moderate(stack, mod, "approve", job=1)
        again = await moderate(stack, mod, "approve", job=1)
        [post] = posts_in(stack, showcase_channel)

    assert failed == (f"Approved job #1. Posting it to <#{showcase_channel.id}> failed (Discord did not take it); it "
                      "is in the web gallery, and approving it again tries once more.")
    assert again.startswith("Job #1 was already approved but had no showcase post. Posted in ")
    assert again.endswith(f"/{post.id}")


async def test_mentions_in_a_showcased_prompt_never_ping(stacks: Stacks, showcase_channel):
    prompt = "@everyone a cat with <@123456789012345678> and <@&223456789012345678> dancing"
    async with stacks.run(showcase_channel_id=showcase_channel.id) as stack:
        fake = stack.fake
        await nominated(stack, fake.make_user(name="bob"), prompt)
        await moderate(stack, fake.make_user(roles=[fake.moderator_role]), "approve", job=1)
        [post] = posts_in(stack, showcase_channel)

    assert post.extra["allowed_mentions"] == {"parse": []}
    assert "@\u200beveryone" in post.content and "<@123456789012345678>" not in post.content


async def test_without_a_showcase_channel_approval_lists_the_video_in_the_gallery_only(stacks: Stacks):
    async with stacks.run() as stack:
        fake = stack.fake
        await nominated(stack, fake.make_user(name="bob"))
        answer = await moderate(stack, fake.make_user(roles=[fake.moderator_role]), "approve", job=1)
        page = await stack.bot.showcase.repo.approved_page(1, 10)

    assert answer == ("Approved job #1. This server has no showcase channel (`/videomod showcase channel` sets one), "
                      "so it appears in the web gallery only.")
    assert [e.job_id for e in page] == [1]


async def test_a_video_is_nominated_once_and_unknown_jobs_are_named(stacks: Stacks):
    async with stacks.run() as stack:
        fake = stack.fake
        result = await nominated(stack, fake.make_user(name="bob"))
        again = await (await fake.click(result, "video:showcase:1", user=fake.make_user())).wait_answer()
        unknown = await moderate(stack, fake.make_user(roles=[fake.moderator_role]), "approve", job=42)

    assert again.content == "Job #1 was already nominated (pending)."
    assert unknown == "Job #42 has not been nominated for the showcase."


async def test_decisions_and_refused_reviews_are_audited(stacks: Stacks):
    async with stacks.run() as stack:
        fake = stack.fake
        mod, eve = fake.make_user(name="mod", roles=[fake.moderator_role]), fake.make_user(name="eve")
        await nominated(stack, fake.make_user(name="bob"))
        await nominated(stack, fake.make_user(name="bob"), "a second lighthouse at dawn")
        await moderate(stack, eve, "approve", job=1)
        await moderate(stack, mod, "approve", job=1)
        await moderate(stack, mod, "reject", job=2, reason="duplicate")
        rows = await stack.moderation.repo.latest_audit(5, guild_id=fake.guild.id)

    assert [(r.actor_id, r.action, r.target, r.allowed) for r in reversed(rows)] == [
        (eve.id, "/videomod showcase approve", None, False),
        (mod.id, "showcase.approve", "job:1", True),
        (mod.id, "showcase.reject", "job:2", True),
    ]
    assert rows[0].details == {"reason": "duplicate"}


async def test_a_long_pending_list_fits_one_message_and_says_how_many_more_wait(stacks: Stacks):
    prompt = ("a lighthouse keeper feeding seagulls on a windy grey morning while tall waves break over the black "
              "rocks below, his yellow coat flapping, a small red boat tied to the pier and rain rolling in from sea")
    async with stacks.run(lambda device: InstantPipeline()) as stack:
        fake = stack.fake
        bob = fake.make_user(name="bob")
        for _ in range(16):
            await nominated(stack, bob, prompt)
        pending = await moderate(stack, fake.make_user(roles=[fake.moderator_role]), "pending")

    head, *entries, tail = pending.split("\n• ")
    listed = len(entries) + 1  # the tail's part opens with the last entry listed
    assert len(pending) <= 2000 and head == "Waiting for a decision (`/videomod showcase approve job:N`):"
    assert [entry.split(" ", 2)[1] for entry in [*entries, tail]] == [f"#{n}" for n in range(1, listed + 1)]
    assert tail.endswith(f"\n… and {16 - listed} more") and 16 - listed > 0
