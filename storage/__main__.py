"""`python -m storage`: the database's schema by hand, for operators (README "Operate"). The bot migrates its database
to the newest revision at every start; an operator going back to an older version of the bot downgrades it first.

    python -m storage current               the revision the database is at, and the revisions this code ships
    python -m storage migrate [--to REV]    upgrade or downgrade the schema to REV (default: head, the newest)

The database is the one DATABASE_URL names, read as the bot reads it: the environment first, then `.env` in the
working directory (the name in any case; one set empty counts as unset); the default, `videobot.db`, is relative to
it; a variable that looks meant for one of the settings it reads (DATABSE_URL, DB_URL) gets a `warning:` line, as the
bot gives it. An upgrade through revision 0004 files the moderation rows from before servers had their own under the
server in DISCORD_GUILD_ID, as the bot's start would (`--home-guild-id` names another). Stop the bot first. The whole
command runs in one transaction: one that fails leaves the database as it was. Exit status 0; 2 with one `error:` line
for a wrong value (an unknown revision, a DATABASE_URL that names no database or one this user may not use, a
database driver missing, or a database that refuses the connection); 1 with one line when the database cannot be
reached, or cannot do the work now (another process writing to the SQLite file, a full disk); 130 with one line after
Ctrl-C.
"""

from __future__ import annotations

import os
import signal
import sys


def _interrupt_early(signum: int, frame: object) -> None:
    """Ctrl-C while the modules below import: nothing was read or done yet."""
    os.write(sys.stderr.fileno(), b"error: interrupted before the command started; nothing was done\n")
    os._exit(128 + signum)


if __name__ == "__main__":  # from the first line on (the package imports nothing: storage/__init__.py): the imports
    signal.signal(signal.SIGINT, _interrupt_early)  # below take a moment

import argparse  # noqa: E402 (after the handler above)
import asyncio  # noqa: E402
import logging  # noqa: E402
import re  # noqa: E402
from collections.abc import Sequence  # noqa: E402
from pathlib import Path  # noqa: E402
from types import FrameType  # noqa: E402
from typing import NoReturn, TextIO  # noqa: E402

INTERRUPTED = ("interrupted; the database is as it was before the command, unless a migrate had just finished (each "
               "runs as one transaction): python -m storage current says which")
PRESSED: list[int] = []  # the Ctrl-Cs (SIGINT) so far


def _interrupt(signum: int, frame: FrameType | None) -> None:
    """Ctrl-C: KeyboardInterrupt where the command is (main says INTERRUPTED), though the event loop runs; a second
    one while that unwinds (a rollback, a `__del__`) ends the process at once, with the same line."""
    if PRESSED:
        os.write(sys.stderr.fileno(), f"error: {INTERRUPTED}\n".encode())
        os._exit(128 + signum)
    PRESSED.append(signum)
    raise KeyboardInterrupt


from alembic.script import ScriptDirectory  # noqa: E402
from sqlalchemy.ext.asyncio import AsyncEngine  # noqa: E402

from storage import setting_names, sqlite_file, urls  # noqa: E402
from storage.db import (  # noqa: E402
    DEFAULT_URL,
    alembic_config,
    check_connection,
    check_driver,
    create_engine,
    current_revision,
    downgrade,
    held_alone,
    migrate,
)
from storage.dotenv_file import read_env_file  # noqa: E402
from storage.errors import (  # noqa: E402
    DatabaseInUse,
    DatabaseRefused,
    DatabaseUnreachable,
    DriverMissing,
    InvalidDatabaseURL,
    SchemaTooNew,
    UsageError,
    said,
    unavailable,
)
from storage.records import MAX_SNOWFLAKE, is_snowflake  # noqa: E402

ENV_FILE = ".env"
CONTROLS = re.compile("[\x00-\x1f\x7f-\x9f]")  # what `say` escapes (t2v.errors.visible's kind; storage imports no t2v)
CHATTER = ("Context impl ", "Will assume ")  # what Alembic logs each time it looks at the database
SETTINGS = ("DATABASE_URL", "DISCORD_GUILD_ID")  # the bot's settings this command reads (`_setting`)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; the exit status."""
    args = _parser().parse_args(argv)
    if getattr(args, "stray", None):  # `migrate head`, as Alembic's `upgrade head`: the revision goes with --to
        say(f"error: python -m storage migrate takes the revision with --to, not {' '.join(args.stray)!r}: "
            f"python -m storage migrate --to {args.stray[0]}", sys.stderr)
        return 2
    url = DEFAULT_URL
    try:
        url = (_setting("DATABASE_URL") or DEFAULT_URL).strip()  # as the bot's validator takes it
        for line in _misspelled():  # before what it may explain: "no database at videobot.db" after a DATABSE_URL=
            say(f"warning: {line}", sys.stderr)
        _check_url(url)
        return asyncio.run(_command(args.command, url, args.to, _home(args)))
    except (InvalidDatabaseURL, DriverMissing) as error:
        say(f"error: DATABASE_URL={urls.shown(url)}: {error}", sys.stderr)
        return 2
    except UsageError as error:
        say(f"error: {error}", sys.stderr)
        return 2
    except SchemaTooNew as error:
        say(f"error: DATABASE_URL={urls.shown(url)}: {error}: a newer version of the bot migrated it; with that "
            f"version, python -m storage migrate --to {error.newest} moves it down to this one's (README \"Migrate by "
            "hand\"), or restore the backup taken before the upgrade", sys.stderr)
        return 2
    except DatabaseInUse as error:
        say(f"error: DATABASE_URL={urls.shown(url)}: {error}: stop the bot first", sys.stderr)
        return 2
    except DatabaseRefused as error:
        say(f"error: DATABASE_URL={urls.shown(url)}: the database refused the connection: {error}", sys.stderr)
        return 2
    except DatabaseUnreachable as error:
        say(f"error: the database at {urls.shown(url)} cannot be reached: {error}", sys.stderr)
        return 1
    except BaseException as error:
        if PRESSED:
            say(f"error: {INTERRUPTED}", sys.stderr)  # KeyboardInterrupt, or what it left behind (a connection that
            return 130  # could not roll back: "Can't reconnect until invalid transaction is rolled back")
        if not (isinstance(error, Exception) and unavailable(error)):
            raise
        say(f"error: DATABASE_URL={urls.shown(url)}: {said(error)}: {_why_not_now(error)}", sys.stderr)
        return 1


def _why_not_now(error: Exception) -> str:
    """After the database's own words on why it could not do the command's work now (storage.errors.unavailable: a
    SQLite file another process is writing to, a full disk): what that means for the operator."""
    if getattr(getattr(error, "orig", None), "sqlite_errorname", "").startswith("SQLITE_BUSY"):  # locked
        return ("another process is writing to it (a sqlite3 shell, a backup, a bot that takes no lock file); nothing "
                "was changed: let it finish or stop it, then run this again")
    return ("it cannot do this now; the command is one transaction, so the database is as it was unless it had just "
            "finished (python -m storage current says which): run this again once it can")


def log_to_stderr() -> None:
    """The migrations' progress on stderr at INFO (Alembic's "Running downgrade 0004 -> 0003" lines, not its
    chatter), as the bot's log lines read."""
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(lambda record: not record.getMessage().startswith(CHATTER))
    logging.getLogger().addHandler(handler)
    logging.getLogger().setLevel(logging.INFO)


def say(line: str, stream: TextIO | None = None) -> None:
    """One line for the operator at the terminal (stdout unless told): a control character in a value it names (a
    newline a quoted DATABASE_URL carried) is shown as its escape, not obeyed."""
    shown = CONTROLS.sub(lambda found: found.group().encode("unicode_escape").decode("ascii"), line)
    print(shown, file=stream or sys.stdout)


class _Parser(argparse.ArgumentParser):
    """argparse whose errors are one `error:` line (no usage block), exit status 2, as main's own are."""

    def error(self, message: str) -> NoReturn:
        if message == "the following arguments are required: command":
            message = "no command given; use current or migrate (python -m storage --help)"
        say(f"error: {message}", sys.stderr)
        self.exit(2)


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m storage", description=__doc__.split("\n\n")[0], allow_abbrev=False)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("current", help="the revision the database is at, and the shipped ones")
    migrate = commands.add_parser("migrate", help="upgrade or downgrade the schema to a revision")
    migrate.add_argument("--to", default="head", metavar="REVISION",
                         help="a revision `current` lists (0003; 3 or its file's name, 0003_showcase.py, "
                              "also do), `head` (the newest: the default) or `base` (no tables)")
    migrate.add_argument("stray", nargs="*", help=argparse.SUPPRESS)  # a revision without --to: refused by main
    migrate.add_argument("--home-guild-id", type=_positive, default=None, metavar="ID",
                         help="the server of moderation rows from before servers had their own (revision 0004); "
                              "default: DISCORD_GUILD_ID")
    parser.set_defaults(to="head", home_guild_id=None)
    return parser


def _setting(name: str) -> str | None:
    """A setting as the bot reads it (bot/settings.py's model_config: pydantic-settings with case_sensitive=False,
    env_ignore_empty=True, env_file .env in UTF-8): the environment's variable of that name in any case, else
    `.env`'s in the working directory; a variable set empty counts as unset. None when neither sets it."""
    for variables in (os.environ, _env_file()):
        given = {key.lower(): value for key, value in variables.items() if value}
        if name.lower() in given:
            return given[name.lower()]
    return None


def _env_file() -> dict[str, str | None]:
    """`.env` in the working directory as the bot reads it (none there: nothing); UsageError for one that cannot be
    read, which the bot would refuse too (bot.env_file)."""
    path = Path(ENV_FILE)
    try:
        if path.is_dir():
            raise UsageError(f"{path.absolute()} is a folder, not a file; the bot's settings are read from a file "
                             f"named {ENV_FILE} in the working directory: remove or rename the folder")
        if not path.is_file():
            return {}
        return read_env_file(path)
    except UnicodeDecodeError as error:
        raise UsageError(f"{ENV_FILE} is not UTF-8 text (byte 0x{error.object[error.start]:02x} at offset "
                         f"{error.start}); save it as UTF-8") from None
    except OSError as error:
        raise UsageError(f"{path.absolute()} cannot be read ({error.strerror}); make it readable to this user, or set "
                         "DATABASE_URL in the environment") from None


def _misspelled() -> list[str]:
    """One line for each variable of the environment or `.env` that is not one of SETTINGS but is spelled almost like
    one (DATABSE_URL) or is a name often used for one (DB_URL): ignored, where its operator meant to set the setting
    (storage.setting_names, as `python -m bot` says of every setting)."""
    return setting_names.misspelled(SETTINGS, os.environ, _env_file(), ENV_FILE)


def _positive(text: str) -> int:
    """A server id: decimal digits of a whole number from 1 to 2⁶³ − 1 (SQL's BIGINT, and Discord's ids), ASCII or
    another script's (full-width １２３), as the bot reads DISCORD_GUILD_ID."""
    digits = text.strip()
    if not is_snowflake(digits):
        raise argparse.ArgumentTypeError(f"{text!r} is not a server id (a whole number from 1 to {MAX_SNOWFLAKE}, "
                                         "such as 123456789012345678)")
    return int(digits)


def _home(args: argparse.Namespace) -> int | None:
    """The server of the moderation rows from before servers had their own, for `migrate` (revision 0004):
    --home-guild-id, else DISCORD_GUILD_ID; `current` reads neither."""
    if args.command != "migrate":
        return None
    return args.home_guild_id if args.home_guild_id is not None else _home_guild_id(_setting("DISCORD_GUILD_ID"))


def _home_guild_id(value: str | None) -> int | None:
    """DISCORD_GUILD_ID as the bot would take it; UsageError for one that is not a server id."""
    if value is None:
        return None
    try:
        return _positive(value)
    except argparse.ArgumentTypeError as error:
        raise UsageError(f"DISCORD_GUILD_ID={value}: {error}") from None


def _check_url(url: str) -> None:
    """A DATABASE_URL the command can use: readable, its driver there, and for SQLite a file that is there (a wrong
    working directory would otherwise make an empty database and migrate that) and that this user may read and write
    (`current` too: every connection sets SQLite's WAL journal, as the bot's do, which writes beside the file)."""
    database = urls.parse(url)
    if database.backend == "sqlite" and database.sqlite_file is None:
        raise UsageError(f"DATABASE_URL={url} keeps the database in memory: there is nothing to migrate")
    problem = None if database.sqlite_file is None else sqlite_file.problem(database.sqlite_file, must_exist=True)
    if problem is not None:
        where = ("; run this in the bot's working directory, or set DATABASE_URL to the bot's"
                 if problem.kind == "missing" else "")
        raise UsageError(f"DATABASE_URL={urls.shown(url)}: {problem.text}{where}")
    check_driver(url)


async def _command(command: str, url: str, target: str, home_guild_id: int | None) -> int:
    engine = create_engine(url)
    try:
        await check_connection(engine)
        current = await current_revision(engine)
        revisions = _revisions()
        if current is not None and current not in revisions:
            raise SchemaTooNew(current, revisions[-1])
        if command == "current":
            say(_describe(url, current, revisions))
        else:
            async with held_alone(engine):  # not under a running bot
                await _migrate(engine, url, current, _target(target, revisions), revisions, home_guild_id)
    finally:
        await engine.dispose()
    return 0


async def _migrate(engine: AsyncEngine, url: str, current: str | None, target: str | None, revisions: list[str],
                   home_guild_id: int | None) -> None:
    """Upgrade or downgrade from `current` to `target` (None: base, no tables), saying which."""
    at, to = _position(current, revisions), _position(target, revisions)
    shown, named = urls.shown(url), target or "base"
    if at == to:
        say(f"{shown}: already at revision {named}; nothing to do")
    elif to > at:
        await migrate(engine, named, home_guild_id=home_guild_id)
        say(f"{shown}: upgraded from revision {current or 'base'} to {named}")
    else:
        await downgrade(engine, named)
        say(f"{shown}: downgraded from revision {current} to {named}")


def _revisions() -> list[str]:
    """The shipped revisions, oldest first (they form one line: tests/storage/test_migrations.py)."""
    newest_first = ScriptDirectory.from_config(alembic_config()).walk_revisions()
    return [script.revision for script in reversed(list(newest_first))]


def _target(name: str, revisions: list[str]) -> str | None:
    """The revision `--to` names: a shipped one, `head` (the newest) or `base` (None); UsageError otherwise. A shipped
    one may be written as its file in storage/migrations/versions/ is named (0003_showcase.py, where README says to
    look), or as its number without the leading zeros (3)."""
    if name.strip().lower() == "head":
        return revisions[-1]
    if name.strip().lower() == "base":
        return None
    number = Path(name.strip()).name.removesuffix(".py").split("_", 1)[0]
    meant = next((revision for revision in revisions if revision == number
                  or (number.isdecimal() and revision.isdecimal() and int(number) == int(revision))), None)
    if meant is None:
        raise UsageError(f"--to {name}: no such revision; use one of {', '.join(revisions)}, head or base")
    return meant


def _position(revision: str | None, revisions: list[str]) -> int:
    """Where a revision is in the line, oldest first; -1 for base (no tables)."""
    return -1 if revision is None else revisions.index(revision)


def _describe(url: str, current: str | None, revisions: list[str]) -> str:
    """Where the database's schema is, and the revisions to choose from."""
    at = "no migration has run on it" if current is None else f"at revision {current}"
    newest = " (the newest)" if current == revisions[-1] else ""
    return f"{urls.shown(url)}: {at}{newest}; this code ships {', '.join(revisions)} (oldest first)"


if __name__ == "__main__":
    log_to_stderr()
    signal.signal(signal.SIGINT, _interrupt)
    try:
        status = main()
    except KeyboardInterrupt:  # while the arguments were read, before main's try: nothing was done
        say("error: interrupted before the command started; nothing was done", sys.stderr)
        status = 130
    signal.signal(signal.SIGINT, signal.SIG_DFL)  # done: a Ctrl-C while the interpreter exits ends it, unsaid
    sys.exit(status)
