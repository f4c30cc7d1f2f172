"""`/videomod operator ...`: what holds above every server, for the bot's operators (OPERATOR_USER_IDS) only.

Operators run these from any server: the servers the bot is in, the bot's default quota (for servers that set
none), a user's cap and block across every server and their usage in direct messages, the shared denylist and
allowlist, and every server's stats and audit log. Anyone else — a server's moderators included — is refused, and
the attempt is logged and written to the operators' audit log. Discord allows two levels under /videomod, so the
names are flat (`denylist-add`).
"""

from __future__ import annotations

import logging
from datetime import timedelta

import discord
from discord import app_commands

from bot.characters import counted, shown
from bot.moderation.denylist_edits import DenylistEditor
from bot.moderation.rules import PERIOD_TEXT, STATS_WINDOWS, Moderation
from bot.settings import MAX_QUOTA, Settings, is_snowflake
from bot.ui.cogs import moderation_denylist as lists
from bot.ui.cogs import moderation_text as text
from bot.ui.cogs.moderation import BLOCK_HELP, PERIODS, BlockDuration, BlockReason, CancelJobs, Limit, block_and_stop
from bot.ui.cogs.quota import quota_text
from bot.ui.permissions import command_name, is_operator, person
from bot.ui.replies import reply
from storage import GLOBAL

log = logging.getLogger(__name__)

SERVERS_WINDOW = timedelta(days=30)  # `operator servers` counts requests this far back


def not_an_operator(command: str) -> str:
    """What anyone but an operator is told when they try an operators' command."""
    return f"{command} is for the bot's operators only; a server's moderators use /videomod."


class OperatorGroup(app_commands.Group):
    """The operators' subcommands, attached under /videomod by the client; each acts on every server (GLOBAL)."""

    def __init__(self, bot: discord.Client, settings: Settings, moderation: Moderation,
                 editor: DenylistEditor, cancel_jobs: CancelJobs) -> None:
        super().__init__(name="operator", description="The bot's operators: settings above every server")
        self.bot = bot
        self.settings = settings
        self.moderation = moderation
        self.editor = editor
        self.cancel_jobs = cancel_jobs  # a blocked user's videos stop with the block, in every server

    async def interaction_check(self, interaction: discord.Interaction) -> bool:
        """Operators only, checked in code; refused attempts are logged and audited in the operators' log."""
        if is_operator(interaction.user, self.settings):
            return True
        command = command_name(interaction, "/videomod operator")
        log.warning("user %d (%s) tried %s in server %s without being an operator", interaction.user.id,
                    interaction.user, command, interaction.guild_id)
        try:
            await self.moderation.audit(interaction.user.id, command, f"server:{interaction.guild_id}",
                                        {"refused": "not an operator"}, guild_id=GLOBAL, allowed=False)
        except Exception:
            log.exception("could not audit the refused %s by user %d", command, interaction.user.id)
        raise app_commands.CheckFailure(not_an_operator(command))

    @app_commands.command(name="servers", description="The servers the bot is in, with their requests")
    async def servers(self, interaction: discord.Interaction) -> None:
        usage = await self.moderation.repo.server_usage(self.moderation.now() - SERVERS_WINDOW)
        names = {guild.id: guild.name for guild in self.bot.guilds}
        await reply(interaction, text.servers(usage, names, self.settings.allowed_guild_ids, SERVERS_WINDOW.days))

    # --- quotas and blocks above the servers ------------------------------------------------------------------

    @app_commands.command(name="quota-default", description="The bot's default quota, for servers that set none")
    @app_commands.describe(limit=f"Videos per period, 0–{MAX_QUOTA}", period="Calendar periods in UTC")
    @app_commands.choices(period=PERIODS)
    async def quota_default(self, interaction: discord.Interaction, limit: Limit, period: str | None = None) -> None:
        default = await self.moderation.set_default(interaction.user.id, limit, guild_id=GLOBAL, period=period)
        quota = f"{counted(limit, 'video')} per {default.period}"
        await reply(interaction, f"The bot's default quota: {quota}, in every server "
                                 "that has no default of its own, and in direct messages.")

    @app_commands.command(name="quota-default-clear",
                          description="Remove the default set with quota-default: the bot's settings apply again")
    async def quota_default_clear(self, interaction: discord.Interaction) -> None:
        """Without it a default set once would hide QUOTA_DEFAULT and QUOTA_PERIOD for good, however they change."""
        removed = await self.moderation.clear_default(interaction.user.id, guild_id=GLOBAL)
        default = await self.moderation.default_quota(GLOBAL)
        head = "The bot's default quota set with quota-default was removed" if removed else (
            "No default quota was set with quota-default")
        await reply(interaction, f"{head}; QUOTA_DEFAULT and QUOTA_PERIOD apply: {counted(default.limit, 'video')} "
                                 f"per {default.period}.")

    @app_commands.command(name="quota-set", description="Cap a user's videos across every server")
    @app_commands.describe(user="Whose cap", limit=f"Videos per period, 0–{MAX_QUOTA}, all servers together")
    async def quota_set(self, interaction: discord.Interaction, user: discord.User, limit: Limit) -> None:
        await self.moderation.set_limit(interaction.user.id, person(user), limit, guild_id=GLOBAL)
        await reply(interaction, f"Cap set across every server.\n{await self._cap_text(user.id)}")

    @app_commands.command(name="quota-clear", description="Remove a user's cap across every server")
    @app_commands.describe(user="Whose cap to remove")
    async def quota_clear(self, interaction: discord.Interaction, user: discord.User) -> None:
        removed = await self.moderation.clear_limit(interaction.user.id, user.id, guild_id=GLOBAL)
        head = "Cap removed." if removed else f"<@{user.id}> had no cap across every server."
        await reply(interaction, f"{head}\n{await self._cap_text(user.id)}")

    @app_commands.command(name="quota-reset",
                          description="Count a user's videos in direct messages and under their cap from now on")
    @app_commands.describe(user="Whose count starts again from zero")
    async def quota_reset(self, interaction: discord.Interaction, user: discord.User) -> None:
        cap = await self.moderation.quota_everywhere(user.id)
        direct = await self.moderation.quota(user.id, (), None)
        if cap is None and direct.used == 0:  # a reset would change nothing they could see
            await reply(interaction, f"<@{user.id}> has no cap across every server and no videos counted in direct "
                                     f"messages {PERIOD_TEXT[direct.period]}, so there is nothing to reset: each "
                                     "server's moderators give a fresh allowance there with `/videomod quota reset`.")
            return
        await self.moderation.reset_usage(interaction.user.id, user.id, guild_id=GLOBAL)
        where = "in direct messages" if cap is None else "in direct messages and under their cap across every server"
        await reply(interaction, f"Usage reset {where}: only videos from now on count (each server's own count "
                                 f"stays).\n{await self._cap_text(user.id)}")

    @app_commands.command(name="quota-show", description="A user's cap across every server, or the bot's default")
    @app_commands.describe(user="Whose cap; leave out for the bot's default quota")
    async def quota_show(self, interaction: discord.Interaction, user: discord.User | None = None) -> None:
        if user is None:
            await reply(interaction, text.defaults(await self.moderation.default_quota(GLOBAL), []))
            return
        await reply(interaction, await self._cap_text(user.id))

    async def _cap_text(self, user_id: int) -> str:
        """A user's cap across every server (or that there is none), usage in direct messages and any block."""
        cap = await self.moderation.quota_everywhere(user_id)
        head = (f"**Cap of <@{user_id}> across every server**: {cap.describe()} ({cap.remaining} left)" if cap
                else f"<@{user_id}> has no cap across every server; each server's quota applies.")
        direct = await quota_text(self.moderation, user_id, (), None, own=False, cap=False,
                                  heading=f"**In direct messages, video quota of <@{user_id}>**")
        return f"{head}\n{direct}"

    @app_commands.command(name="block", description="Stop a user from making videos in every server")
    @app_commands.describe(user="Who to block", **BLOCK_HELP)
    async def block(self, interaction: discord.Interaction, user: discord.User, reason: BlockReason | None = None,
                    duration: BlockDuration | None = None) -> None:
        confirmation = await block_and_stop(self.moderation, self.cancel_jobs, interaction.user.id, person(user),
                                            reason, duration, guild_id=GLOBAL)
        await reply(interaction, confirmation.replace("Blocked", "Blocked in every server", 1))

    @app_commands.command(name="unblock", description="Lift a user's block across every server")
    @app_commands.describe(user="Who may make videos again, in every server")
    async def unblock(self, interaction: discord.Interaction, user: discord.User) -> None:
        lifted = await self.moderation.unblock(interaction.user.id, user.id, guild_id=GLOBAL)
        await reply(interaction, f"Unblocked <@{user.id}> everywhere." if lifted
                    else f"<@{user.id}> had no block across every server (a server's own blocks stay).")

    @app_commands.command(name="blocks", description="Users blocked in every server now")
    async def blocks(self, interaction: discord.Interaction) -> None:
        found = await self.moderation.repo.active_blocks(self.moderation.now(), guild_id=GLOBAL)
        await reply(interaction, text.block_list(found))

    # --- the shared denylist and allowlist --------------------------------------------------------------------

    @app_commands.command(name="denylist-add", description="Refuse a pattern in every server (the shared list)")
    @app_commands.describe(pattern=lists.PATTERN_HELP, category=lists.CATEGORY_HELP)
    @app_commands.autocomplete(category=lists.category_choices)
    async def denylist_add(self, interaction: discord.Interaction, pattern: lists.Pattern,
                           category: str) -> None:
        await lists.add(self.editor, interaction, pattern, category, "deny", GLOBAL)

    @app_commands.command(name="denylist-remove", description="Stop refusing a pattern of the shared list")
    @app_commands.describe(pattern=lists.REMOVE_HELP)
    async def denylist_remove(self, interaction: discord.Interaction, pattern: lists.Pattern) -> None:
        await lists.remove(self.editor, interaction, pattern, "deny", GLOBAL)

    @denylist_remove.autocomplete("pattern")
    async def _shared_patterns(self, interaction: discord.Interaction,
                               current: str) -> list[app_commands.Choice[str]]:
        """The shared list's patterns, for operators only (autocomplete skips `interaction_check`)."""
        if not is_operator(interaction.user, self.settings):
            return []
        return lists.pattern_choices(self.editor, current, "deny", GLOBAL)

    @app_commands.command(name="allowlist-add", description="Let a phrase through the shared denylist everywhere")
    @app_commands.describe(phrase="A harmless phrase the shared denylist refuses, e.g. a place name")
    async def allowlist_add(self, interaction: discord.Interaction, phrase: lists.Pattern) -> None:
        await lists.add(self.editor, interaction, phrase, "allow", "allow", GLOBAL)

    @app_commands.command(name="allowlist-remove", description="Remove a phrase from the shared allowlist")
    @app_commands.describe(phrase="The phrase as it was added")
    async def allowlist_remove(self, interaction: discord.Interaction,
                               phrase: lists.Pattern) -> None:
        await lists.remove(self.editor, interaction, phrase, "allow", GLOBAL)

    # --- every server's numbers -------------------------------------------------------------------------------

    @app_commands.command(name="stats", description="Requests, refusals, GPU time and top users of every server")
    @app_commands.choices(period=[app_commands.Choice(name=name, value=name) for name in STATS_WINDOWS])
    @app_commands.describe(period="How far back (rolling): the last hour, day, week, 30 days, or everything")
    async def stats(self, interaction: discord.Interaction, period: str = "day") -> None:
        usage = await self.moderation.stats(period, guild_id=GLOBAL)
        await reply(interaction, text.stats(usage, period, everywhere=True))

    @app_commands.command(name="audit", description="The operators' audit log, or one server's")
    @app_commands.describe(server="A server id (operator servers lists them); none: the operators' own log",
                           limit="How many of the latest entries, 1–25 (10 if left out)")
    async def audit(self, interaction: discord.Interaction, limit: app_commands.Range[int, 1, 25] = 10,
                    server: app_commands.Range[str, 1, 20] | None = None) -> None:
        guild_id = GLOBAL
        if server is not None:
            server = server.strip()
            if not is_snowflake(server):
                await reply(interaction, f"“{shown(server, 20)}” is not a server id: use the number "
                                         "`/videomod operator servers` shows, such as 123456789012345678.")
                return
            guild_id = int(server)
        rows = await self.moderation.repo.latest_audit(limit, guild_id=guild_id)
        guild = self.bot.get_guild(guild_id)
        if guild_id != GLOBAL and guild is None and not rows:  # a typo'd id, or a channel's or a user's
            await reply(interaction, f"The bot is not in server `{guild_id}`, and no audit entry names it: "
                                     "use an id `/videomod operator servers` lists (leave server out for the "
                                     "operators' own log).")
            return
        whose = (" of the bot's operators" if guild_id == GLOBAL else
                 f" of {shown(guild.name, 80)} (`{guild_id}`)" if guild is not None else
                 f" of server `{guild_id}` (the bot is no longer in it)")
        await reply(interaction, text.audit(rows, whose))
