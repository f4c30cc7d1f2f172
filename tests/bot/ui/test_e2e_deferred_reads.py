"""/video answers Discord within its 3 s whatever the database takes: the interaction is deferred before the server's
presets and styles are read (a database read, the first /video in a server after a start), and a bad value found
once they are read is still answered privately.

The real discord.py client against the fake Discord; nothing sleeps: a read the test holds (HeldRead) stands for a
disk slow to serve it (SQLite under load).
"""

from __future__ import annotations

import asyncio
import sqlite3
from typing import Any

import pytest
from sqlalchemy.exc import OperationalError

from bot.gpu.models import ASPECTS
from bot.moderation.servers import PRESETS_KEY
from bot.moderation.styles import OFF_KEY
from tests.bot.conftest import Stacks
from tests.bot.helpers import STYLES, WAIT, StyledPipeline, has_video, styled_models, video

pytestmark = pytest.mark.usefixtures("logged_errors")

PROMPT = "a heron standing in a misty pond"
EPHEMERAL = 64  # Discord's message flag


class HeldRead:
    """A moderation repository's `setting` read of one key held, as a slow disk: each read of `key` is made
    (`reached`), then waits until the test sets `release`; reads of other keys go through."""

    def __init__(self, repo: Any, key: str) -> None:
        self.release = asyncio.Event()
        self._reached = asyncio.Event()
        read = repo.setting

        async def held(called_key: str, *args: Any, **kwargs: Any) -> Any:
            if called_key == key:
                self._reached.set()
                await self.release.wait()
            return await read(called_key, *args, **kwargs)

        repo.setting = held

    async def reached(self) -> None:
        await asyncio.wait_for(self._reached.wait(), WAIT)


@pytest.mark.parametrize("key", [PRESETS_KEY, OFF_KEY], ids=["presets read", "styles read"])
async def test_the_first_video_in_a_server_is_deferred_before_its_presets_and_styles_are_read(stacks: Stacks,
                                                                                                key: str):
    """The server's default style is stored before this start, so the first /video reads both (nothing is cached);
    while the read of `key` is held the member already sees the bot thinking, and once it is served the job queues
    and renders in the server's style."""
    pipeline = StyledPipeline()
    async with stacks.run(lambda device: styled_models(pipeline)) as stack:
        fake = stack.fake
        repo = stack.moderation.repo
        await repo.set_setting(PRESETS_KEY, {"style": "claymation"}, guild_id=fake.guild.id, by=1)
        reading = HeldRead(repo, key)
        handle = await video(fake, PROMPT)
        await reading.reached()
        deferred = await handle.wait_deferred()
        before = await stack.jobs()
        reading.release.set()
        result = await handle.wait_followup(has_video)
        job = await stack.job(1)

    assert deferred["type"] == 5 and not (deferred.get("data") or {}).get("flags", 0) & EPHEMERAL  # public thinking
    assert before == []  # nothing asked of the service before the read was served
    assert job.params["style"] == "claymation" and pipeline.started == [STYLES["claymation"].prompt(PROMPT)]
    assert result.content.startswith(f"<@{handle.record.user.id}> here is your video · job #1")


async def test_presets_the_database_cannot_serve_leave_a_private_try_again_and_no_placeholder(stacks: Stacks,
                                                                                              logged_errors):
    logged_errors.expect("/video by user")
    async with stacks.run() as stack:
        repo = stack.moderation.repo
        read = repo.setting

        async def locked(key: str, **kwargs: Any) -> Any:  # what a read past the lock's retries raises
            if key == PRESETS_KEY:
                raise OperationalError("SELECT setting", {}, sqlite3.OperationalError("database is locked"))
            return await read(key, **kwargs)

        repo.setting = locked
        handle = await video(stack.fake, PROMPT)
        deferred = await handle.wait_deferred()
        answer = await handle.wait_answer()
        jobs = await stack.jobs()

    assert deferred["type"] == 5 and handle.original is not None and handle.original.deleted  # the channel reads none
    assert answer.ephemeral and answer.content == ("The bot cannot reach its database right now; please try again "
                                                   "in a few minutes.")
    [record] = logged_errors.records
    assert record.getMessage().endswith("failed: the database cannot serve right now (database is locked)")
    assert jobs == []


@pytest.mark.parametrize("private", [False, True], ids=["public", "private"])
async def test_an_aspect_the_bot_no_longer_has_is_answered_privately_naming_it_and_nothing_is_recorded(
    stacks: Stacks, monkeypatch: pytest.MonkeyPatch, private: bool
):
    """Discord offers the aspects the commands were registered with; one this bot has not (a registration left by
    another version) is found once deferred and told to the member alone: a public placeholder goes, so the channel
    reads nothing."""
    async with stacks.run() as stack:
        monkeypatch.delitem(ASPECTS, "tiny")  # still among /video's registered choices
        handle = await video(stack.fake, PROMPT, private=private)
        deferred = await handle.wait_deferred()
        answer = await handle.wait_answer()
        jobs = await stack.jobs()

    assert bool((deferred.get("data") or {}).get("flags", 0) & EPHEMERAL) == private
    assert answer.ephemeral and answer.content == ("The aspect must be one of 1:1, 16:9, 9:16, 4:3, 3:4; you asked "
                                                   "for tiny.")  # it read "That option is not allowed: aspect='tiny' …"
    assert handle.original is not None and handle.original.deleted != private  # private: the placeholder says it
    assert jobs == []
