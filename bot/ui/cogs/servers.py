"""The servers the bot is in. With ALLOWED_GUILD_IDS set it stays only in those, leaving any other (with a log line)
when it starts and when someone invites it — unless at start the list names none of its servers (a typo): then it
leaves none and says so; empty, it stays in every server it is invited to. Removed from a server, it cancels that
server's jobs."""

from __future__ import annotations

import logging

import discord
from discord.ext import commands

from bot.jobs.service import VideoService
from bot.settings import Settings

log = logging.getLogger(__name__)


class ServersCog(commands.Cog, name="Servers"):
    """Leaves the servers ALLOWED_GUILD_IDS does not list, at start (on_ready) and when invited (on_guild_join)."""

    def __init__(self, bot: commands.Bot, settings: Settings, service: VideoService) -> None:
        self.bot = bot
        self.allowed = frozenset(settings.allowed_guild_ids)
        self.service = service

    @commands.Cog.listener()
    async def on_ready(self) -> None:
        """Leave the servers not on the allowlist; none when it lists none of the bot's servers (a typo'd id would
        make it leave its own at every start, to be invited again by hand): that is one ERROR line instead."""
        guilds = list(self.bot.guilds)
        if self.allowed and guilds and not any(guild.id in self.allowed for guild in guilds):
            servers = ", ".join(f"{guild.name} ({guild.id})" for guild in guilds)
            log.error("ALLOWED_GUILD_IDS=%s lists none of the servers the bot is in (%s): leaving none of them; fix "
                      "the ids (right-click a server's icon → Copy Server ID) and restart", ",".join(
                          map(str, sorted(self.allowed))), servers)
            return
        for guild in guilds:
            await self._stay_or_leave(guild, "at start")

    @commands.Cog.listener()
    async def on_guild_join(self, guild: discord.Guild) -> None:
        log.info("invited to server %s (%d)", guild.name, guild.id)
        await self._stay_or_leave(guild, "when invited")

    @commands.Cog.listener()
    async def on_guild_remove(self, guild: discord.Guild) -> None:
        """Removed from a server (kicked, the server deleted, or left): its jobs are cancelled, as nothing could
        reach its channels any more."""
        queued, running = await self.service.cancel_server(guild.id)
        log.info("removed from server %s (%d): cancelled %d queued and %d running jobs of it", guild.name, guild.id,
                 queued, running)

    async def _stay_or_leave(self, guild: discord.Guild, when: str) -> None:
        """Leave a server that is not on the allowlist."""
        if not self.allowed or guild.id in self.allowed:
            return
        log.warning("leaving server %s (%d) %s: it is not in ALLOWED_GUILD_IDS", guild.name, guild.id, when)
        try:
            await guild.leave()
        except discord.HTTPException:
            log.exception("could not leave server %s (%d), which is not in ALLOWED_GUILD_IDS", guild.name, guild.id)
