"""Running a real discord.py client against the fake for the length of a test."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import discord

from .server import FakeDiscord


@asynccontextmanager
async def running_bot(
    bot: discord.Client, fake: FakeDiscord, *, fast_ready: bool = True, timeout: float = 10.0
) -> AsyncIterator[discord.Client]:
    """login(), connect() in a task, wait for on_ready; close() and await the task on exit.

    fast_ready: discord.py fires on_ready only after guild_ready_timeout (2 s) passes without another
    GUILD_CREATE; the fake sends every guild at once, so a 50 ms wait loses nothing and saves 2 s a test.
    """
    if fast_ready:
        bot._connection.guild_ready_timeout = 0.05
    await bot.login(fake.token)
    connect = asyncio.create_task(bot.connect(reconnect=True), name="fake-discord-bot-connect")
    ready = asyncio.create_task(bot.wait_until_ready())
    try:
        done, _ = await asyncio.wait({connect, ready}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        if ready not in done:
            if connect in done:
                connect.result()  # re-raise why connect() gave up
            raise AssertionError(fake.describe(f"the bot was not ready after {timeout} s"))
        yield bot
    finally:
        ready.cancel()
        await bot.close()
        await asyncio.wait_for(connect, timeout)
