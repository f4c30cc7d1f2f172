"""`python -m bot`: read the settings and check what they name, the GPUs, the weights and the folders (one line per
problem, every problem in one run, exit status 2, before any work), then build and run the bot (bot.app) until it
is stopped. The database or Discord out of reach for STARTUP_RETRY_S: one line, exit status 1. SIGTERM at any
moment: a clean stop, exit status 0."""

from __future__ import annotations

import os
import signal
import sys
from types import FrameType

STOPPING: list[signal.Signals] = []  # the SIGTERM or Ctrl-C that came before the event loop handled them


def _stop_before_running(signum: int, frame: FrameType | None) -> None:
    """SIGTERM or Ctrl-C before the event loop handles them (importing, reading settings, importing torch): stop here,
    cleanly, without a traceback. A second one while that stop unwinds (a `finally`, a `__del__`, where Python would
    print its "Exception ignored" traceback) ends the process at once, with one line."""
    if STOPPING:
        _stop_now(signum, frame)
    STOPPING.append(signal.Signals(signum))
    raise SystemExit(0)


def _stop_now(signum: int, frame: FrameType | None) -> None:
    """A signal while the bot is already stopping: one line, and the process ends here, exit status 128 + signal."""
    os.write(sys.stderr.fileno(), f"{signal.Signals(signum).name} again while stopping: stopped at once\n".encode())
    os._exit(128 + signum)


def _quiet_stop(unraisable: sys.UnraisableHookArgs) -> None:
    """sys.unraisablehook: a stop `_stop_before_running` raised where Python cannot raise it (a `__del__`, a weakref
    callback) is no traceback: `main` stops at its next step instead (`STOPPING`). Anything else as Python shows it."""
    if not (STOPPING and unraisable.exc_type is SystemExit):
        sys.__unraisablehook__(unraisable)


if __name__ == "__main__":  # from the first line on (after os, signal and sys): the imports below take seconds
    signal.signal(signal.SIGTERM, _stop_before_running)
    signal.signal(signal.SIGINT, _stop_before_running)
    sys.unraisablehook = _quiet_stop

import asyncio  # noqa: E402 (after the handlers above)
import contextlib  # noqa: E402
import logging  # noqa: E402
from collections.abc import Mapping  # noqa: E402
from pathlib import Path  # noqa: E402

from bot import env_file, redaction  # noqa: E402
from bot.env_file import misspelled, shadowed  # noqa: E402
from bot.errors import SettingsError, Unreachable  # noqa: E402
from bot.settings import Settings, load_settings, load_what_validates  # noqa: E402
from storage import urls  # noqa: E402
from t2v.errors import visible  # noqa: E402

log = logging.getLogger("bot")

LOG_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"
ENV_FILE = str(Settings.model_config["env_file"])  # .env, read from the working directory
DEPLOY_MARK = "VIDEOBOT_DEPLOY"  # set by deploy/'s Dockerfile and systemd unit: where the settings come from there
DEPLOYED = {  # how python -m bot runs (DEPLOY_MARK) -> where a missing setting goes instead of a .env
    "systemd": "the service reads its settings from its unit's EnvironmentFile (/etc/videobot.env in "
               "deploy/videobot.service; `systemctl cat videobot` shows yours): set {names} there, then "
               "sudo systemctl restart videobot",
    "docker": "in its container the bot reads its settings from the container's environment: set {names} in the .env "
              "file on the host that deploy/compose.yaml's env_file reads (the checkout's .env; docker run: the file "
              "--env-file names), then recreate the container: docker compose --env-file .env -f "
              "deploy/compose.yaml up -d (a restart keeps the old environment)",
}
QUIET_LOGGERS = ("alembic.runtime.plugins",)  # seven "setup plugin ..." lines at INFO on every start; kept at WARNING


USAGE = """usage: python -m bot

Runs the Discord bot until SIGTERM or Ctrl-C. It takes no arguments: its settings come from environment variables
and a .env file in the working directory (every setting, its default and its range: .env.example; how to run it:
README.md). Exit status: 0 after a clean stop, 1 when the database or Discord stayed out of reach, 2 when a setting
is wrong (one line each)."""


def main(argv: list[str] | None = None) -> int:
    """Entry point: 0 after a clean stop, 1 when a service stayed out of reach (or a GPU worker got stuck), 2 with
    one line per problem when the settings are wrong."""
    if argv:
        asked = argv[0] in ("-h", "--help")
        print(USAGE if asked else f"error: python -m bot takes no arguments (got {visible(' '.join(argv))}); set its "
              "settings in the environment or .env (see .env.example), or run python -m bot --help",
              file=sys.stdout if asked else sys.stderr)
        return 0 if asked else 2
    signal.signal(signal.SIGTERM, _stop_before_running)
    signal.signal(signal.SIGINT, _stop_before_running)  # Ctrl-C too, until the event loop handles both
    whole = env_file.unreadable()
    if whole:
        print(f"error: {whole}", file=sys.stderr)
        return 2
    malformed = env_file.malformed_lines()  # refused, but after the rest is checked: every problem in one run
    logging.getLogger("dotenv.main").setLevel(logging.ERROR)  # its nameless "could not parse" warnings: said above
    try:
        settings = load_settings()
    except SettingsError as error:  # what the other settings name is checked too
        return _refuse([*malformed, *error.lines, *_what_the_others_name()])
    from bot import startup  # imports torch only to check GPUs or weights, which the bot is about to load anyway

    try:
        startup.check_environment(settings)
    except SettingsError as error:
        return _refuse([*malformed, *error.lines])
    if malformed:
        return _refuse(malformed)
    if STOPPING:  # a stop that landed where it could not be raised (a `__del__`: `_quiet_stop`)
        return 0
    logging.basicConfig(level=settings.log_level, format=LOG_FORMAT, stream=sys.stderr)
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(max(logging.WARNING, logging.getLogger(name).getEffectiveLevel()))
    redaction.install(logging.getLogger().handlers,  # and interaction tokens, by their patterns
                      [settings.discord_token.get_secret_value(), *urls.passwords(settings.database_url)])
    for line in [*misspelled(), *shadowed()]:
        log.warning("%s", line)
    return run(settings)


def _what_the_others_name() -> list[str]:
    """After wrong settings: what the others name that is missing or unusable here (bot.startup), skipping the checks
    that read a wrong one; none when the others cannot be read without them."""
    reading = load_what_validates()
    if reading is None:
        return []
    from bot import startup  # as above

    try:
        startup.check_environment(*reading)
    except SettingsError as error:
        return error.lines
    return []


def _refuse(problems: list[str]) -> int:
    """One `error:` line per problem, then what may explain them; exit status 2."""
    for line in problems:
        print(f"error: {line}", file=sys.stderr)
    notes = [_no_env_file(), *misspelled(), *shadowed()]  # "DISCORD_TOKEN is missing" may be a DISCORD_TOKN that was
    # set; "T2V_DEVICE=gpu" an old export of the shell's, beside a .env that says cpu
    for line in filter(None, notes):
        print(f"note: {line}", file=sys.stderr)
    return 2


def _no_env_file(environ: Mapping[str, str] = os.environ) -> str | None:
    """Why a required setting may be missing: there is no .env where the bot reads it (the working directory: a start
    from another folder), or, run as deploy/ runs it (DEPLOYED: a service, a container), where its settings go there
    instead."""
    given = {name.lower() for name, value in environ.items() if value}
    missing = [name.upper() for name, field in Settings.model_fields.items()
               if field.is_required() and name not in given]
    if Path(ENV_FILE).is_file() or not missing:
        return None
    where = DEPLOYED.get(environ.get(DEPLOY_MARK, "").strip().lower())
    if where is not None:
        return where.format(names=" and ".join(missing))
    return f"no {ENV_FILE} in {Path.cwd()} (the bot reads {ENV_FILE} from its working directory)"


def run(settings: Settings) -> int:
    """Run the bot until it stops; its exit status."""
    from bot import app  # the whole stack (discord.py, SQLAlchemy, aiohttp): only once the settings are right
    from bot.gpu.compiles import COMPILES

    if STOPPING:  # as in main: one that came while these imported
        return 0
    log.info("starting: model %s on %s, database %s", settings.t2v_model, settings.t2v_device,
             urls.shown(settings.database_url))
    code = 0
    signal.signal(signal.SIGINT, signal.default_int_handler)  # asyncio.run cancels its task on Ctrl-C, then bot.app
    try:
        with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C before the signal handlers are installed
            code = asyncio.run(app.run(settings))
    except SettingsError as error:  # the database or Discord refused what the settings give them
        for line in error.lines:
            log.error("%s", line)
        code = 2
    except Unreachable as error:
        log.error("%s", error)
        code = 1
    for number in (signal.SIGTERM, signal.SIGINT):  # the bot has stopped: one more ends what is left at once
        signal.signal(number, _stop_now)
    COMPILES.stop()
    log.info("stopped; exit status %d", code)
    if COMPILES.busy:  # a thread inside torch's compiler when the interpreter finalises aborts the process
        log.info("stopped with a background compile under way; its result is not needed")
        logging.shutdown()
        os._exit(code)
    return code


if __name__ == "__main__":
    try:
        status = main(sys.argv[1:])
    except SystemExit as stop:  # the first SIGTERM or Ctrl-C, before anything was started
        status = stop.code if isinstance(stop.code, int) else 2
    if STOPPING:  # nothing to finish: skip the interpreter's shutdown, where a second one would be Python's noise
        logging.shutdown()
        sys.stderr.flush()
        os._exit(status)
    sys.exit(status)
