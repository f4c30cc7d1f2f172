"""The Discord client: a login that waits out a Discord outage (bounded), cogs, command sync, one error handler for
every app command, clean shutdown."""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from collections.abc import Callable
from datetime import datetime
from functools import partial
from http import HTTPStatus
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import discord
from discord import app_commands
from discord.ext import commands

from bot.errors import SettingsError, StopRequested, Unreachable
from bot.gpu.models import ASPECTS
from bot.jobs.events import JobEvents
from bot.jobs.service import VideoService
from bot.media import MediaStore
from bot.moderation.denylist_edits import DenylistEditor
from bot.moderation.servers import PresetLimits, ServerSettings
from bot.retention import Retention
from bot.settings import Settings
from bot.startup import Retry, Stop
from bot.ui.cogs.moderation import ModerationCog
from bot.ui.cogs.moderation_operator import OperatorGroup
from bot.ui.cogs.quota import QuotaCog
from bot.ui.cogs.results import DeleteChoice, ResultButton, ResultsCog, result_view
from bot.ui.cogs.servers import ServersCog
from bot.ui.cogs.showcase import ShowcaseGroup
from bot.ui.cogs.styles import StylesCog
from bot.ui.cogs.video import CancelButton, VideoCog, cancel_view
from bot.ui.delivery import Delivery
from bot.ui.in_flight import KeptTree
from bot.ui.late_posts import LatePosts
from bot.ui.replies import answer_error
from bot.ui.showcase import Showcase, VoteButton
from storage import GLOBAL, Repository, ShowcaseRepository, utc_now

log = logging.getLogger(__name__)

COMMANDS_KEY = "commands_guild"  # moderation_settings key (GLOBAL): the server DISCORD_GUILD_ID named at the last start

ServiceFactory = Callable[[JobEvents], VideoService]  # the bot's delivery in, the running service's owner out
DISCORD_STATUS = "https://discordstatus.com"
HANDLERS_GRACE_S = 10.0  # how long a stop waits for the listeners and commands still running (a write, a request)


class VideoBot(commands.Bot):
    """Slash commands only (default intents); the service is built in setup_hook with this bot's delivery."""

    def __init__(
        self,
        settings: Settings,
        service_factory: ServiceFactory,
        *,
        repo: Repository,
        showcase_repo: ShowcaseRepository,
        monotonic: Callable[[], float] = time.monotonic,
        now: Callable[[], datetime] = utc_now,
        stop: Stop | None = None,
    ) -> None:
        discord.VoiceClient.warn_nacl = discord.VoiceClient.warn_dave = False  # no voice here: no voice warnings
        # No message cache: every reply works from its interaction's payload, and discord.py's default cache holds
        # the last 1,000 messages of every channel the bot sees (megabytes on a busy server, for nothing).
        super().__init__(command_prefix=commands.when_mentioned, intents=discord.Intents.default(),
                         allowed_mentions=discord.AllowedMentions.none(), help_command=None, max_messages=None,
                         tree_cls=KeptTree)
        self.settings = settings
        self.media = MediaStore(settings.media_dir)
        views = partial(result_view, upscale=settings.upscale_model is not None)  # ⬆️ only with an upscaler
        self.delivery = Delivery(self, settings, repo, monotonic=monotonic, now=now, media=self.media,
                                 result_view=views, status_view=cancel_view)
        # posts a stop cut short (at the start) and those Discord failed (tried again, until `close`)
        self.late_posts = LatePosts(self, repo, self.delivery, self.media, self.delivery.now)
        self.delivery.retry_later = self.late_posts.retry_later
        self.showcase = Showcase(self, settings, showcase_repo, repo, self.media)
        self._repo = repo
        self._service_factory = service_factory
        self.service: VideoService | None = None
        self.closing: asyncio.Task[None] | None = None  # the close() a signal started
        self.retention: Retention | None = None  # old kept videos and log rows (MEDIA_KEEP_DAYS, HISTORY_KEEP_DAYS)
        self.post_check: asyncio.Task[None] | None = None  # showcase posts deleted while the bot was away
        self.stop = stop or Stop()  # SIGTERM and SIGINT, from before the bot was built (bot.app)
        self.handlers: set[asyncio.Task[Any]] = set()  # event listeners and commands running now (`close` waits)
        self.tree.error(self.on_app_command_error)

    async def login(self, token: str) -> None:
        """discord.py's login, with its first request (GET /users/@me) answered within DISCORD_LOGIN_TIMEOUT_S or
        tried again with backoff for STARTUP_RETRY_S while Discord cannot be reached (then Unreachable); a token
        Discord refuses is a SettingsError. A stop request meanwhile (the login's waits, or setup_hook, whose client
        closes under it) raises StopRequested."""
        static_login = self.http.static_login
        retry = Retry(self.settings.startup_retry_s, self.stop)

        async def reach(token: str) -> Any:
            user = await retry(lambda: self._login_once(static_login, token), transient=self._unreachable,
                               what=f"Discord at {discord.http.Route.BASE}", check=self._what_to_check())
            await self._reach_gateway()
            return user

        self.http.static_login = reach  # type: ignore[method-assign]  # discord.py's login calls it first
        try:
            await super().login(token)  # then setup_hook: the service (the models load), the cogs, the command sync
        except discord.LoginFailure:
            raise SettingsError(["DISCORD_TOKEN was refused by Discord (401 Unauthorized): reset it in the developer "
                                 "portal (your app → Bot → Reset Token) and set the new one"]) from None
        except Exception:
            if not self.stop.requested.is_set():
                raise
            log.debug("the start, cut short by the stop, ended with", exc_info=True)  # the client closed under it
            raise StopRequested("stopped while starting") from None
        finally:
            del self.http.static_login

    async def connect(self, *, reconnect: bool = True) -> None:
        """discord.py's connect, after the gateway's handshake was tried again (the model loaded since the login's,
        long enough for an outage to begin). A first connection the gateway fails all the same, where discord.py's
        reconnect reads the socket it never got (AttributeError), is Unreachable: one line, not a traceback."""
        await self._reach_gateway()
        try:
            await super().connect(reconnect=reconnect)
        except AttributeError:
            if self.ws is not None:  # a session was up: a bug, not the gateway
                raise
            log.debug("the first gateway connection failed in discord.py's reconnect", exc_info=True)
            gateway = str(discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY)
            raise Unreachable(f"cannot reach Discord's gateway at {gateway}: its first connection failed; check "
                              f"{self._what_to_check(gateway)}") from None

    async def _reach_gateway(self) -> None:
        """The gateway's WebSocket handshake (`_probe`), tried again with backoff for STARTUP_RETRY_S while it fails
        (then Unreachable); a 4xx from DISCORD_GATEWAY_URL is a SettingsError at once."""
        gateway = str(discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY)
        await Retry(self.settings.startup_retry_s, self.stop)(
            lambda: self._probe(gateway), transient=self._unreachable, what=f"Discord's gateway at {gateway}",
            check=self._what_to_check(gateway))

    async def _login_once(self, static_login: Callable[[str], Any], token: str) -> Any:
        """One GET /users/@me within DISCORD_LOGIN_TIMEOUT_S; a failed one leaves no session or connector behind."""
        try:
            return await asyncio.wait_for(static_login(token), self.settings.discord_login_timeout_s)
        except BaseException:
            await self.http.close()
            self.http.connector = discord.utils.MISSING  # the next try makes a fresh one (closing closed this one)
            raise

    async def _probe(self, gateway: str) -> None:
        """One WebSocket handshake with the gateway within DISCORD_LOGIN_TIMEOUT_S, through discord.py's own session
        (its URL as discord.py opens it), closed at once: a gateway out of reach, or failing its handshake, while the
        REST API answers is found here, not in discord.py's reconnect loop (which reads the socket it never got). A
        4xx answer from DISCORD_GATEWAY_URL is a SettingsError: no proxy serves a gateway there."""
        # discord.py's gateway address (a yarl.URL, DISCORD_GATEWAY_URL's when set: bot.app), as it opens it
        url = discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY.with_query(v=discord.http.INTERNAL_API_VERSION,
                                                                           encoding="json")
        try:
            ws = await asyncio.wait_for(self.http.ws_connect(str(url)), self.settings.discord_login_timeout_s)
        except aiohttp.WSServerHandshakeError as error:
            proxied = self.settings.discord_gateway_url
            if proxied is not None and 400 <= error.status < 500 and error.status != 429:
                raise SettingsError([
                    f"DISCORD_GATEWAY_URL={proxied}: the WebSocket handshake at {url} was answered {_answer(error)}: "
                    "nothing serves Discord's gateway at that address; set the address the proxy serves the gateway "
                    "at (a ws:// or wss:// URL), or leave DISCORD_GATEWAY_URL empty for Discord's own"]) from None
            raise
        await ws.close()

    def _unreachable(self, error: Exception) -> str | None:
        """The few words on a login that failed because Discord could not be reached; None for any other error."""
        if isinstance(error, TimeoutError):  # before OSError, of which it is one
            return f"no answer within {self.settings.discord_login_timeout_s:g} s (DISCORD_LOGIN_TIMEOUT_S)"
        if isinstance(error, discord.DiscordServerError):
            return f"Discord answered {error.status} {error.response.reason}"
        if isinstance(error, aiohttp.WSServerHandshakeError):  # before ClientError, of which it is one
            return f"the WebSocket handshake was answered {_answer(error)}"
        if isinstance(error, OSError | aiohttp.ClientError):
            return str(error) or type(error).__name__
        return None

    def _what_to_check(self, gateway: str | None = None) -> str:
        """What an operator checks when the REST API, or else the `gateway`, is out of reach."""
        setting = "DISCORD_API_BASE" if gateway is None else "DISCORD_GATEWAY_URL"
        if getattr(self.settings, setting.lower()) is not None:
            return f"{setting} and that the proxy there is running"
        opening = "" if gateway is None else " (connections to {}:{})".format(*_host_and_port(gateway))
        return f"this host's network connection, DNS and firewall{opening}, and Discord's status at {DISCORD_STATUS}"

    async def setup_hook(self) -> None:
        """Start the service, add the cogs, sync the commands (to the development guild when one is set)."""
        await self._check_home_guild()  # before the models load: a wrong id is the operator's to fix
        self.service = self._service_factory(self.delivery)
        await self.service.start()
        await self.late_posts.post()  # what a stop cut short
        self.post_check = asyncio.create_task(self._forget_missing_posts(), name="videobot-showcase-posts")
        self.delivery.watch_queue(self.service.places)  # queued statuses follow the queue (restored ones too)
        await self.add_cog(ServersCog(self, self.settings, self.service))
        servers = self._server_settings(self.service)
        self.showcase.servers = servers
        video = VideoCog(self, self.service, self.delivery, self.settings, servers)
        await self.add_cog(video)
        await self.add_cog(ResultsCog(video, self._repo, self.showcase, self.media, self.settings,
                                      self.service.moderation))
        # buttons on messages from before this start work too
        self.add_dynamic_items(ResultButton, DeleteChoice, CancelButton, VoteButton)
        moderation = self.service.moderation
        self.retention = Retention(self.media, self.showcase.repo, self.settings.media_keep_days, jobs=self._repo,
                                   audit=None if moderation is None else moderation.repo,
                                   history_keep_days=self.settings.history_keep_days)
        await self.retention.start()
        await self._add_moderation(self.service, servers)
        guild_id = self.settings.discord_guild_id
        if guild_id is not None:
            guild = discord.Object(guild_id)
            self.tree.copy_global_to(guild=guild)
            synced = await self.tree.sync(guild=guild)
            log.info("synced %d commands to guild %d", len(synced), guild_id)
        else:
            synced = await self.tree.sync()
            log.info("synced %d global commands (clients may take a while to show changes)", len(synced))
        await self._forget_former_home(guild_id)
        freeze_startup_heap()

    async def _forget_missing_posts(self) -> None:
        """Showcase posts deleted in Discord while the bot was away, forgotten beside the start (Showcase)."""
        try:
            await self.showcase.forget_missing_posts()
        except Exception:
            log.exception("could not look for showcase posts deleted while the bot was away; the next start "
                          "looks again")

    async def _forget_former_home(self, guild_id: int | None) -> None:
        """Remove the commands a former DISCORD_GUILD_ID's server got of its own (a sync with another id, or none,
        leaves them there, and that server would show every command twice beside the global ones); remembered in the
        operator's settings (COMMANDS_KEY)."""
        moderation = self.service.moderation if self.service is not None else None
        if moderation is None:
            return
        former = await moderation.repo.setting(COMMANDS_KEY, guild_id=GLOBAL)
        if former is not None and former != guild_id:
            old = discord.Object(former)
            self.tree.clear_commands(guild=old)
            try:
                await self.tree.sync(guild=old)
                log.info("removed the commands server %d had of its own (it was DISCORD_GUILD_ID)", former)
            except (discord.Forbidden, discord.NotFound) as error:  # the bot left it: nothing shows there twice
                log.info("server %d's own commands need no removing (%s %s)", former, error.status, error.code)
            except discord.HTTPException as error:  # Discord's trouble: the next start tries again
                log.warning("could not remove the commands server %d had of its own (%s %s); the next start tries "
                            "again", former, error.status, error.code)
                return
        if former != guild_id:
            if guild_id is None:
                await moderation.repo.remove_setting(COMMANDS_KEY, guild_id=GLOBAL)
            else:
                await moderation.repo.set_setting(COMMANDS_KEY, guild_id, guild_id=GLOBAL, by=0)

    async def _check_home_guild(self) -> None:
        """DISCORD_GUILD_ID names a server where the bot may register its commands, else a SettingsError: the bot
        not in it (an id copied from a user or a channel, an invite not yet accepted) or invited without the
        applications.commands scope. The same request the command sync makes, answered the same way."""
        guild_id = self.settings.discord_guild_id
        if guild_id is None:
            return
        try:
            await self.tree.fetch_commands(guild=discord.Object(guild_id))
        except (discord.Forbidden, discord.NotFound) as error:
            raise SettingsError([
                f"DISCORD_GUILD_ID={guild_id}: Discord refused the bot's commands in that server ({error.status} "
                f"{error.text or error.response.reason}): the bot is not in it, or was invited without the "
                "applications.commands scope; invite it with the link of README step 2, check the id (right-click "
                "the server's icon → Copy Server ID), or leave DISCORD_GUILD_ID empty for commands in every server"
            ]) from None

    def _server_settings(self, service: VideoService) -> ServerSettings | None:
        """Each server's /video presets and showcase channel, when the service enforces moderation."""
        if service.moderation is None:
            return None
        limits = PresetLimits(tuple(ASPECTS), self.settings.max_steps, self.settings.max_frames,
                              tuple(service.styles.offered))
        return ServerSettings(service.moderation, limits, service.gate)

    async def _add_moderation(self, service: VideoService, servers: ServerSettings | None) -> None:
        """/quota and /videomod (with `showcase` and `operator`), when the service enforces moderation (quotas,
        blocks, channels)."""
        moderation = service.moderation
        if moderation is None or servers is None:
            return
        await self.add_cog(QuotaCog(moderation))
        editor = DenylistEditor(self._repo, service.gate, moderation)
        videomod = ModerationCog(self.settings, moderation, editor, servers, service.cancel_blocked)
        videomod.app_command.add_command(ShowcaseGroup(self.showcase, self.settings, moderation))
        videomod.app_command.add_command(OperatorGroup(self, self.settings, moderation, editor,
                                                       service.cancel_blocked))
        await self.add_cog(videomod)
        await self.add_cog(StylesCog(self.settings, moderation, service.styles, servers))

    def finish_before_close(self, task: asyncio.Task[Any]) -> None:
        """Keep `task` (an event's listener, a command, a button press: bot.ui.in_flight) in `handlers` until it
        ends: `close` waits for it, so none is left holding a database session when the engine closes."""
        self.handlers.add(task)
        task.add_done_callback(self.handlers.discard)

    def _schedule_event(self, coro: Callable[..., Any], event_name: str, *args: Any, **kwargs: Any) -> asyncio.Task:
        """discord.py's task for an event's listener (a message deleted, a server left), kept until it ends."""
        task = super()._schedule_event(coro, event_name, *args, **kwargs)
        self.finish_before_close(task)
        return task

    async def _finish_handlers(self) -> None:
        """Let the event listeners and commands still running finish, for HANDLERS_GRACE_S at most; then cancel the
        rest and wait for them to unwind (a transaction is rolled back and its connection returned to the pool)."""
        running = self.handlers - {asyncio.current_task()}
        if not running:
            return
        _, late = await asyncio.wait(running, timeout=HANDLERS_GRACE_S)
        if late:
            log.warning("event listeners and commands still running %.0f s into the stop, cancelled: %s",
                        HANDLERS_GRACE_S, ", ".join(sorted(task.get_name() for task in late)))
            for task in late:
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)

    async def close(self) -> None:
        """Stop taking and running jobs first (the running one may still deliver), then leave Discord, then let the
        event listeners and commands still running finish (`_finish_handlers`): none begins once Discord is left."""
        if self.retention is not None:
            await self.retention.stop()
        if self.post_check is not None:
            self.post_check.cancel()
            await asyncio.gather(self.post_check, return_exceptions=True)
        await self.delivery.close()
        await self.late_posts.close()  # before the service stops: the running job's post may fail, and is left pending
        if self.service is not None:
            service, self.service = self.service, None
            try:
                await service.stop()
            except Exception:
                log.exception("stopping the video service failed")
        await super().close()
        await self._finish_handlers()

    def shut_down(self) -> None:
        """Close cleanly, as on SIGTERM (call from inside the running loop); once."""
        if self.closing is None:
            self.closing = asyncio.get_running_loop().create_task(self.close(), name="videobot-close")

    async def on_ready(self) -> None:
        log.info("connected as %s (%d) to %d guilds", self.user, self.user.id if self.user else 0, len(self.guilds))

    async def on_guild_remove(self, guild: discord.Guild) -> None:
        """Removed from a server: its own denylist's gate goes, with what it remembers (ServersCog cancels its jobs)."""
        if self.service is not None:
            self.service.gate.forget_server(guild.id)

    async def on_app_command_error(self, interaction: discord.Interaction,
                                   error: app_commands.AppCommandError) -> None:
        """Domain errors become a short private answer; anything else is logged with its traceback."""
        command = interaction.command.qualified_name if interaction.command else "?"
        cause = error.original if isinstance(error, app_commands.CommandInvokeError) else error
        await answer_error(interaction, cause, f"/{command}")


def freeze_startup_heap() -> None:
    """Hide the objects loaded at startup (torch, the model, detectors) from the cyclic GC, once per process.

    The process holds ~500k long-lived objects; every full collection walked them all, stalling the event loop
    for ~0.5 s on a small CPU. `gc.freeze()` after one last collection keeps later collections short.
    """
    if gc.get_freeze_count():
        return
    started = time.perf_counter()
    gc.collect()
    gc.freeze()
    log.info("froze %d startup objects out of the cyclic GC (%.2f s)", gc.get_freeze_count(),
             time.perf_counter() - started)


def _answer(error: aiohttp.WSServerHandshakeError) -> str:
    """"404 Not Found": the HTTP answer that failed a WebSocket handshake."""
    try:
        return f"{error.status} {HTTPStatus(error.status).phrase}"
    except ValueError:  # a status HTTP names no phrase for
        return str(error.status)


def _host_and_port(url: str) -> tuple[str, int]:
    """A ws:// or wss:// URL's host and port (80 and 443 when it names none)."""
    parts = urlsplit(url)
    return parts.hostname or "", parts.port or (443 if parts.scheme == "wss" else 80)
