"""Who counts as a moderator of a server (Manage Server there, or the configured MOD_ROLE_ID), and who is one of the
bot's operators (OPERATOR_USER_IDS); checked in code, not only by Discord."""

from __future__ import annotations

import logging

import discord

from bot.settings import Settings

log = logging.getLogger(__name__)


def is_moderator(member: discord.Member | discord.User, settings: Settings) -> bool:
    """True for a member with Manage Server (administrators have it) or the MOD_ROLE_ID role in the server the
    interaction came from: a moderator of that server only."""
    if not isinstance(member, discord.Member):  # a DM or a user outside the guild: no guild rights
        return False
    if member.guild_permissions.manage_guild:
        return True
    role_id = settings.mod_role_id
    return role_id is not None and any(role.id == role_id for role in member.roles)


def is_operator(user: discord.Member | discord.User, settings: Settings) -> bool:
    """True for the bot's operators (OPERATOR_USER_IDS), in any server: they change what every server sees."""
    return user.id in settings.operator_user_ids
