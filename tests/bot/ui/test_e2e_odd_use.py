"""/video's results used the way strangers use them: in a channel the bot may not see, in direct messages, with a
form left open across a restart."""

import pytest

from tests.bot.conftest import Stacks
from tests.bot.helpers import delete_result, has_video, video
from tests.fakediscord import action_row, button

pytestmark = pytest.mark.usefixtures("logged_errors")

PROMPT = "a hot air balloon over green hills"


async def test_delete_where_the_bot_may_not_see_the_channel_removes_the_message_or_says_who_can(stacks: Stacks):
    async with stacks.run() as stack:
        fake = stack.fake
        bob = fake.make_user(name="bob")
        fresh = await (await video(fake, PROMPT, user=bob)).wait_followup(has_video)
        older = await video(fake, "a red fox running through snow", user=bob)
        old = await older.wait_followup(has_video)
        await older.wait_original(lambda m: m.content.startswith("Finished"))
        fake.hide_channel(fake.channel)  # slash commands and their answers still work there, channel routes 403
        fake.expire_token(older)  # job 2's /video is past its 15 minutes
        deleted = await delete_result(fake, fresh, 1, bob)
        kept = await delete_result(fake, old, 2, bob)
        jobs = [await stack.job(1), await stack.job(2)]

    assert deleted.content == "🗑️ Deleted job #1." and fresh.deleted  # through /video's token
    assert kept.content == ("🗑️ Deleted job #2. The bot may not see this channel, so the message stays: a moderator "
                            "can delete it, or let the bot see the channel.")
    assert not old.deleted and all(job.deleted_at is not None for job in jobs)


async def test_an_edit_form_opened_before_a_restart_starts_its_job_after_it(stacks: Stacks):
    async with stacks.run() as stack:
        fake = stack.fake
        bob = fake.make_user(name="bob")
        result = await (await video(fake, PROMPT, user=bob, steps=2)).wait_followup(has_video)
        await (await fake.click(result, "video:edit:1", user=bob)).wait_modal()

    async with stacks.run() as stack:  # the form was open while the bot restarted
        submitted = await fake.submit_modal("video:edit-prompt:1", {"prompt": "a hot air balloon over a desert"},
                                            user=bob)
        edited = await submitted.wait_followup(has_video)
        job = await stack.job(2)

    assert "> a hot air balloon over a desert" in edited.content and "\n✏️ Edited prompt of job #1\n" in edited.content
    assert (job.prompt, job.params["steps"], job.params["edited_from"]) == ("a hot air balloon over a desert", 2, 1)


async def test_a_video_made_in_direct_messages_offers_no_showcase_button_it_could_only_refuse(stacks: Stacks):
    async with stacks.run() as stack:
        fake = stack.fake
        bob = fake.make_user(name="bob")
        asked = await fake.slash("video", {"prompt": PROMPT, "aspect": "tiny"}, user=bob, channel=fake.dm_channel(bob))
        result = await asked.wait_followup(has_video)
        forged = fake.seed_message("forged", channel=fake.dm_channel(bob),
                                   components=[action_row(button("video:showcase:1"))])
        refusal = await (await fake.click(forged, "video:showcase:1", user=bob)).wait_answer()

    assert result.custom_ids() == ["video:reroll:1", "video:edit:1", "video:delete:1"]
    assert refusal.content == ("Job #1 was made in direct messages; only videos made in a server can go to that "
                               "server's showcase.")
