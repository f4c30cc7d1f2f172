"""/video's results used the way strangers use them: in a channel the bot may not see, in direct messages, with a
form left open across a restart."""

import pytest

from tests.bot.conftest import Stacks
from tests.bot.helpers import delete_result, has_video, video

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
