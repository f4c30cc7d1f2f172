"""/videomod: quotas, blocks, the denylist, channels, presets, stats and the audit log, for a server's moderators.

Every command reads and changes the records of the server it is run in, and nothing else: a member with Manage
Server in one server has no say in another. Moderator rights are checked in code on every command (Manage Server or
MOD_ROLE_ID in that server, see bot.ui.permissions), not only through Discord's default_member_permissions hint,
which server admins can change. Refused attempts are logged and written to the server's audit log; so is every
change a moderator makes. Answers are private to the moderator. What holds above the servers is changed by the
bot's operators with `/videomod operator` (bot.ui.cogs.moderation_operator).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

import discord
from discord import app_commands
from discord.ext import commands

from bot.characters import counted
from bot.errors import InvalidInput
from bot.gpu.models import ASPECTS
from bot.moderation.denylist_edits import DenylistEditor
from bot.moderation.rules import STATS_WINDOWS, Moderation
from bot.moderation.servers import MAX_NEGATIVE_CHARS, ServerSettings
from bot.settings import MAX_QUOTA, QUOTA_PERIODS, Settings
from bot.ui.cogs import moderation_denylist as lists
from bot.ui.cogs import moderation_text as text
from bot.ui.cogs.quota import member_roles, quota_text
from bot.ui.permissions import AnyChannel, check_moderator, is_moderator, own_channel, own_role, person, server
from bot.ui.replies import reply
from storage import GLOBAL
from t2v.request import LIMITS, SAMPLER_NAMES

log = logging.getLogger(__name__)

Limit = app_commands.Range[int, 0, MAX_QUOTA]
# a block's options, the same in a server's /videomod block and the operators' (the duration read by
# bot.moderation.text, the reason shown to the blocked user)
BlockReason = app_commands.Range[str, None, 300]
BlockDuration = app_commands.Range[str, None, 40]
BLOCK_HELP = {"reason": "Shown to the user", "duration": "30m, 2h, 7d, 2w, 1d12h … or permanent (the default)"}
CancelJobs = Callable[[int, int], Awaitable[tuple[int, int]]]  # (user, server or GLOBAL) -> (queued, running) cancelled
PERIODS = [app_commands.Choice(name=name, value=name) for name in QUOTA_PERIODS]
FRAMES, STEPS, GUIDANCE = LIMITS["frames"], LIMITS["steps"], LIMITS["guidance"]  # t2v's; the operator's caps apply


@app_commands.guild_only()
@app_commands.default_permissions(manage_guild=True)
class ModerationCog(commands.GroupCog, group_name="videomod", group_description="Moderate video generation"):
    """The /videomod command group; every command passes `interaction_check` first."""

    quota = app_commands.Group(name="quota", description="Video quotas of users, roles and this server")
    denylist = app_commands.Group(name="denylist", description="Prompt patterns that are refused in this server")
    allowlist = app_commands.Group(name="allowlist", description="Phrases this server's denylist must let through")
    channel = app_commands.Group(name="channel", description="Where /video may be used")
    defaults = app_commands.Group(name="defaults", description="This server's defaults for /video's options")

    def __init__(self, settings: Settings, moderation: Moderation, editor: DenylistEditor,
                 servers: ServerSettings, cancel_jobs: CancelJobs) -> None:
        self.settings = settings
        self.moderation = moderation
        self.cancel_jobs = cancel_jobs  # a blocked user's videos in the server stop with the block
        self.editor = editor
        self.servers = servers
        self._swept: set[int] = set()  # servers whose channel rules and role defaults were checked this run for
        #                               channels and roles deleted while the bot was not running
        super().__init__()

    async def interaction_check(self, interaction: discord.Interaction) -> bool:  # type: ignore[override]
        """Let the server's moderators through; log, audit and refuse everyone else."""
        return await check_moderator(interaction, self.settings, self.moderation,
                                     target=f"channel:{interaction.channel_id}")

    # --- quotas -----------------------------------------------------------------------------------------------

    @quota.command(name="set", description="Give a user a personal quota in this server")
    @app_commands.describe(user="Whose quota", limit=f"Videos per period, 0–{MAX_QUOTA}")
    async def quota_set(self, interaction: discord.Interaction, user: discord.Member, limit: Limit) -> None:
        guild = server(interaction)
        await self.moderation.set_limit(interaction.user.id, person(user), limit, guild_id=guild)
        status = await quota_text(self.moderation, user.id, member_roles(user), guild, own=False)
        period = (await self.moderation.default_quota(guild)).period
        await reply(interaction, f"Personal quota set: {counted(limit, 'video')} per {period}.\n{status}")

    @quota.command(name="reset", description="Give a user a fresh allowance for the current period")
    @app_commands.describe(user="Whose count starts again from zero")
    async def quota_reset(self, interaction: discord.Interaction, user: discord.Member) -> None:
        guild = server(interaction)
        await self.moderation.reset_usage(interaction.user.id, person(user), guild_id=guild)
        status = await quota_text(self.moderation, user.id, member_roles(user), guild, own=False)
        await reply(interaction, f"Usage reset: only videos from now on count.\n{status}")

    @quota.command(name="clear", description="Remove a user's personal quota (role or server default applies)")
    @app_commands.describe(user="Whose personal quota to remove (someone who left the server too)")
    async def quota_clear(self, interaction: discord.Interaction, user: discord.Member | discord.User) -> None:
        guild = server(interaction)
        removed = await self.moderation.clear_limit(interaction.user.id, user.id, guild_id=guild)
        head = "Personal quota removed." if removed else f"<@{user.id}> had no personal quota here."
        await reply(interaction, f"{head}\n{await self._quota_of(user, guild)}")

    @quota.command(name="show", description="A user's quota, or (without a user) the server and role defaults")
    @app_commands.describe(user="Whose quota (someone who left the server too); leave out for the server and role "
                                "defaults")
    async def quota_show(self, interaction: discord.Interaction,
                         user: discord.Member | discord.User | None = None) -> None:
        guild = server(interaction)
        if user is not None:
            await reply(interaction, await self._quota_of(user, guild))
            return
        roles = await self.moderation.repo.role_quotas(guild_id=guild)
        await reply(interaction, text.defaults(await self.moderation.default_quota(guild), roles))

    async def _quota_of(self, user: discord.Member | discord.User, guild: int) -> str:
        """A user's quota in the server, for a moderator. Someone who left it (Discord resolves them as a plain user)
        is shown by id, without roles: their personal limit and usage here stay until a moderator clears them."""
        if isinstance(user, discord.Member):
            return await quota_text(self.moderation, user.id, member_roles(user), guild, own=False)
        heading = f"**Video quota of <@{user.id}>** (not a member of this server now)"
        return await quota_text(self.moderation, user.id, (), guild, own=False, heading=heading)

    @quota.command(name="default", description="Set the default quota of this server, or of members with a role")
    @app_commands.describe(limit=f"Videos per period, 0–{MAX_QUOTA}", role="Only for members with this role",
                           period="The server's quota period (calendar periods in UTC)")
    @app_commands.choices(period=PERIODS)
    async def quota_default(self, interaction: discord.Interaction, limit: Limit, role: discord.Role | None = None,
                            period: str | None = None) -> None:
        guild = server(interaction)
        if role is not None and period is not None:
            raise InvalidInput(f"The quota period ({period}) is the whole server's, and roles share it: set it "
                               "without a role.")
        if role is not None and role.is_default():  # every member holds it: it would hide the server's default
            raise InvalidInput("The role @everyone is every member of the server: leave the role out to set the "
                               "server's default quota.")
        if role is not None and role.is_bot_managed():  # Discord gives it to one bot alone, and no member can hold it
            bot = f"<@{role.tags.bot_id}>" if role.tags is not None else "a bot"
            raise InvalidInput(f"The role <@&{role.id}> is {bot}'s own role: only that bot holds it, and bots make "
                               "no videos; pick a role members hold.")
        default = await self.moderation.set_default(interaction.user.id, limit,
                                                    None if role is None else own_role(interaction, role),
                                                    guild_id=guild, period=period)
        whom = "everyone without a personal or role quota" if role is None else f"members with <@&{role.id}>"
        await reply(interaction, f"Default quota for {whom}: {counted(limit, 'video')} per {default.period}.")

    @quota.command(name="default-clear", description="Remove a role's default quota, or this server's own default")
    @app_commands.describe(role="The role; without it, the server's default goes back to the bot's")
    async def quota_default_clear(self, interaction: discord.Interaction, role: discord.Role | None = None) -> None:
        guild = server(interaction)
        if role is None:
            removed = await self.moderation.clear_default(interaction.user.id, guild_id=guild)
            default = await self.moderation.default_quota(guild)
            head = "This server's default quota was removed" if removed else "This server had no default of its own"
            bots = f"{counted(default.limit, 'video')} per {default.period}"
            await reply(interaction, f"{head}; the bot's applies: {bots}.")
            return
        if role.is_default():  # quota default refuses it since 2026-12-04; one set before is removed here
            if await self.moderation.remove_role_default(interaction.user.id, role.id, guild_id=guild):
                await reply(interaction, "The default quota set for @everyone (every member) was removed.")
                return
            raise InvalidInput("The role @everyone is every member of the server: leave the role out to clear the "
                               "server's default quota.")  # "<@&server> had no default quota" would read @@everyone
        removed = await self.moderation.remove_role_default(interaction.user.id, own_role(interaction, role),
                                                            guild_id=guild)
        await reply(interaction, f"<@&{role.id}> " + ("no longer has a default quota." if removed
                                                       else "had no default quota."))

    # --- blocks -----------------------------------------------------------------------------------------------

    @app_commands.command(name="block", description="Stop a user from making videos in this server")
    @app_commands.describe(user="Who to block", **BLOCK_HELP)
    async def block(self, interaction: discord.Interaction, user: discord.User, reason: BlockReason | None = None,
                    duration: BlockDuration | None = None) -> None:
        confirmation = await block_and_stop(self.moderation, self.cancel_jobs, interaction.user.id, person(user),
                                            reason, duration, guild_id=server(interaction))
        await reply(interaction, confirmation)

    @app_commands.command(name="unblock", description="Let a blocked user make videos in this server again")
    @app_commands.describe(user="Who may make videos again")
    async def unblock(self, interaction: discord.Interaction, user: discord.User) -> None:
        lifted = await self.moderation.unblock(interaction.user.id, user.id, guild_id=server(interaction))
        head = f"Unblocked <@{user.id}>." if lifted else f"<@{user.id}> was not blocked here."
        if await self.moderation.own_block(user.id, GLOBAL) is not None:  # the operators' block: out of reach
            head += " They are still blocked in every server by the bot's operators."
        await reply(interaction, head)

    @app_commands.command(name="blocks", description="Users who are blocked in this server now")
    async def blocks(self, interaction: discord.Interaction) -> None:
        found = await self.moderation.repo.active_blocks(self.moderation.now(), guild_id=server(interaction))
        await reply(interaction, text.block_list(found))

    # --- channels ---------------------------------------------------------------------------------------------

    @channel.command(name="allow", description="Allow /video in a channel (then only allowed channels have it)")
    @app_commands.describe(channel="The channel where /video may be used")
    async def channel_allow(self, interaction: discord.Interaction, channel: AnyChannel) -> None:
        await self._set_channel(interaction, ruled_channel(interaction, channel), True)

    @channel.command(name="deny", description="Turn /video off in a channel")
    @app_commands.describe(channel="The channel where /video is turned off")
    async def channel_deny(self, interaction: discord.Interaction, channel: AnyChannel) -> None:
        await self._set_channel(interaction, ruled_channel(interaction, channel), False)

    @channel.command(name="reset", description="Forget a channel's rule")
    @app_commands.describe(channel="The channel whose rule to forget")
    async def channel_reset(self, interaction: discord.Interaction, channel: AnyChannel) -> None:
        await self._set_channel(interaction, own_channel(interaction, channel), None)

    @channel.command(name="list", description="Where /video may be used in this server")
    async def channel_list(self, interaction: discord.Interaction) -> None:
        await reply(interaction, text.channel_rules(await self.moderation.repo.channel_rules([server(interaction)])))

    @commands.Cog.listener()
    async def on_guild_channel_delete(self, channel: discord.abc.GuildChannel) -> None:
        """A deleted channel's rule goes with it, audited as the bot's reset: Discord offers no deleted channel to
        `channel reset`, and an allow rule left behind would keep /video to a channel that is gone."""
        await self._forget_deleted(channel.guild, channel.id)

    @commands.Cog.listener()
    async def on_raw_thread_delete(self, payload: discord.RawThreadDeleteEvent) -> None:
        """A deleted thread's rule goes with it, as a channel's (threads have their own event). A thread the cache
        did not hold has no server object here: its rule goes when its server arrives at the next start."""
        if payload.thread is not None:
            await self._forget_deleted(payload.thread.guild, payload.thread_id)

    async def _forget_deleted(self, guild: discord.Guild, channel_id: int, when: str = "") -> None:
        if await self.moderation.set_channel(guild.me.id, channel_id, None, guild_id=guild.id):
            log.info("channel %d of server %d was deleted%s: its /video rule is forgotten", channel_id, guild.id, when)

    @commands.Cog.listener()
    async def on_guild_role_delete(self, role: discord.Role) -> None:
        """A deleted role's default quota goes with it, audited as the bot's removal: Discord offers no deleted role
        to `quota default-clear`, and `quota show` would list it on as a mention of a role that is gone."""
        await self._forget_deleted_role(role.guild, role.id)

    async def _forget_deleted_role(self, guild: discord.Guild, role_id: int, when: str = "") -> None:
        if await self.moderation.remove_role_default(guild.me.id, role_id, guild_id=guild.id):
            log.info("role %d of server %d was deleted%s: its default quota is forgotten", role_id, guild.id, when)

    @commands.Cog.listener()
    async def on_guild_available(self, guild: discord.Guild) -> None:
        """Once a run for each server, as it arrives: the rules of channels and the default quotas of roles deleted
        while the bot was not running go (no delete event ever came for them)."""
        if guild.id in self._swept:
            return
        self._swept.add(guild.id)
        await self._sweep_channel_rules(guild)
        for default in await self.moderation.repo.role_quotas(guild_id=guild.id):
            if guild.get_role(default.role_id) is None:  # a server arrives with all of its roles
                await self._forget_deleted_role(guild, default.role_id, " while the bot was not running")

    async def _sweep_channel_rules(self, guild: discord.Guild) -> None:
        """Forget the rules of the server's channels that are gone. A channel the cache does not hold (an archived
        thread, say) is asked of Discord first; only one Discord calls unknown (10003) is taken for deleted."""
        for rule in await self.moderation.repo.channel_rules([guild.id]):
            if guild.get_channel_or_thread(rule.channel_id) is not None:
                continue
            try:
                await guild.fetch_channel(rule.channel_id)
            except discord.NotFound:
                await self._forget_deleted(guild, rule.channel_id, " while the bot was not running")
            except (discord.HTTPException, discord.InvalidData) as error:  # hidden from the bot, or another server's
                log.info("channel %d of server %d with a /video rule could not be looked up (%s): the rule is kept",
                         rule.channel_id, guild.id, error)

    async def _set_channel(self, interaction: discord.Interaction, channel_id: int, allowed: bool | None) -> None:
        guild = server(interaction)
        changed = await self.moderation.set_channel(interaction.user.id, channel_id, allowed, guild_id=guild)
        heads = {True: ("/video was already allowed in {}.", "/video is now allowed in {}."),  # (unchanged, changed)
                 False: ("/video was already turned off in {}.", "/video is now turned off in {}."),
                 None: ("{} had no rule.", "/video is back to the default rules in {}.")}
        head = heads[allowed][changed].format(f"<#{channel_id}>")
        await reply(interaction, text.channel_rules(await self.moderation.repo.channel_rules([guild]), head))

    # --- denylist and allowlist (bot/ui/cogs/moderation_denylist.py) ---------------------------------------------

    @denylist.command(name="add", description="Refuse prompts matching a pattern here: word, phrase, stem* or a + b")
    @app_commands.describe(pattern=lists.PATTERN_HELP, category=lists.CATEGORY_HELP)
    @app_commands.autocomplete(category=lists.category_choices)
    async def denylist_add(self, interaction: discord.Interaction, pattern: lists.Pattern,
                           category: str) -> None:
        await lists.add(self.editor, interaction, pattern, category, "deny", server(interaction))

    @denylist.command(name="remove", description="Stop refusing a pattern this server added")
    @app_commands.describe(pattern=lists.REMOVE_HELP)
    async def denylist_remove(self, interaction: discord.Interaction, pattern: lists.Pattern) -> None:
        await lists.remove(self.editor, interaction, pattern, "deny", server(interaction))

    @denylist_remove.autocomplete("pattern")
    async def _denylist_patterns(self, interaction: discord.Interaction,
                                 current: str) -> list[app_commands.Choice[str]]:
        """This server's own patterns, for its moderators only (autocomplete skips `interaction_check`)."""
        if not is_moderator(interaction.user, self.settings) or interaction.guild_id is None:
            return []
        return lists.pattern_choices(self.editor, current, "deny", interaction.guild_id)

    @denylist.command(name="list", description="The shared denylist and this server's own entries, by category")
    async def denylist_list(self, interaction: discord.Interaction) -> None:
        await lists.show(self.editor, interaction, server(interaction))

    @denylist.command(name="test", description="Which entry (if any) refuses a prompt in this server")
    @app_commands.describe(prompt="A prompt to check, as a member would type it (nothing is made)")
    async def denylist_test(self, interaction: discord.Interaction, prompt: app_commands.Range[str, 1, 500]) -> None:
        await reply(interaction, lists.test_text(self.editor.test(prompt, server(interaction)), prompt))

    @allowlist.command(name="add", description="Let a phrase through that this server's denylist would refuse")
    @app_commands.describe(phrase="A harmless phrase the denylist refuses, e.g. a place name")
    async def allowlist_add(self, interaction: discord.Interaction, phrase: lists.Pattern) -> None:
        await lists.add(self.editor, interaction, phrase, "allow", "allow", server(interaction))

    @allowlist.command(name="remove", description="Remove a phrase from this server's allowlist")
    @app_commands.describe(phrase="The phrase as it was added")
    async def allowlist_remove(self, interaction: discord.Interaction,
                               phrase: lists.Pattern) -> None:
        await lists.remove(self.editor, interaction, phrase, "allow", server(interaction))

    # --- /video presets ---------------------------------------------------------------------------------------

    @defaults.command(name="set", description="Set this server's defaults for /video options left out")
    @app_commands.describe(aspect="Frame shape", frames="Frames (8 fps)", steps="Denoising steps",
                           sampler="Denoising method", guidance="Prompt strength", negative="What to avoid")
    @app_commands.choices(aspect=[app_commands.Choice(name=name, value=name) for name in ASPECTS],
                          sampler=[app_commands.Choice(name=name, value=name) for name in SAMPLER_NAMES])
    async def defaults_set(
        self, interaction: discord.Interaction, aspect: str | None = None,
        frames: app_commands.Range[int, FRAMES[0], FRAMES[1]] | None = None,
        steps: app_commands.Range[int, STEPS[0], STEPS[1]] | None = None, sampler: str | None = None,
        guidance: app_commands.Range[float, GUIDANCE[0], GUIDANCE[1]] | None = None,
        negative: app_commands.Range[str, 1, MAX_NEGATIVE_CHARS] | None = None,
    ) -> None:  # fmt: skip
        presets = await self.servers.set_presets(interaction.user.id, server(interaction), aspect=aspect,
                                                 frames=frames, steps=steps, sampler=sampler, guidance=guidance,
                                                 negative=negative)
        await reply(interaction, "This server's defaults are set.\n" + text.presets(presets, self.settings))

    @defaults.command(name="show", description="This server's defaults for /video, and the bot's")
    async def defaults_show(self, interaction: discord.Interaction) -> None:
        await reply(interaction, text.presets(await self.servers.presets(server(interaction)), self.settings))

    @defaults.command(name="reset", description="Forget this server's defaults: the bot's apply again")
    async def defaults_reset(self, interaction: discord.Interaction) -> None:
        removed = await self.servers.reset_presets(interaction.user.id, server(interaction))
        head = "This server's defaults were removed." if removed else "This server had no defaults of its own."
        await reply(interaction, f"{head}\n" + text.presets(await self.servers.presets(server(interaction)),
                                                               self.settings))

    # --- stats and audit --------------------------------------------------------------------------------------

    @app_commands.command(name="stats", description="Requests, refusals, GPU time and the busiest users here")
    @app_commands.describe(period="How far back (rolling): the last hour, day, week, 30 days, or everything")
    @app_commands.choices(period=[app_commands.Choice(name=name, value=name) for name in STATS_WINDOWS])
    async def stats(self, interaction: discord.Interaction, period: str = "day") -> None:
        await reply(interaction, text.stats(await self.moderation.stats(period, guild_id=server(interaction)), period))

    @app_commands.command(name="audit", description="The latest moderator actions and refused attempts here")
    @app_commands.describe(limit="How many of the latest entries, 1–25 (10 if left out)")
    async def audit(self, interaction: discord.Interaction, limit: app_commands.Range[int, 1, 25] = 10) -> None:
        rows = await self.moderation.repo.latest_audit(limit, guild_id=server(interaction))
        await reply(interaction, text.audit(rows))


def ruled_channel(interaction: discord.Interaction, channel: AnyChannel) -> int:
    """The id of a channel of the server that a rule can hold for (`own_channel`); InvalidInput for a category: /video
    is typed in the channels in it, which do not follow its rules (an allow rule would turn /video off everywhere
    else, a deny rule would turn off nothing). A forum's or media channel's posts are threads, and follow theirs."""
    channel_id = own_channel(interaction, channel)
    if channel.type == discord.ChannelType.category:
        raise InvalidInput(f"<#{channel_id}> is a category, where /video cannot be used, and the channels in it do not "
                           "follow its rules: allow or turn off the channels themselves.")
    return channel_id


async def block_and_stop(moderation: Moderation, cancel_jobs: CancelJobs, actor: int, user_id: int,
                         reason: str | None, duration: str | None, *, guild_id: int) -> str:
    """Block a user in a server (GLOBAL: everywhere) and cancel their videos there, queued and running (a spammer's
    queue would render on for an hour otherwise); the confirmation, naming the block it replaces and what stopped."""
    earlier = await moderation.own_block(user_id, guild_id)
    record = await moderation.block(actor, user_id, reason, duration, guild_id=guild_id)
    return text.blocked(record, earlier) + text.stopped(*await cancel_jobs(user_id, guild_id))
