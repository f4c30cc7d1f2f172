"""/quota: the videos you have used and have left this period, when the allowance comes back, and any block."""

from __future__ import annotations

import logging

import discord
from discord import app_commands
from discord.ext import commands

from bot.moderation.rules import Moderation, QuotaStatus, block_message

log = logging.getLogger(__name__)

QUIET = discord.AllowedMentions.none()


def member_roles(user: discord.abc.User) -> tuple[int, ...]:
    """The role ids of a guild member (for role quota defaults); none for a plain user."""
    return tuple(role.id for role in getattr(user, "roles", ()))


def limit_source(status: QuotaStatus, *, own: bool) -> str:
    """Where a quota limit comes from, in words."""
    if status.source == "personal":
        return "a limit a moderator set for you" if own else "a personal limit"
    if status.source == "role":
        return f"the default of the role <@&{status.role_id}>"
    return "the server default"


async def quota_text(moderation: Moderation, user_id: int, role_ids: tuple[int, ...], *, own: bool) -> str:
    """Usage, what is left, the reset time, the limit's source and any block, for /quota and moderators."""
    status = await moderation.quota(user_id, role_ids)
    lines = [
        "**Your video quota**" if own else f"**Video quota of <@{user_id}>**",
        f"{status.describe()}.",
        f"{status.remaining} left · limit from {limit_source(status, own=own)}",
    ]
    block = await moderation.active_block(user_id)
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
        text = await quota_text(self.moderation, interaction.user.id, member_roles(interaction.user), own=True)
        await interaction.response.send_message(text, ephemeral=True, allowed_mentions=QUIET)
