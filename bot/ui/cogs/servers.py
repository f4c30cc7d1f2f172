"""The servers the bot is in. With ALLOWED_GUILD_IDS set it stays only in those, leaving any other (with a log line)
when it starts and when someone invites it — unless at start the list names none of its servers (a typo): then it
leaves none and says so; empty, it stays in every server it is invited to. Removed from a server, it cancels that
server's jobs — at once, or, removed while it was not running, once every server has arrived after the start (the
jobs it restored from the database), and drops that server's own denylist gate (the client's on_guild_remove does so
at once). Once every server has arrived after the start, each of MOD_ROLE_ID,
SHOWCASE_CHANNEL_ID and GALLERY_FRONT_PAGE (a server id) that names nothing in them is one warning line (a typo'd id
otherwise fails silently); a bot started in no server yet (set up before its first invite) checks them when it first
joins one."""

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
        self.settings = settings
        self.service = service
        self._ids_checked = False  # the id settings are checked once a start, when every server has arrived (or,
        # started in none, when it joins its first)
        self._swept = False  # the jobs of servers the bot left while it was not running (or disconnected):
        # cancelled once a session, when its servers have arrived

    @commands.Cog.listener()
    async def on_ready(self) -> None:
        """Leave the servers not on the allowlist; none when it lists none of the bot's servers (a typo'd id would
        make it leave its own at every start, to be invited again by hand): that is one ERROR line instead. Then
        the other id settings are checked against the servers (`_check_ids`), and the jobs of servers the bot was
        removed from meanwhile cancelled (a new session after a long disconnect rebuilds the server list without a
        GUILD_DELETE for those: each on_ready looks again)."""
        self._swept = False
        guilds = list(self.bot.guilds)
        if self.allowed and guilds and not any(guild.id in self.allowed for guild in guilds):
            log.error("ALLOWED_GUILD_IDS=%s lists none of the servers the bot is in (%s): leaving none of them; fix "
                      "the ids (right-click a server's icon → Copy Server ID) and restart", ",".join(
                          map(str, sorted(self.allowed))), _servers(guilds))
        else:
            for guild in guilds:
                await self._stay_or_leave(guild, "at start")
        self._check_ids()
        await self._cancel_jobs_of_servers_left()

    @commands.Cog.listener()
    async def on_guild_available(self, guild: discord.Guild) -> None:
        """A server that was unavailable (a Discord outage) at on_ready has arrived: maybe the last one missing."""
        self._check_ids()
        await self._cancel_jobs_of_servers_left()

    async def _cancel_jobs_of_servers_left(self) -> None:
        """Once a session (each on_ready), when the bot is ready and every server has arrived (none unavailable):
        cancel the jobs of servers it is no longer in — removed while it was not running or disconnected, no
        on_guild_remove ever came — and drop each one's own denylist gate, as the client's on_guild_remove does."""
        guilds = list(self.bot.guilds)
        if self._swept or not self.bot.is_ready() or any(guild.unavailable for guild in guilds):
            return
        self._swept = True
        with_jobs, gates = self.service.servers_with_jobs(), self.service.gate
        for guild_id in sorted((with_jobs | gates.servers()) - {guild.id for guild in guilds}):
            gates.forget_server(guild_id)
            if guild_id in with_jobs:
                queued, running = await self.service.cancel_server(guild_id)
                log.info("not in server %d since before the start: cancelled %d queued and %d running jobs of it",
                         guild_id, queued, running)

    def _check_ids(self) -> None:
        """One warning for each id setting that names nothing in the bot's servers, once a start, and only when the
        bot is ready, in at least one server, and has every server's roles and channels (none unavailable), so that
        an id in a server still to arrive is not taken for a typo."""
        guilds = list(self.bot.guilds)
        if self._ids_checked or not self.bot.is_ready() or not guilds or any(g.unavailable for g in guilds):
            return
        self._ids_checked = True
        for line in unknown_ids(self.settings, guilds):
            log.warning("%s", line)

    @commands.Cog.listener()
    async def on_guild_join(self, guild: discord.Guild) -> None:
        log.info("invited to server %s (%d)", guild.name, guild.id)
        if await self._stay_or_leave(guild, "when invited"):
            self._check_ids()

    @commands.Cog.listener()
    async def on_guild_remove(self, guild: discord.Guild) -> None:
        """Removed from a server (kicked, the server deleted, or left): its jobs are cancelled, as nothing could
        reach its channels any more."""
        queued, running = await self.service.cancel_server(guild.id)
        log.info("removed from server %s (%d): cancelled %d queued and %d running jobs of it", guild.name, guild.id,
                 queued, running)
        self._check_ids()  # maybe the last server still to arrive after the start: the others have
        await self._cancel_jobs_of_servers_left()

    async def _stay_or_leave(self, guild: discord.Guild, when: str) -> bool:
        """Leave a server that is not on the allowlist; whether the bot stays."""
        if not self.allowed or guild.id in self.allowed:
            return True
        log.warning("leaving server %s (%d) %s: it is not in ALLOWED_GUILD_IDS", guild.name, guild.id, when)
        try:
            await guild.leave()
        except discord.HTTPException:
            log.exception("could not leave server %s (%d), which is not in ALLOWED_GUILD_IDS", guild.name, guild.id)
        return False


def unknown_ids(settings: Settings, guilds: list[discord.Guild]) -> list[str]:
    """What is wrong with MOD_ROLE_ID, SHOWCASE_CHANNEL_ID and GALLERY_FRONT_PAGE (a server id, with the gallery on)
    against the servers the bot is in, one line each naming the setting, its value and what would be right."""
    lines = []
    role = settings.mod_role_id
    everyone = [guild for guild in guilds if guild.id == role]  # a server's id is its @everyone role's
    if everyone:
        lines.append(f"MOD_ROLE_ID={role} is the id of the server {_servers(everyone)} and so of its @everyone role: "
                     "every member there counts as a moderator; set it to the moderators' role (Server Settings → "
                     "Roles → right-click the role → Copy Role ID)")
    elif role is not None and not any(guild.get_role(role) for guild in guilds):
        lines.append(f"MOD_ROLE_ID={role} is no role of the servers the bot is in ({_servers(guilds)}): only members "
                     "with Manage Server are moderators; set it to the moderators' role (Server Settings → Roles → "
                     "right-click the role → Copy Role ID), or leave it empty")
    channel = settings.showcase_channel_id
    if channel is not None and not any(guild.get_channel_or_thread(channel) for guild in guilds):
        lines.append(f"SHOWCASE_CHANNEL_ID={channel} is no channel of the servers the bot is in ({_servers(guilds)}): "
                     "no approved video is posted there; set it to the channel's id (right-click the channel → Copy "
                     "Channel ID), or leave it empty and let each server's moderators pick one with /videomod "
                     "showcase channel")
    page = settings.gallery_front_page
    if settings.gallery_enabled and page.isdigit() and not any(guild.id == int(page) for guild in guilds):
        lines.append(f"GALLERY_FRONT_PAGE={page} is no server the bot is in ({_servers(guilds)}): the gallery's "
                     "front page shows that server's videos only, and none are made there; set it to one of those "
                     "servers' ids (right-click a server's icon → Copy Server ID), all or servers")
    return lines


SERVERS_NAMED = 5  # servers a log line names; a bot in many says how many more


def _servers(guilds: list[discord.Guild]) -> str:
    """Servers as a log line names them: "Name (id), ...", the first SERVERS_NAMED and how many more."""
    named = ", ".join(f"{guild.name} ({guild.id})" for guild in guilds[:SERVERS_NAMED])
    return named if len(guilds) <= SERVERS_NAMED else f"{named} and {len(guilds) - SERVERS_NAMED} more"
