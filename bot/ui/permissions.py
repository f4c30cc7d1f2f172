"""Who counts as a moderator of a server (Manage Server there, or the configured MOD_ROLE_ID), who may act as one on
a member's job (its server's moderators only: `moderates`), and who is one of the bot's operators
(OPERATOR_USER_IDS); checked in code, not only by Discord. Also what every moderators' command checks: the refusal of
a non-moderator (logged and audited), the server it runs in, and that a channel or role it names is that server's
own; and the audit-log row of a moderator's action on a member's job."""

from __future__ import annotations

import logging

import discord
from discord import app_commands

from bot.errors import InvalidInput
from bot.moderation.rules import Moderation
from bot.settings import Settings
from storage import GLOBAL, JobRecord

log = logging.getLogger(__name__)

AnyChannel = app_commands.AppCommandChannel | app_commands.AppCommandThread  # only the id is used: no cache needed


def is_moderator(member: discord.Member | discord.User, settings: Settings) -> bool:
    """True for a member with Manage Server (administrators have it) or the MOD_ROLE_ID role in the server the
    interaction came from: a moderator of that server only."""
    if not isinstance(member, discord.Member):  # a DM or a user outside the guild: no guild rights
        return False
    if member.guild_permissions.manage_guild:
        return True
    role_id = settings.mod_role_id
    return role_id is not None and any(role.id == role_id for role in member.roles)


def moderates(interaction: discord.Interaction, settings: Settings, guild_id: int | None) -> bool:
    """Whether the presser may act as a moderator on a member's job of server `guild_id` (🗑 Delete its result, ✖ Cancel
    it): a moderator of the server the interaction came from, and the job is that server's, never another server's
    (nor one of direct messages, where nobody moderates)."""
    return is_moderator(interaction.user, settings) and guild_id is not None and guild_id == interaction.guild_id


async def audit_on_job(moderation: Moderation | None, actor: int, action: str, job: JobRecord) -> None:
    """An audit-log row of the job's server for a moderator's action on a member's job ("result.delete",
    "job.cancel"); a failure to write it is logged, not shown."""
    if moderation is None or job.guild_id is None:
        return
    try:
        await moderation.audit(actor, action, f"job:{job.id}", {"requester": job.user_id}, guild_id=job.guild_id)
    except Exception:
        log.exception("could not audit %s by user %d", action, actor)


def is_operator(user: discord.Member | discord.User, settings: Settings) -> bool:
    """True for the bot's operators (OPERATOR_USER_IDS), in any server: they change what every server sees."""
    return user.id in settings.operator_user_ids


def not_a_moderator(command: str) -> str:
    """What someone without moderator rights is told when they try a moderators' command."""
    return f"{command} is for moderators only (Manage Server permission or the moderator role)."


def command_name(interaction: discord.Interaction, fallback: str = "/videomod") -> str:
    """The command an interaction ran, as typed ("/videomod quota set")."""
    return f"/{interaction.command.qualified_name}" if interaction.command else fallback


async def check_moderator(interaction: discord.Interaction, settings: Settings, moderation: Moderation | None, *,
                          target: str | None) -> bool:
    """Let the server's moderators through; log, audit (in that server's log) and refuse everyone else."""
    if is_moderator(interaction.user, settings):
        return True
    command = command_name(interaction)
    log.warning("user %d (%s) tried %s without moderator rights in server %s", interaction.user.id,
                interaction.user, command, interaction.guild_id)
    if moderation is not None:
        try:
            await moderation.audit(interaction.user.id, command, target, {"refused": "not a moderator"},
                                   guild_id=interaction.guild_id or GLOBAL, allowed=False)
        except Exception:
            log.exception("could not audit the refused %s by user %d", command, interaction.user.id)
    raise app_commands.CheckFailure(not_a_moderator(command))


def server(interaction: discord.Interaction) -> int:
    """The server a /videomod command was run in (the group is guild-only, so there is one)."""
    assert interaction.guild_id is not None, "/videomod is guild-only"
    return interaction.guild_id


def own_channel(interaction: discord.Interaction, channel: AnyChannel) -> int:
    """The id of a channel of the command's server; InvalidInput for another server's (Discord's client offers only
    the server's own, so this guards against forged requests; the cache knows the server's channels)."""
    if interaction.guild is None or interaction.guild.get_channel_or_thread(channel.id) is None:
        raise InvalidInput(f"<#{channel.id}> is not a channel of this server: pick one of its own.")
    return channel.id


def own_role(interaction: discord.Interaction, role: discord.Role) -> int:
    """The id of a role of the command's server; InvalidInput for another server's (as for channels)."""
    if interaction.guild is None or interaction.guild.get_role(role.id) is None:
        raise InvalidInput(f"<@&{role.id}> is not a role of this server: pick one of its own.")
    return role.id


def person(user: discord.abc.User) -> int:
    """The id of a user a moderator names for a block or a quota; InvalidInput for a bot (bots make no videos: a
    block or a quota of theirs would only clutter the lists)."""
    if user.bot:
        raise InvalidInput(f"<@{user.id}> is a bot: bots make no videos, so they need no block or quota.")
    return user.id
