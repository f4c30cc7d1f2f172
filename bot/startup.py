"""What `python -m bot` checks and waits for before it serves.

`check_environment`: what the settings name must be there and usable — the GPUs of T2V_DEVICE, the weights of
T2V_MODEL and UPSCALE_MODEL (every file there and whole), the STYLES_FILE and its LoRA files (bot.gpu.styles), a
MEDIA_DIR, a SQLite database (storage.sqlite_file checks its file) and (where this host compiles) a T2V_COMPILE_CACHE
this user may write, the database's driver, and the hosts and ports the gallery and /healthz listen on
(`listen_problems`). Each problem is one line of a SettingsError (exit status 2), found before the database is
created or a model loaded; with settings that were wrong, the checks that read them are skipped and the others run
(every problem in one run) — all but the database driver's, which imports SQLAlchemy and so runs only once every
setting was read right (a start that stops at its settings loads nothing heavy).

`Retry` and `Stop`: what is outside the bot's control (the database at container start, Discord during an outage) is
tried again with backoff for STARTUP_RETRY_S, then given up on as one Unreachable line (exit status 1, for the
supervisor to start it again later); a SIGTERM or SIGINT meanwhile ends the start cleanly (StopRequested, exit 0).
"""

from __future__ import annotations

import asyncio
import errno
import logging
import signal
import socket
import time
from collections.abc import Awaitable, Callable, Collection
from pathlib import Path
from typing import TypeVar

from bot.errors import SettingsError, StopRequested, Unreachable
from bot.gpu.executor import check_devices, devices_for
from bot.gpu.styles import check_styles
from bot.settings import Settings, fast_path_on
from storage import sqlite_file, urls
from t2v.config import TINY_RANDOM
from t2v.ellipsis import clip
from t2v.errors import current_user

log = logging.getLogger(__name__)

T = TypeVar("T")
FIRST_DELAY_S = 1.0  # the first wait after a failed try; each next one doubles ...
MAX_DELAY_S = 30.0  # ... up to this
DEPLOYED_AS = "the Docker image runs as uid 10001, the systemd unit as user videobot"
SYSTEMD_STATE = "/var/lib/videobot"  # deploy/videobot.service's StateDirectory: the one folder the unit may write
MEDIA_LOCK = ".videobot.lock"  # in MEDIA_DIR: held by the one bot whose videos are kept there (bot.app)
PATH_SHOWN = 40  # characters of a path setting too long that its line shows, "…" included


# --- the environment the settings name ------------------------------------------------------------------------------


def check_environment(settings: Settings, unknown: Collection[str] = ()) -> None:
    """Raise SettingsError with one line per thing the settings name that is missing or unusable here. `unknown`: the
    settings whose own values were wrong (bot.settings.load_what_validates; their lines say so already): each check
    that reads one of them is skipped, the others run."""
    def reads(*names: str) -> bool:
        return not set(names) & set(unknown)

    here = settings.t2v_executor != "ray"  # with Ray, the GPUs, weights and LoRA files are the workers' hosts'
    problems: list[str | None] = []
    if here and reads("t2v_executor", "t2v_device"):
        devices = _device_problem(settings.t2v_device)
        problems.append(devices)
        if devices is None and reads("t2v_dtype") and settings.t2v_dtype == "fp8":  # GPUs there: can they?
            problems += _fp8_problems(settings.t2v_device)
    for name in ("t2v_model", "upscale_model"):
        if here and reads("t2v_executor", name):
            problems.append(_model_problem(name.upper(), getattr(settings, name)))
    if reads("t2v_executor", "styles_file"):
        problems += check_styles(settings.styles_file, check_files=here)
    if reads("media_dir"):
        problems.append(writable_folder("MEDIA_DIR", str(settings.media_dir), settings.media_dir)
                        or media_lock_problem(settings.media_dir))
    database = None
    if reads("database_url"):
        database = database_file(settings)
        problems.append(database_file_problem(settings, database))
        if not unknown:  # the run imports the driver next; with wrong settings the start answers without loading it
            problems.append(database_driver_problem(settings))
    # the compile cache's default is the database's folder: a problem there is the database's line already
    derived = settings.t2v_compile_cache is None and database is not None and database.in_folder
    if not derived and reads("t2v_executor", "t2v_device", "t2v_optimize", "t2v_compile_cache", "database_url",
                             "media_dir"):
        problems.append(compile_cache_problem(settings))
    problems += listen_problems(settings, [site for site in ("gallery", "health")
                                           if reads(f"{site}_enabled", f"{site}_host", f"{site}_port")])
    found = [problem for problem in problems if problem]
    if found:
        raise SettingsError(found)


def listen_problems(settings: Settings, sites: Collection[str] = ("gallery", "health")) -> list[str]:
    """One line for each enabled site of `sites` (the gallery, /healthz) whose host this host cannot listen on: a name
    that does not resolve, an address that is not this host's, a port this user may not open. A port in use is left
    to start_sites, which logs it and runs on: another process may be about to free it (the old container
    stopping)."""
    wanted = [(site.upper(), getattr(settings, f"{site}_host"), getattr(settings, f"{site}_port")) for site in sites
              if getattr(settings, f"{site}_enabled")]
    return [problem for problem in (listen_problem(*site) for site in wanted) if problem]


def listen_problem(setting: str, host: str, port: int) -> str | None:
    """Bind each address `host` resolves to, as asyncio's create_server will, and close it at once; the problem as one
    line naming SETTING_HOST or SETTING_PORT. A port in use is no problem here (listen_problems says why)."""
    try:
        addresses = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as error:
        return f"{setting}_HOST={host}: no address has that name ({error.strerror}); {_listen_instead(setting)}"
    for family, kind, protocol, _, address in addresses:
        try:
            sock = socket.socket(family, kind, protocol)
        except OSError:  # a family this host lacks: asyncio skips it too
            continue
        with sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as asyncio's: a TIME_WAIT is no problem
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            try:
                sock.bind(address)
            except OSError as error:
                if error.errno != errno.EADDRINUSE:
                    return _bind_problem(setting, host, port, address[0], error)
    return None


def _bind_problem(setting: str, host: str, port: int, address: str, error: OSError) -> str:
    """What a failed bind of `address` (one that `host` resolves to) means to the operator, in one line."""
    if error.errno == errno.EACCES:
        return (f"{setting}_PORT={port}: permission denied to listen on {host}:{port} (ports below 1024 need root or "
                f"CAP_NET_BIND_SERVICE); set {setting}_PORT to a port above 1023, or {setting}_ENABLED=0")
    named = f"{setting}_HOST={host}" + ("" if address == host else f" ({address})")
    if error.errno == errno.EADDRNOTAVAIL:
        return f"{named} is not an address of this host, so nothing can listen on it; {_listen_instead(setting)}"
    return f"{named}, {setting}_PORT={port}: cannot listen there ({error.strerror}); {_listen_instead(setting)}"


def _listen_instead(setting: str) -> str:
    return (f"set {setting}_HOST to an address of this host, such as 127.0.0.1 (this host only) or 0.0.0.0 (every "
            f"address), or {setting}_ENABLED=0")


def _device_problem(setting: str) -> str | None:
    """T2V_DEVICE's GPUs on this host."""
    try:
        check_devices(setting)
    except (ValueError, RuntimeError) as error:
        return str(error)
    return None


def _fp8_problems(setting: str) -> list[str | None]:
    """T2V_DTYPE=fp8 on each of T2V_DEVICE's GPUs, all present (T2V_DEVICE's own check): each must have fp8 tensor
    cores (Ada, Hopper or later)."""
    from t2v.kernels import fp8  # lazily: it imports torch

    try:
        devices = devices_for(setting)
    except (ValueError, RuntimeError):
        return []
    reasons = [(device, fp8.unavailable(device)) for device in devices]
    return [f"T2V_DTYPE=fp8 on {device}: {reason}; use T2V_DTYPE=auto there" for device, reason in reasons if reason]


def _model_problem(name: str, source: str | None) -> str | None:
    """T2V_MODEL's or UPSCALE_MODEL's folder on this host: its layout and its weight files whole."""
    if source is None or source == TINY_RANDOM:
        return None
    from t2v import preflight  # lazily: it imports torch, which the bot loads anyway from here on

    problem = preflight.model_source(name, source)
    try:
        missing = problem is not None and not Path(source).exists()
    except OSError:  # under a folder this user may not enter, a name too long to look up: the problem says so
        missing = False
    return f"{problem}; set {name} to the folder that holds your weights" if missing else problem


def writable_folder(setting: str, value: str, folder: Path) -> str | None:
    """Whether this user may create `folder` (if missing) and files in it; the problem as one line naming the
    setting, the user and the folder."""
    from t2v.preflight import nearest_folder, path_length  # lazily, as above

    too_long = path_length(str(folder))  # every look at it would fail: "File name too long"
    if too_long is not None:
        return f"{setting}={clip(value, PATH_SHOWN)}: {too_long}; set {setting} to a shorter path"
    existing, error = nearest_folder(folder)
    if isinstance(error, NotADirectoryError):
        return f"{setting}={value}: {existing} is a file, not a folder; set {setting} to a folder"
    if isinstance(error, PermissionError):
        return (f"{setting}={value}: permission denied: user {current_user()} may not create files in {existing}; "
                f"make it writable for that user (chown or chmod) or set {setting} to a folder it may write "
                f"({DEPLOYED_AS})")
    if error is not None and error.errno == errno.EROFS:
        return _read_only(setting, value, existing, f"set {setting} to a folder it may write")
    if error is not None:
        return (f"{setting}={value}: user {current_user()} cannot create files in {existing} ({error.strerror}); "
                f"set {setting} to a folder it may write")
    return None


def media_lock_problem(media_dir: Path) -> str | None:
    """Whether this user may open MEDIA_DIR's lock file (bot.app.media_held_alone) where one is left: one that a bot
    run as another user (root, say) made would stop the start with a traceback."""
    lock = media_dir / MEDIA_LOCK
    try:
        with open(lock, "r+", encoding="ascii"):
            return None
    except FileNotFoundError:
        return None
    except PermissionError:
        owner = lock.stat()
        return (f"MEDIA_DIR={media_dir}: permission denied: user {current_user()} may not write {lock} (uid "
                f"{owner.st_uid}, mode {owner.st_mode & 0o777:o}), the lock a bot run as another user left; it holds "
                "no data: remove it, or give it to that user (chown)")
    except OSError as error:
        return f"MEDIA_DIR={media_dir}: user {current_user()} cannot open {lock} ({error.strerror}); remove it"


def compile_cache_problem(settings: Settings) -> str | None:
    """The compile cache's folder, where this host's workers compile (T2V_OPTIMIZE on this host's devices)."""
    compiles = any(fast_path_on(settings.t2v_optimize, device.strip()) for device in settings.t2v_device.split(","))
    if settings.t2v_executor == "ray" or not compiles:
        return None
    return writable_folder("T2V_COMPILE_CACHE", str(settings.compile_cache), settings.compile_cache)


def _read_only(setting: str, value: str, path: Path, instead: str) -> str:
    """A folder or file on a read-only file system: systemd's ProtectSystem=strict, or a read-only mount. `instead`:
    the setting's other way out (another folder)."""
    return (f"{setting}={value}: {path} is on a read-only file system for user {current_user()}; {instead}, or, "
            f"under the systemd unit (ProtectSystem=strict: only {SYSTEMD_STATE} is writable), add the folder to "
            "ReadWritePaths= with `systemctl edit videobot`")


def database_file_problem(settings: Settings, problem: sqlite_file.FileProblem | None) -> str | None:
    """DATABASE_URL's line for what stops this user from using its SQLite database (`problem`: database_file's):
    storage's words, with how the bot is deployed where that is the fix."""
    if problem is None:
        return None
    shown = urls.shown(settings.database_url)
    if problem.kind == "read-only":
        return _read_only("DATABASE_URL", shown, problem.path.absolute(), "name a database file in a folder it may "
                          "write")
    deployed = f" ({DEPLOYED_AS})" if problem.kind in ("denied", "unreachable") else ""
    return f"DATABASE_URL={shown}: {problem.text}{deployed}"


def database_file(settings: Settings) -> sqlite_file.FileProblem | None:
    """What stops this user from using the SQLite database DATABASE_URL names, in a folder where it may create the
    journal files (storage's one check of it); None for PostgreSQL."""
    database = urls.parse(settings.database_url).sqlite_file
    return None if database is None else sqlite_file.problem(database)


def database_driver_problem(settings: Settings) -> str | None:
    """The asyncio driver of DATABASE_URL's database, imported as the run will (with SQLAlchemy): not installed, or
    a broken install, is one line naming it and how to install it."""
    from storage.db import check_driver  # lazily: SQLAlchemy, which the run loads next anyway
    from storage.errors import DriverMissing

    try:
        check_driver(settings.database_url)
    except DriverMissing as error:
        return f"DATABASE_URL={urls.shown(settings.database_url)}: {error}"
    return None


# --- waiting for what is outside the bot's control ------------------------------------------------------------------


class Stop:
    """SIGTERM and SIGINT from the start of the run: they set `requested`, which the start-up's waits race, and once
    the bot is built they close it (`hand_over`)."""

    def __init__(self) -> None:
        self.requested = asyncio.Event()
        self._then: Callable[[], None] | None = None

    def install(self) -> Stop:
        """Handle SIGTERM (docker stop, systemctl stop) and SIGINT on the running loop; returns itself."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            try:
                loop.add_signal_handler(sig, self._on_signal, sig)
            except (NotImplementedError, RuntimeError):  # Windows, or not the main thread
                log.debug("cannot install a handler for %s here", sig.name)
        return self

    def _on_signal(self, sig: signal.Signals) -> None:
        log.info("%s received; shutting down", sig.name)
        self.requested.set()
        if self._then is not None:
            self._then()

    def hand_over(self, shut_down: Callable[[], None]) -> None:
        """From now on a signal calls `shut_down` too (at once, if one came already)."""
        self._then = shut_down
        if self.requested.is_set():
            shut_down()

    async def race(self, work: Awaitable[T]) -> T:
        """Await `work` unless a stop is requested first: then it is cancelled and StopRequested raised."""
        task = asyncio.ensure_future(work)
        stopped = asyncio.ensure_future(self.requested.wait())
        try:
            await asyncio.wait({task, stopped}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopped.cancel()
            if not task.done():
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)  # let it clean up (close its connection)
        if task.cancelled() and self.requested.is_set():
            raise StopRequested("stopped while starting")
        return task.result()


class Retry:
    """Try an operation until it succeeds, fails for good, or STARTUP_RETRY_S is spent, waiting 1 s, 2 s, 4 s, ...
    (at most 30 s, never past the budget) between tries; a stop request ends the tries and the waits at once."""

    def __init__(self, budget_s: float, stop: Stop, *, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
        self.budget_s, self.stop, self._clock, self._sleep = budget_s, stop, clock, sleep

    async def __call__(self, attempt: Callable[[], Awaitable[T]], *, what: str, check: str,
                       transient: Callable[[Exception], str | None]) -> T:
        """`attempt()` until it returns; `transient(error)` gives the few words on an error worth another try (None:
        raise it). Raises Unreachable, one line naming `what` was tried, how often, and what to `check`."""
        started, tries = self._clock(), 0
        while True:
            tries += 1
            try:
                return await self.stop.race(attempt())
            except StopRequested:
                raise
            except Exception as error:
                reason = transient(error)
                if reason is None:
                    raise
            elapsed = self._clock() - started
            left = self.budget_s - elapsed
            if left <= 0:
                raise Unreachable(f"cannot reach {what}: {reason}; tried {tries} time{'s' if tries > 1 else ''} in "
                                  f"{elapsed:.1f} s (STARTUP_RETRY_S={self.budget_s:g}); check {check}")
            delay = min(FIRST_DELAY_S * 2 ** (tries - 1), MAX_DELAY_S, left)
            log.warning("cannot reach %s yet: %s; trying again in %.1f s (giving up after %g s, STARTUP_RETRY_S)",
                        what, reason, delay, self.budget_s)
            await self.stop.race(self._sleep(delay))
