"""`python -m bot`: read the settings and check what they name (one line per problem, exit status 2: bad settings
before anything heavy is imported, then the GPUs, the weights and the folders before any work), then build and run
the bot (bot.app) until it is stopped. The database or Discord out of reach for STARTUP_RETRY_S: one line, exit
status 1. SIGTERM at any moment: a clean stop, exit status 0."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
from types import FrameType

from bot import redaction
from bot.errors import SettingsError, Unreachable
from bot.settings import Settings, env_file_problems, load_settings, misspelled
from storage import urls

log = logging.getLogger("bot")

LOG_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"
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
        print(USAGE if asked else f"error: python -m bot takes no arguments (got {' '.join(argv)}); set its "
              "settings in the environment or .env (see .env.example), or run python -m bot --help",
              file=sys.stdout if asked else sys.stderr)
        return 0 if asked else 2
    signal.signal(signal.SIGTERM, _stop_before_running)
    signal.signal(signal.SIGINT, _stop_before_running)  # Ctrl-C too, until the event loop handles both
    unreadable = env_file_problems()
    if unreadable:
        for line in unreadable:
            print(f"error: {line}", file=sys.stderr)
        return 2
    try:
        settings = load_settings()
        from bot import startup  # imports torch only to check GPUs or weights, which the bot is about to load anyway

        startup.check_environment(settings)
    except SettingsError as error:
        for line in error.lines:
            print(f"error: {line}", file=sys.stderr)
        for line in misspelled():  # "DISCORD_TOKEN is missing" may be a DISCORD_TOKN that was set
            print(f"note: {line}", file=sys.stderr)
        return 2
    logging.basicConfig(level=settings.log_level, format=LOG_FORMAT, stream=sys.stderr)
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(max(logging.WARNING, logging.getLogger(name).getEffectiveLevel()))
    redaction.install(logging.getLogger().handlers,  # and interaction tokens, by their patterns
                      [settings.discord_token.get_secret_value(), *urls.passwords(settings.database_url)])
    for line in misspelled():
        log.warning("%s", line)
    return run(settings)


def run(settings: Settings) -> int:
    """Run the bot until it stops; its exit status."""
    from bot import app  # the whole stack (discord.py, SQLAlchemy, aiohttp): only once the settings are right
    from bot.gpu.compiles import COMPILES

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
    COMPILES.stop()
    log.info("stopped; exit status %d", code)
    if COMPILES.busy:  # a thread inside torch's compiler when the interpreter finalises aborts the process
        log.info("stopped with a background compile under way; its result is not needed")
        logging.shutdown()
        os._exit(code)
    return code


def _stop_before_running(signum: int, frame: FrameType | None) -> None:
    """SIGTERM or Ctrl-C before the event loop handles them (reading settings, importing torch): stop here, cleanly,
    without a traceback."""
    raise SystemExit(0)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
