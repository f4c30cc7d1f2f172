"""/videomod: quotas, blocks, the denylist, channels, stats and the audit log, for moderators only.

Moderator rights are checked in code on every command (Manage Server or MOD_ROLE_ID, see bot.ui.permissions), not
only through Discord's default_member_permissions hint, which server admins can change. Refused attempts are
logged and written to the audit log; so is every change a moderator makes. Answers are private to the moderator.
"""

from __future__ import annotations

import logging

import discord
from discord import app_commands
from discord.ext import commands

from bot.moderation.denylist_edits import DenylistEditor
from bot.moderation.rules import STATS_WINDOWS, Moderation
from bot.settings import MAX_QUOTA, Settings
from bot.ui.cogs import moderation_denylist as lists
from bot.ui.cogs import moderation_text as text
from bot.ui.cogs.quota import member_roles, quota_text
from bot.ui.permissions import is_moderator

log = logging.getLogger(__name__)

QUIET = discord.AllowedMentions.none()
Limit = app_commands.Range[int, 0, MAX_QUOTA]
AnyChannel = app_commands.AppCommandChannel | app_commands.AppCommandThread  # only the id is used: no cache needed


def not_a_moderator(command: str) -> str:
    """What someone without moderator rights is told when they try a moderators' command."""
    return f"{command} is for moderators only (Manage Server permission or the moderator role)."


async def reply(interaction: discord.Interaction, content: str) -> None:
    """A private answer that pings nobody."""
    await interaction.response.send_message(content, ephemeral=True, allowed_mentions=QUIET)


@app_commands.guild_only()
@app_commands.default_permissions(manage_guild=True)
class ModerationCog(commands.GroupCog, group_name="videomod", group_description="Moderate video generation"):
    """The /videomod command group; every command passes `interaction_check` first."""

    quota = app_commands.Group(name="quota", description="Video quotas of users, roles and the server")
    denylist = app_commands.Group(name="denylist", description="Prompt patterns that are refused")
    allowlist = app_commands.Group(name="allowlist", description="Phrases the denylist must let through")
    channel = app_commands.Group(name="channel", description="Where /video may be used")

    def __init__(self, settings: Settings, moderation: Moderation, editor: DenylistEditor) -> None:
        self.settings = settings
        self.moderation = moderation
        self.editor = editor
        super().__init__()

    async def interaction_check(self, interaction: discord.Interaction) -> bool:  # type: ignore[override]
        """Let moderators through; log, audit and refuse everyone else."""
        if is_moderator(interaction.user, self.settings):
            return True
        command = f"/{interaction.command.qualified_name}" if interaction.command else "/videomod"
        log.warning("user %d (%s) tried %s without moderator rights", interaction.user.id, interaction.user, command)
        try:
            await self.moderation.audit(interaction.user.id, command, f"channel:{interaction.channel_id}",
                                        {"refused": "not a moderator"}, allowed=False)
        except Exception:
            log.exception("could not audit the refused %s by user %d", command, interaction.user.id)
        raise app_commands.CheckFailure(not_a_moderator(command))

    # --- quotas -----------------------------------------------------------------------------------------------

    @quota.command(name="set", description="Give a user a personal quota")
    @app_commands.describe(user="Whose quota", limit=f"Videos per period, 0–{MAX_QUOTA}")
    async def quota_set(self, interaction: discord.Interaction, user: discord.Member, limit: Limit) -> None:
        await self.moderation.set_limit(interaction.user.id, user.id, limit)
        status = await quota_text(self.moderation, user.id, member_roles(user), own=False)
        await reply(interaction, f"Personal quota set: {limit} videos per {self.moderation.period}.\n{status}")

    @quota.command(name="reset", description="Give a user a fresh allowance for the current period")
    async def quota_reset(self, interaction: discord.Interaction, user: discord.Member) -> None:
        await self.moderation.reset_usage(interaction.user.id, user.id)
        status = await quota_text(self.moderation, user.id, member_roles(user), own=False)
        await reply(interaction, f"Usage reset: only videos from now on count.\n{status}")

    @quota.command(name="clear", description="Remove a user's personal quota (role or server default applies)")
    async def quota_clear(self, interaction: discord.Interaction, user: discord.Member) -> None:
        await self.moderation.clear_limit(interaction.user.id, user.id)
        status = await quota_text(self.moderation, user.id, member_roles(user), own=False)
        await reply(interaction, f"Personal quota removed.\n{status}")

    @quota.command(name="show", description="A user's quota, or (without a user) the server and role defaults")
    async def quota_show(self, interaction: discord.Interaction, user: discord.Member | None = None) -> None:
        if user is not None:
            await reply(interaction, await quota_text(self.moderation, user.id, member_roles(user), own=False))
            return
        roles = await self.moderation.repo.role_quotas()
        await reply(interaction, text.defaults(await self.moderation.default_limit(), self.moderation.period, roles))

    @quota.command(name="default", description="Set the default quota of the server, or of members with a role")
    @app_commands.describe(limit=f"Videos per period, 0–{MAX_QUOTA}", role="Only for members with this role")
    async def quota_default(self, interaction: discord.Interaction, limit: Limit,
                            role: discord.Role | None = None) -> None:
        await self.moderation.set_default(interaction.user.id, limit, None if role is None else role.id)
        whom = "everyone without a personal or role quota" if role is None else f"members with <@&{role.id}>"
        await reply(interaction, f"Default quota for {whom}: {limit} videos per {self.moderation.period}.")

    @quota.command(name="default-clear", description="Remove a role's default quota")
    async def quota_default_clear(self, interaction: discord.Interaction, role: discord.Role) -> None:
        removed = await self.moderation.remove_role_default(interaction.user.id, role.id)
        await reply(interaction, f"<@&{role.id}> " + ("no longer has a default quota." if removed
                                                       else "had no default quota."))

    # --- blocks -----------------------------------------------------------------------------------------------

    @app_commands.command(name="block", description="Stop a user from making videos, for a while or for good")
    @app_commands.describe(user="Who to block", reason="Shown to the user",
                           duration="30m, 2h, 7d, 2w, 1d12h … or permanent (the default)")
    async def block(self, interaction: discord.Interaction, user: discord.User,
                    reason: app_commands.Range[str, None, 300] | None = None,
                    duration: app_commands.Range[str, None, 40] | None = None) -> None:
        record = await self.moderation.block(interaction.user.id, user.id, reason, duration)
        await reply(interaction, text.blocked(record))

    @app_commands.command(name="unblock", description="Let a blocked user make videos again")
    async def unblock(self, interaction: discord.Interaction, user: discord.User) -> None:
        lifted = await self.moderation.unblock(interaction.user.id, user.id)
        await reply(interaction, f"Unblocked <@{user.id}>." if lifted else f"<@{user.id}> was not blocked.")

    @app_commands.command(name="blocks", description="Users who are blocked now")
    async def blocks(self, interaction: discord.Interaction) -> None:
        await reply(interaction, text.block_list(await self.moderation.repo.active_blocks(self.moderation.now())))

    # --- channels ---------------------------------------------------------------------------------------------

    @channel.command(name="allow", description="Allow /video in a channel (then only allowed channels have it)")
    async def channel_allow(self, interaction: discord.Interaction, channel: AnyChannel) -> None:
        await self._set_channel(interaction, channel.id, True)

    @channel.command(name="deny", description="Turn /video off in a channel")
    async def channel_deny(self, interaction: discord.Interaction, channel: AnyChannel) -> None:
        await self._set_channel(interaction, channel.id, False)

    @channel.command(name="reset", description="Forget a channel's rule")
    async def channel_reset(self, interaction: discord.Interaction, channel: AnyChannel) -> None:
        await self._set_channel(interaction, channel.id, None)

    @channel.command(name="list", description="Where /video may be used")
    async def channel_list(self, interaction: discord.Interaction) -> None:
        await reply(interaction, text.channel_rules(await self.moderation.repo.channel_rules()))

    async def _set_channel(self, interaction: discord.Interaction, channel_id: int, allowed: bool | None) -> None:
        changed = await self.moderation.set_channel(interaction.user.id, channel_id, allowed)
        rules = text.channel_rules(await self.moderation.repo.channel_rules())
        done = {True: "now allowed in", False: "now turned off in", None: "back to the default rules in"}[allowed]
        head = f"/video is {done} <#{channel_id}>." if changed else f"<#{channel_id}> had no rule."
        await reply(interaction, f"{head}\n{rules}")

    # --- denylist and allowlist (bot/ui/cogs/moderation_denylist.py) ---------------------------------------------

    @denylist.command(name="add", description="Refuse prompts matching a pattern: word, phrase, stem* or a + b")
    @app_commands.describe(pattern="e.g. nude, pool of blood, decapitat*, moon landing + staged",
                           category="The policy category the refusal names")
    @app_commands.autocomplete(category=lists.category_choices)
    async def denylist_add(self, interaction: discord.Interaction, pattern: app_commands.Range[str, 1, 200],
                           category: str) -> None:
        await lists.add(self.editor, interaction, pattern, category, "deny")

    @denylist.command(name="remove", description="Stop refusing a pattern")
    async def denylist_remove(self, interaction: discord.Interaction, pattern: app_commands.Range[str, 1, 200]) -> None:
        await lists.remove(self.editor, interaction, pattern, "deny")

    @denylist_remove.autocomplete("pattern")
    async def _denylist_patterns(self, interaction: discord.Interaction,
                                 current: str) -> list[app_commands.Choice[str]]:
        """Listed patterns, for moderators only (autocomplete skips `interaction_check`)."""
        if not is_moderator(interaction.user, self.settings):
            return []
        return lists.pattern_choices(self.editor, current, "deny")

    @denylist.command(name="list", description="The denylist and allowlist, by category")
    async def denylist_list(self, interaction: discord.Interaction) -> None:
        await lists.show(self.editor, interaction)

    @denylist.command(name="test", description="Which entry (if any) refuses a prompt")
    async def denylist_test(self, interaction: discord.Interaction, prompt: app_commands.Range[str, 1, 500]) -> None:
        await reply(interaction, lists.test_text(self.editor.test(prompt), prompt))

    @allowlist.command(name="add", description="Let a phrase through that a broader denylist entry would refuse")
    async def allowlist_add(self, interaction: discord.Interaction, phrase: app_commands.Range[str, 1, 200]) -> None:
        await lists.add(self.editor, interaction, phrase, "allow", "allow")

    @allowlist.command(name="remove", description="Remove a phrase from the allowlist")
    async def allowlist_remove(self, interaction: discord.Interaction,
                               phrase: app_commands.Range[str, 1, 200]) -> None:
        await lists.remove(self.editor, interaction, phrase, "allow")

    # --- stats and audit --------------------------------------------------------------------------------------

    @app_commands.command(name="stats", description="Requests, refusals, GPU time and the busiest users")
    @app_commands.describe(period="How far back (rolling): the last hour, day, week, 30 days, or everything")
    @app_commands.choices(period=[app_commands.Choice(name=name, value=name) for name in STATS_WINDOWS])
    async def stats(self, interaction: discord.Interaction, period: str = "day") -> None:
        await reply(interaction, text.stats(await self.moderation.stats(period), period))

    @app_commands.command(name="audit", description="The latest moderator actions and refused attempts")
    async def audit(self, interaction: discord.Interaction, limit: app_commands.Range[int, 1, 25] = 10) -> None:
        await reply(interaction, text.audit(await self.moderation.repo.latest_audit(limit)))
