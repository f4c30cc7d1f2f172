"""Who counts as a moderator: Manage Server, or the configured MOD_ROLE_ID (checked in code, not only by Discord)."""

from __future__ import annotations

import logging

import discord

from bot.settings import Settings

log = logging.getLogger(__name__)


def is_moderator(member: discord.Member | discord.User, settings: Settings) -> bool:
    """True for a guild member with Manage Server (administrators have it) or the MOD_ROLE_ID role."""
    if not isinstance(member, discord.Member):  # a DM or a user outside the guild: no guild rights
        return False
    if member.guild_permissions.manage_guild:
        return True
    role_id = settings.mod_role_id
    return role_id is not None and any(role.id == role_id for role in member.roles)
