"""The composition root: build the whole bot on the configured database — storage, the prompt gate, moderation,
the GPU executor, the video service, the Discord client and the web sites — and run it until it is stopped."""

from __future__ import annotations

import asyncio
import errno
import logging
import os
from collections.abc import Awaitable, Callable, Iterator
from contextlib import ExitStack, contextmanager
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import discord
import yarl

from bot.errors import SettingsError, StopRequested, Unreachable
from bot.gpu.compiles import COMPILES
from bot.gpu.executor import Executor, GPUExecutor, devices_for
from bot.gpu.source import ModelSource
from bot.gpu.work import capture_while_idle
from bot.jobs.events import JobEvents
from bot.jobs.queue import FairQueue
from bot.jobs.service import VideoService
from bot.media import FOLDER_MODE, MediaStore
from bot.moderation.denylist_edits import load_gates
from bot.moderation.gates import ServerGates
from bot.moderation.rules import Moderation
from bot.settings import Settings
from bot.startup import MEDIA_LOCK, Retry, Stop
from bot.tasks import stop_task
from bot.ui.client import VideoBot
from bot.web.gallery import Gallery
from bot.web.health import Health
from bot.web.metrics import Metrics
from storage import (
    DatabaseInUse,
    DatabaseRefused,
    DatabaseUnreachable,
    FileHeld,
    Hold,
    ModerationRepository,
    Repository,
    SchemaTooNew,
    ShowcaseRepository,
    check_connection,
    create_engine,
    held_alone,
    hold_file,
    migrate,
    urls,
    utc_now,
)
from storage.errors import said, unavailable
from storage.retry import is_locked_error
from t2v.ellipsis import clip

if TYPE_CHECKING:
    from storage.db import AsyncEngine

log = logging.getLogger(__name__)

HOLD_CHECK_S = 60.0  # how often the bot checks that its database is still its own (storage.Hold)
NO_LOCKS = (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS)  # a file system that takes no locks (NFS without its lock
# service, some FUSE mounts): MEDIA_DIR is used unlocked, with a warning
LOGIN_ANSWER_SHOWN = 200  # characters of a proxy's answer to the login that its line shows (an error page's text)


async def run(settings: Settings) -> int:
    """Build the whole stack on the configured database and run the bot (and the gallery) until it is closed; the
    exit status: 0, or 1 when it stopped because a GPU worker was stuck (its supervisor restarts it). A SIGTERM or
    SIGINT at any moment stops it cleanly (0). Raises Unreachable when the database or Discord cannot be reached
    within STARTUP_RETRY_S, or when the database stops serving the bot's reads and writes (another process keeps
    it locked, its disk is full: storage.errors.unavailable), SettingsError when either refuses what the settings
    give it or another bot holds the database (storage.held_alone) or MEDIA_DIR (`media_held_alone`). Where the
    gallery and /healthz listen was checked before (bot.startup)."""
    stop = Stop().install()
    engine = create_engine(settings.database_url)
    try:
        await reach_database(engine, settings, Retry(settings.startup_retry_s, stop))
        async with held_alone(engine) as hold:
            with media_held_alone(settings.media_dir):
                await migrate_or_explain(engine, settings)
                await set_aside_others_videos(Repository(engine), settings)
                return await serve(settings, engine, stop, hold)
    except DatabaseInUse as error:
        raise SettingsError([f"DATABASE_URL={urls.shown(settings.database_url)}: {error}. Two bots on one database "
                             "would each run the other's queued jobs and deliver them twice: stop the other one "
                             "(systemctl stop videobot, docker compose stop bot), or give this one a database of its "
                             "own"]) from None
    except StopRequested:
        log.info("stopped before the bot was running")
        return 0
    except Exception as error:
        if not unavailable(error):
            raise
        raise Unreachable(unserved_start(settings, error)) from None
    finally:
        await engine.dispose()


@contextmanager
def media_held_alone(media_dir: Path) -> Iterator[None]:
    """Hold MEDIA_DIR for this bot alone while the block runs (an exclusive lock on its MEDIA_LOCK file, which the
    system frees when the process ends, however it ends), or raise SettingsError at once: a second bot on the same
    folder with a database of its own would move the first one's videos aside at its start (their ids are above its
    database's last), delete them in its retention sweeps and show them as its own jobs' (ids are per database)."""
    missing = [folder for folder in (media_dir, *media_dir.parents) if not folder.is_dir()]
    for folder in reversed(missing):  # bot.startup checked that this user may make it; 0755 as bot.media makes them
        folder.mkdir(exist_ok=True)
        os.chmod(folder, FOLDER_MODE)
    lock = media_dir / MEDIA_LOCK
    with ExitStack() as held:
        try:
            held.enter_context(hold_file(lock))
        except FileHeld as error:
            raise SettingsError([f"MEDIA_DIR={media_dir}: another bot (pid {error.holder}) keeps its videos there "
                                 f"({lock} is locked). Two bots on one MEDIA_DIR, each with its own database, would "
                                 "move aside and delete each other's videos and show them as their own jobs': stop the "
                                 "other one, or give this one a MEDIA_DIR of its own"]) from None
        except OSError as error:
            if error.errno not in NO_LOCKS:
                raise
            log.warning("MEDIA_DIR=%s: cannot lock %s (%s), so a second bot started on this folder would not be "
                        "stopped; the bot runs on", media_dir, lock, error.strerror or error)
        yield


def unserved_start(settings: Settings, error: Exception) -> str:
    """One line for a database that answered the first connection and then stopped serving the bot's reads and writes
    (`storage.errors.unavailable`), most often at the start (the migration, the denylist's seeding): a SQLite file
    another process keeps locked in a write transaction longer than the bot's retries wait, or a full disk."""
    shown = urls.shown(settings.database_url)
    if is_locked_error(error) and urls.parse(settings.database_url).sqlite_file is not None:
        return (f"DATABASE_URL={shown}: the database stayed locked by another process ({said(error)}): a program "
                "holds a write transaction open on it (a sqlite3 shell inside BEGIN, a backup or a copy of the "
                "file); end it, and the bot's supervisor starts the bot again")
    return (f"DATABASE_URL={shown}: the database stopped serving the bot ({said(error)}); check that it is up and "
            "its disk healthy and not full; the bot's supervisor starts the bot again")


async def migrate_or_explain(engine: AsyncEngine, settings: Settings) -> None:
    """Migrate the database to this version's schema; a database a newer version migrated is a SettingsError
    (exit 2: restarting cannot help)."""
    try:
        await migrate(engine, home_guild_id=settings.discord_guild_id)  # rows from before servers: migration 0004
    except SchemaTooNew as error:
        raise SettingsError([f"DATABASE_URL={urls.shown(settings.database_url)}: {error}: a newer version of the bot "
                             "upgraded it. Run that version again, or restore the backup taken before the upgrade "
                             "(README, 'Back up')"]) from None


async def reach_database(engine: AsyncEngine, settings: Settings, retry: Retry) -> None:
    """Make the SQLite file's folder, then open a first connection, tried again while the server cannot be reached
    (a PostgreSQL container still starting); a database that refuses the connection is a wrong setting. A SQLite file
    that is not there yet is made, and where is logged: at INFO on a first start, as a WARNING where MEDIA_DIR already
    keeps videos of an earlier run — then DATABASE_URL most likely names another file than the bot's (its queue,
    quotas and blocks stay in that one)."""
    url, shown = urls.parse(settings.database_url), urls.shown(settings.database_url)
    new = url.sqlite_file is not None and not url.sqlite_file.exists()
    if url.sqlite_file is not None:
        url.sqlite_file.parent.mkdir(parents=True, exist_ok=True)
    check = (f"that PostgreSQL runs and accepts connections at {url.address} (DATABASE_URL's host and port) and "
             "that no firewall is in between") if url.backend == "postgresql" else "DATABASE_URL"
    try:
        await retry(lambda: check_connection(engine), what=f"the database at {shown}", check=check,
                    transient=lambda error: error.reason if isinstance(error, DatabaseUnreachable) else None)
    except DatabaseRefused as error:
        what = ("that the file is the bot's SQLite database (or a new name, for a new one), not another kind of "
                "file" if url.sqlite_file is not None else "the user, the password and the database name in it")
        raise SettingsError([f"DATABASE_URL={shown}: the database refused the connection: {error.reason}; check "
                             f"{what}"]) from None
    if new:
        assert url.sqlite_file is not None
        kept = next(Path(settings.media_dir).glob("*.mp4"), None) if Path(settings.media_dir).is_dir() else None
        if kept is None:
            log.info("DATABASE_URL=%s: a new database at %s (the bot's first start)", shown, url.sqlite_file.absolute())
            return
        log.warning("DATABASE_URL=%s: there was no database at %s, so a new, empty one was made there, but MEDIA_DIR "
                    "keeps videos of an earlier run (%s): DATABASE_URL most likely names another file than the bot's "
                    "database (a relative path is read from the working directory, %s; an absolute one takes four "
                    "slashes, sqlite+aiosqlite:////var/lib/videobot/videobot.db)", shown, url.sqlite_file.absolute(),
                    kept.name, Path.cwd())


async def set_aside_others_videos(repo: Repository, settings: Settings,
                                  now: Callable[[], datetime] = utc_now) -> None:
    """Move MEDIA_DIR's videos and posters of job ids the database has not handed out yet into a folder of their own
    (bot.media's `set_aside`): a new, empty database (or an older backup) beside the media folder of a longer run
    hands those ids out again, and each new job would show another job's video as its own (a post a restart cut
    short, ⬆️ Upscale, a nomination, the gallery) until its own replaced it. One WARNING line when any moved; a
    restart on the same database moves nothing. A MEDIA_DIR that cannot be read is a WARNING, and the bot starts."""
    last = await repo.last_job_id()
    media = MediaStore(settings.media_dir)
    try:
        aside = await media.set_aside(last, now())
    except OSError as error:
        log.warning("MEDIA_DIR=%s: could not move aside the videos of jobs this database has not had yet (%s): a new "
                    "job may show an older video kept under its id", settings.media_dir, error.strerror or error)
        return
    if aside is not None:
        log.warning("MEDIA_DIR=%s kept %d videos and %d poster frames of jobs this database has not had yet (ids "
                    "above %d, its last; a new database, or an older backup, beside the media folder of a longer "
                    "run): moved to %s, so that no new job shows one as its own; nothing was deleted (back on the "
                    "database they belong to, move them back)", settings.media_dir, len(aside.videos),
                    len(aside.posters), last, aside.folder)


async def serve(settings: Settings, engine: AsyncEngine, stop: Stop, hold: Hold | None = None) -> int:
    """Build the bot on the migrated database and run it until it is closed; 1 when a stuck GPU worker stopped it,
    2 when another bot took the database (`hold`, checked every HOLD_CHECK_S, lost)."""
    stuck: list[str] = []
    taken: list[str] = []
    repo, moderation_repo = Repository(engine), ModerationRepository(engine)
    gate = await load_gates(repo, moderation_repo)
    queue: FairQueue = FairQueue(settings.queue_per_user_cap, settings.queue_global_cap)
    executor = build_executor(settings)
    moderation = Moderation.from_settings(moderation_repo, settings)
    metrics = Metrics()

    def service(events: JobEvents) -> VideoService:
        built = video_service(settings, repo, gate, queue, executor, events, moderation, metrics=metrics,
                              compile_status=compile_status(settings))
        built.on_stuck = on_stuck
        return built

    def on_stuck(reason: str) -> None:
        log.critical("%s; stopping so that the bot's supervisor restarts it (queued jobs are kept)", reason)
        stuck.append(reason)
        bot.shut_down()

    def on_taken(reason: str) -> None:
        log.critical("DATABASE_URL=%s: the bot's hold on its database was lost and %s; stopping: two bots on one "
                     "database would each run the other's jobs", urls.shown(settings.database_url), reason)
        taken.append(reason)
        bot.shut_down()

    showcase = ShowcaseRepository(engine)
    bot = VideoBot(settings, service, repo=repo, showcase_repo=showcase, stop=stop)
    metrics.track_retention(lambda: None if bot.retention is None else bot.retention.removed)
    database = urls.parse(settings.database_url).sqlite_file
    folders = {"media": settings.media_dir, **({} if database is None else {"database": database.absolute().parent})}
    sites = await start_sites(settings, bot, showcase, Health(bot, metrics, repo, folders=folders))
    point_at_discord(settings)
    watch = asyncio.create_task(keep_hold(hold, on_taken), name="database-hold") if hold is not None else None
    try:
        async with bot:
            stop.hand_over(bot.shut_down)
            await bot.start(settings.discord_token.get_secret_value())
    except discord.HTTPException as error:
        refused = proxy_refused_login(settings, error)
        if refused is None:
            raise
        raise SettingsError([refused]) from None
    finally:
        await stop_task(watch)
        for site in sites:
            await site.stop()
    return 2 if taken else 1 if stuck else 0


def proxy_refused_login(settings: Settings, error: discord.HTTPException) -> str | None:
    """The line for DISCORD_API_BASE when the login's first request (GET /users/@me) got an answer other than the
    user, a 401 (a refused token: bot.ui.client says so) or a 5xx (tried again): the proxy does not serve Discord's
    REST API at that address (a base without its /api/v10: Discord itself answers 404 to /users/@me), or turns the
    bot away. None for any other request's error, and without a proxy."""
    response = getattr(error, "response", None)
    url = getattr(response, "url", None)
    if (settings.discord_api_base is None or url is None or error.status >= 500
            or getattr(response, "method", "GET") != "GET" or not str(url.path).endswith("/users/@me")):
        return None
    answer = " ".join(filter(None, [str(error.status), getattr(response, "reason", None)]))
    said = " ".join(str(error.text).split())
    said = f": {clip(said, LOGIN_ANSWER_SHOWN)}" if said else ""
    return (f"DISCORD_API_BASE={settings.discord_api_base}: the login's first request, GET {url}, was answered "
            f"{answer}{said}; give the address at which the proxy serves "
            "Discord's REST API (Discord's own is https://discord.com/api/v10), such as "
            "https://discord-proxy.internal/api/v10")


async def keep_hold(hold: Hold, taken: Callable[[str], None],
                    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
    """Check the database hold every HOLD_CHECK_S (storage.Hold.check renews a lock a lost session took with it);
    `taken(reason)` once another process holds it. A database out of reach is tried again at the next check, logged
    as it begins (or fails otherwise) and as it ends, not at every check through an outage."""
    failing = None  # why the last check failed, as logged
    while True:
        await sleep(HOLD_CHECK_S)
        try:
            await hold.check()
        except DatabaseInUse as error:
            taken(str(error))
            return
        except Exception as error:
            why = f"{type(error).__name__}: {error}"
            if why != failing:
                log.warning("could not check the bot's hold on its database (%s); trying again every %.0f s", why,
                            HOLD_CHECK_S)
            failing = why
        else:
            if failing is not None:
                log.info("the bot's hold on its database is checked again (it could not be: %s)", failing)
            failing = None


def video_service(settings: Settings, repo: Repository, gate: ServerGates, queue: FairQueue, executor: Executor,
                  events: JobEvents, moderation: Moderation, *, metrics: Metrics | None = None,
                  compile_status: Callable[[], dict[str, Any]] | None = None,
                  batch_max: int | None = None) -> VideoService:
    """The VideoService the settings describe (`batch_max` None: BATCH_MAX's): python -m bot's, and the tests'. An
    upscale reads its source video from MEDIA_DIR as it is now (a queued one too, after MEDIA_DIR moved)."""
    service = VideoService(repo, gate, queue, executor, events, max_steps=settings.max_steps,
                           max_frames=settings.max_frames, moderation=moderation,
                           shutdown_grace_s=settings.shutdown_grace_s, job_time_limit_s=settings.job_time_limit_s,
                           metrics=metrics, batch_max=settings.batch_max if batch_max is None else batch_max,
                           compile_status=compile_status)
    service.units.kept_video = MediaStore(settings.media_dir).path
    return service


def server_name(bot: VideoBot) -> Callable[[int], str | None]:
    """A server's name as Discord told the bot, None when the bot is not in it (for the gallery's pages)."""

    def name(guild_id: int) -> str | None:
        guild = bot.get_guild(guild_id)
        return None if guild is None else guild.name

    return name


def build_executor(settings: Settings, loop: asyncio.AbstractEventLoop | None = None) -> Executor:
    """The executor T2V_EXECUTOR names, each worker loading T2V_MODEL (and UPSCALE_MODEL, if set): `local`, one
    thread per device of T2V_DEVICE; `ray`, one actor per GPU (or RAY_WORKER_RESOURCE unit) of the Ray cluster. Each
    worker captures its compiled shapes' CUDA graphs while it waits for jobs (bot.gpu.work.capture_while_idle)."""
    if settings.t2v_executor == "ray":
        from bot.gpu.ray_executor import RayExecutor  # lazily: ray is an optional extra

        return RayExecutor.from_settings(settings, loop)
    return GPUExecutor(devices_for(settings.t2v_device), ModelSource.of(settings), loop, idle=capture_while_idle)


def compile_status(settings: Settings) -> Callable[[], dict[str, Any]] | None:
    """What /healthz shows of the background compiles: this process's, when the GPU workers are its threads."""
    return COMPILES.status if settings.t2v_executor == "local" else None


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
    wanted: list[tuple[Gallery | Health, str, int, str, str]] = []
    if settings.gallery_enabled:
        gallery = Gallery(showcase, bot.media, front_page=settings.gallery_front_page, server_name=server_name(bot),
                          public_url=settings.gallery_public_url)
        wanted.append((gallery, settings.gallery_host, settings.gallery_port, "the gallery is", "GALLERY"))
    if settings.health_enabled:
        wanted.append((health, settings.health_host, settings.health_port, "/healthz and /metrics are", "HEALTH"))
    sites: list[Gallery | Health] = []
    for site, host, port, what, setting in wanted:
        try:
            await site.start(host, port)
            sites.append(site)
        except OSError as error:  # a port in use (the rest bot.startup refused at start): the bot still serves
            # Discord; the container's health check reports a missing /healthz
            log.error("%s not served: cannot listen on %s:%d (%s); the bot goes on without it; set %s_PORT to a free "
                      "port (or %s_HOST to an address of this host), or %s_ENABLED=0", what, host, port,
                      error.strerror or error, setting, setting, setting)
    return sites
