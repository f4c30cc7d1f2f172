"""The Discord client: cogs, command sync, one error handler for every app command, clean shutdown."""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
import time
from collections.abc import Callable
from datetime import datetime
from functools import partial

import discord
from discord import app_commands
from discord.ext import commands

from bot.gpu.models import ASPECTS
from bot.jobs.events import JobEvents
from bot.jobs.service import VideoService
from bot.media import MediaStore, Retention
from bot.moderation.denylist_edits import DenylistEditor
from bot.moderation.servers import PresetLimits, ServerSettings
from bot.settings import Settings
from bot.ui.cogs.moderation import ModerationCog
from bot.ui.cogs.moderation_operator import OperatorGroup
from bot.ui.cogs.quota import QuotaCog
from bot.ui.cogs.results import ResultButton, ResultsCog, result_view
from bot.ui.cogs.servers import ServersCog
from bot.ui.cogs.showcase import ShowcaseGroup
from bot.ui.cogs.video import VideoCog
from bot.ui.delivery import Delivery
from bot.ui.replies import answer_error
from bot.ui.showcase import Showcase, VoteButton
from storage import Repository, ShowcaseRepository, utc_now

log = logging.getLogger(__name__)

ServiceFactory = Callable[[JobEvents], VideoService]  # the bot's delivery in, the running service's owner out


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
    ) -> None:
        super().__init__(command_prefix=commands.when_mentioned, intents=discord.Intents.default(),
                         allowed_mentions=discord.AllowedMentions.none(), help_command=None)
        self.settings = settings
        self.media = MediaStore(settings.media_dir)
        views = partial(result_view, upscale=settings.upscale_model is not None)  # ⬆️ only with an upscaler
        self.delivery = Delivery(self, settings, repo, monotonic=monotonic, now=now, media=self.media,
                                 result_view=views)
        self.showcase = Showcase(self, settings, showcase_repo, repo, self.media)
        self._repo = repo
        self._service_factory = service_factory
        self.service: VideoService | None = None
        self.closing: asyncio.Task[None] | None = None  # the close() a signal started
        self.retention: Retention | None = None  # removes old kept videos (MEDIA_KEEP_DAYS)
        self.tree.error(self.on_app_command_error)

    async def setup_hook(self) -> None:
        """Start the service, add the cogs, sync the commands (to the development guild when one is set)."""
        self.service = self._service_factory(self.delivery)
        await self.service.start()
        await self.add_cog(ServersCog(self, self.settings))
        servers = self._server_settings(self.service)
        self.showcase.servers = servers
        video = VideoCog(self, self.service, self.delivery, self.settings, servers)
        await self.add_cog(video)
        await self.add_cog(ResultsCog(video, self._repo, self.showcase, self.media, self.settings,
                                      self.service.moderation))
        self.add_dynamic_items(ResultButton, VoteButton)  # buttons on messages from before this start work too
        if self.settings.media_keep_days:
            self.retention = Retention(self.media, self.showcase.repo, self.settings.media_keep_days)
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
        freeze_startup_heap()

    def _server_settings(self, service: VideoService) -> ServerSettings | None:
        """Each server's /video presets and showcase channel, when the service enforces moderation."""
        if service.moderation is None:
            return None
        limits = PresetLimits(tuple(ASPECTS), self.settings.max_steps, self.settings.max_frames)
        return ServerSettings(service.moderation, limits)

    async def _add_moderation(self, service: VideoService, servers: ServerSettings | None) -> None:
        """/quota and /videomod (with `showcase` and `operator`), when the service enforces moderation (quotas,
        blocks, channels)."""
        moderation = service.moderation
        if moderation is None or servers is None:
            return
        await self.add_cog(QuotaCog(moderation))
        editor = DenylistEditor(self._repo, service.gate, moderation)
        videomod = ModerationCog(self.settings, moderation, editor, servers)
        videomod.app_command.add_command(ShowcaseGroup(self.showcase, self.settings, moderation))
        videomod.app_command.add_command(OperatorGroup(self, self.settings, moderation, editor))
        await self.add_cog(videomod)

    async def close(self) -> None:
        """Stop taking and running jobs first (the running one may still deliver), then leave Discord."""
        if self.retention is not None:
            await self.retention.stop()
        if self.service is not None:
            service, self.service = self.service, None
            try:
                await service.stop()
            except Exception:
                log.exception("stopping the video service failed")
        await super().close()

    def install_signal_handlers(self) -> None:
        """Close cleanly on SIGTERM (Docker, systemd) and SIGINT; call from inside the running loop."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            try:
                loop.add_signal_handler(sig, self._on_signal, sig)
            except (NotImplementedError, RuntimeError):  # Windows, or not the main thread
                log.debug("cannot install a handler for %s here", sig.name)

    def _on_signal(self, sig: signal.Signals) -> None:
        log.info("%s received; shutting down", sig.name)
        self.shut_down()

    def shut_down(self) -> None:
        """Close cleanly, as on SIGTERM (call from inside the running loop); once."""
        if self.closing is None:
            self.closing = asyncio.get_running_loop().create_task(self.close(), name="videobot-close")

    async def on_ready(self) -> None:
        log.info("connected as %s (%d) to %d guilds", self.user, self.user.id if self.user else 0, len(self.guilds))

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

