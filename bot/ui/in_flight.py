"""What a stop lets finish: discord.py runs each command and each button press in a task of its own that nothing
awaits; these hand that task to the bot (`VideoBot.finish_before_close`), whose close waits for it, so that none is
left holding a database session when the engine closes. Event listeners are kept by the bot itself."""

from __future__ import annotations

import asyncio
from typing import Any, Protocol, runtime_checkable

import discord
from discord import app_commands


@runtime_checkable
class Keeper(Protocol):
    """The bot: it keeps a task until it ends, and its close waits for the ones still running."""

    def finish_before_close(self, task: asyncio.Task[Any]) -> None: ...


def keep_running_task(client: discord.Client) -> None:
    """Hand the task running now (a command's, a press's) to `client` when it keeps them (the bot always does)."""
    task = asyncio.current_task()
    if task is not None and isinstance(client, Keeper):
        client.finish_before_close(task)


class KeptTree(app_commands.CommandTree[discord.Client]):
    """The bot's command tree: each command's task is kept until it ends (a /video storing its status id)."""

    async def interaction_check(self, interaction: discord.Interaction, /) -> bool:
        keep_running_task(interaction.client)
        return True


class KeptPresses:
    """Mixed in before discord.ui.DynamicItem: each press's task is kept until it ends (a 🗑 Delete's write)."""

    async def interaction_check(self, interaction: discord.Interaction, /) -> bool:
        keep_running_task(interaction.client)
        return True
