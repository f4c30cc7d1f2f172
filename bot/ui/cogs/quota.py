"""/quota: the videos you have used and have left this period in this server, when the allowance comes back, any cap
the bot's operators set across every server, and any block."""

from __future__ import annotations

import logging

import discord
from discord import app_commands
from discord.ext import commands

from bot.moderation.rules import Moderation, QuotaStatus
from bot.moderation.text import block_message
from bot.ui.replies import QUIET

log = logging.getLogger(__name__)


def member_roles(user: discord.abc.User) -> tuple[int, ...]:
    """The role ids of a guild member (for role quota defaults); none for a plain user."""
    return tuple(role.id for role in getattr(user, "roles", ()))


def limit_source(status: QuotaStatus, *, own: bool) -> str:
    """Where a quota limit comes from, in words."""
    if status.source == "personal":
        return "a limit a moderator set for you" if own else "a personal limit"
    if status.source == "role":
        return f"the default of the role <@&{status.role_id}>"
    if status.source == "everywhere":
        return "the bot's operators, across every server"
    return "the server default" if status.source == "server" else "the bot's default"


async def quota_text(moderation: Moderation, user_id: int, role_ids: tuple[int, ...], guild_id: int | None, *,
                     own: bool, heading: str | None = None, cap: bool = True) -> str:
    """Usage, what is left, the reset time, the limit's source, any cap across every server (unless `cap` is False)
    and any block in a server (None: in direct messages), for /quota and moderators, under `heading` if given."""
    status = await moderation.quota(user_id, role_ids, guild_id)
    lines = [
        heading or ("**Your video quota**" if own else f"**Video quota of <@{user_id}>**"),
        f"{_none_allowed(status) if own and status.limit == 0 else status.describe()}.",
        f"{status.remaining} left · limit from {limit_source(status, own=own)}",
    ]
    everywhere = await moderation.quota_everywhere(user_id) if cap else None
    if everywhere is not None and own and everywhere.limit == 0:
        lines.append(f"Across every server: {_none_allowed(everywhere)}")
    elif everywhere is not None:
        lines.append(f"Across every server: {everywhere.describe()} ({everywhere.remaining} left)")
    block = await moderation.active_block(user_id, guild_id)
    if block is not None:
        text = block_message(block)
        lines.append(f"⛔ {text if own else text.replace('You are', 'They are', 1)}")
    return "\n".join(lines)


class QuotaCog(commands.Cog, name="Quota"):
    """The self-service /quota command."""

    def __init__(self, moderation: Moderation) -> None:
        self.moderation = moderation

    @app_commands.command(name="quota", description="How many videos you have left, and when your quota resets")
    async def quota(self, interaction: discord.Interaction) -> None:
        text = await quota_text(self.moderation, interaction.user.id, member_roles(interaction.user),
                                interaction.guild_id, own=True)
        await interaction.response.send_message(text, ephemeral=True, allowed_mentions=QUIET)


def _none_allowed(status: QuotaStatus) -> str:
    """A member's quota of 0, without the reset time: a new period brings no videos (the refusal says the same)."""
    return (f"Your quota is 0 videos per {status.period}, so you cannot make videos; a new {status.period} does not "
            "change that; ask a moderator if that seems wrong")
