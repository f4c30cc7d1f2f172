"""`python -m bot`: read the settings, open the database, load the model, run the Discord bot until stopped."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
from collections.abc import Callable
from typing import Any

import discord
import yarl
from sqlalchemy.engine import make_url

from bot import redaction
from bot.gpu.compiles import COMPILES
from bot.jobs.queue import FairQueue
from bot.jobs.service import JobEvents, VideoService, build_executor
from bot.moderation.policy import DenylistEntry, PolicyGate, load_default_entries
from bot.moderation.rules import Moderation
from bot.settings import Settings, SettingsError, load_settings
from bot.ui.client import VideoBot
from bot.web.gallery import Gallery
from bot.web.health import Health
from bot.web.metrics import Metrics
from storage import ModerationRepository, Repository, ShowcaseRepository, create_engine, migrate

log = logging.getLogger("bot")

LOG_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"


async def load_gate(repo: Repository) -> PolicyGate:
    """Seed the denylist table with the shipped defaults when it is empty; build the gate from the table."""
    await repo.seed_denylist((e.pattern, e.category, e.kind) for e in load_default_entries())
    rows = await repo.list_denylist()
    entries = [DenylistEntry(row.pattern, row.category, row.kind.value) for row in rows]  # type: ignore[arg-type]
    gate = PolicyGate(entries)
    gate.check_prompt("a warm-up prompt")  # loads the language models now, not on the first user's command
    return gate


def point_at_discord(settings: Settings) -> None:
    """Use DISCORD_API_BASE / DISCORD_GATEWAY_URL (a proxy, or a test's fake Discord) instead of Discord's own.

    discord.py builds every REST URL, webhooks and interaction callbacks included, from `Route.BASE`, and a
    non-sharded client opens `DEFAULT_GATEWAY` (then resumes on READY's resume_gateway_url).
    """
    if settings.discord_api_base is not None:
        discord.http.Route.BASE = settings.discord_api_base
        log.warning("Discord REST API at %s (DISCORD_API_BASE): the bot token is sent there", settings.discord_api_base)
    if settings.discord_gateway_url is not None:
        discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(settings.discord_gateway_url)
        log.warning("Discord gateway at %s (DISCORD_GATEWAY_URL)", settings.discord_gateway_url)


async def start_sites(settings: Settings, bot: VideoBot, showcase: ShowcaseRepository,
                      health: Health) -> list[Gallery | Health]:
    """Start the web gallery and the health and metrics endpoints, each when enabled; they listen from now on."""
    sites: list[Gallery | Health] = []
    if settings.gallery_enabled:
        gallery = Gallery(showcase, bot.media)
        await gallery.start(settings.gallery_host, settings.gallery_port)
        sites.append(gallery)
    if settings.health_enabled:
        try:
            await health.start(settings.health_host, settings.health_port)
            sites.append(health)
        except OSError as error:  # the bot still serves Discord; the container's health check reports the gap
            log.error("/healthz and /metrics are not served: cannot listen on %s:%d (%s)", settings.health_host,
                      settings.health_port, error.strerror or error)
    return sites


async def run(settings: Settings) -> int:
    """Build the whole stack on the configured database and run the bot (and the gallery) until it is closed; the
    exit status: 0, or 1 when it stopped because a GPU worker was stuck (its supervisor restarts it)."""
    engine = create_engine(settings.database_url)
    stuck: list[str] = []
    try:
        await migrate(engine)
        repo = Repository(engine)
        gate = await load_gate(repo)
        queue: FairQueue = FairQueue(settings.queue_per_user_cap, settings.queue_global_cap)
        executor = build_executor(settings)
        moderation = Moderation.from_settings(ModerationRepository(engine), settings)
        metrics = Metrics()

        def service(events: JobEvents) -> VideoService:
            built = VideoService(repo, gate, queue, executor, events, max_steps=settings.max_steps,
                                 max_frames=settings.max_frames, moderation=moderation,
                                 shutdown_grace_s=settings.shutdown_grace_s,
                                 job_time_limit_s=settings.job_time_limit_s, metrics=metrics,
                                 batch_max=settings.batch_max, compile_status=compile_status(settings))
            built.on_stuck = on_stuck
            return built

        def on_stuck(reason: str) -> None:
            log.critical("%s; stopping so that the bot's supervisor restarts it (queued jobs are kept)", reason)
            stuck.append(reason)
            bot.shut_down()

        showcase = ShowcaseRepository(engine)
        bot = VideoBot(settings, service, repo=repo, showcase_repo=showcase, gate=gate)
        sites = await start_sites(settings, bot, showcase, Health(bot, metrics, repo))
        point_at_discord(settings)
        try:
            async with bot:
                bot.install_signal_handlers()
                await bot.start(settings.discord_token.get_secret_value())
        finally:
            for site in sites:
                await site.stop()
    finally:
        await engine.dispose()
    return 1 if stuck else 0


def compile_status(settings: Settings) -> Callable[[], dict[str, Any]] | None:
    """What /healthz shows of the background compiles: this process's, when the GPU workers are its threads."""
    return COMPILES.status if settings.t2v_executor == "local" else None


def main() -> int:
    """Entry point; exit code 2 with one line per problem when the settings are wrong."""
    try:
        settings = load_settings()
    except SettingsError as error:
        for line in str(error).splitlines():
            print(f"error: {line}", file=sys.stderr)
        return 2
    logging.basicConfig(level=settings.log_level, format=LOG_FORMAT, stream=sys.stderr)
    redaction.install(logging.getLogger().handlers, [settings.discord_token.get_secret_value()])  # and interactions'
    log.info("starting: model %s on %s, database %s", settings.t2v_model, settings.t2v_device,
             make_url(settings.database_url).render_as_string(hide_password=True))
    code = 0
    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C before the signal handlers are installed
        code = asyncio.run(run(settings))
    COMPILES.stop()
    if COMPILES.busy:  # a thread inside torch's compiler when the interpreter finalises aborts the process
        log.info("stopped with a background compile under way; its result is not needed")
        logging.shutdown()
        os._exit(code)
    return code


if __name__ == "__main__":
    sys.exit(main())
