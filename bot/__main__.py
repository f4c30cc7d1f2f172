"""`python -m bot`: read the settings (one line per problem, exit status 2, before anything heavy is imported),
then build and run the bot (bot.app) until it is stopped."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys

from bot import redaction
from bot.errors import SettingsError
from bot.settings import load_settings

log = logging.getLogger("bot")

LOG_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"


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
    from bot import app  # the whole stack (discord.py, SQLAlchemy, aiohttp): only once the settings are right
    from bot.gpu.compiles import COMPILES
    from storage import shown_url

    log.info("starting: model %s on %s, database %s", settings.t2v_model, settings.t2v_device,
             shown_url(settings.database_url))
    code = 0
    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C before the signal handlers are installed
        code = asyncio.run(app.run(settings))
    COMPILES.stop()
    if COMPILES.busy:  # a thread inside torch's compiler when the interpreter finalises aborts the process
        log.info("stopped with a background compile under way; its result is not needed")
        logging.shutdown()
        os._exit(code)
    return code


if __name__ == "__main__":
    sys.exit(main())
