"""`python -m storage`: an operator moves the database's schema down to a named revision and up again by hand, on the
database DATABASE_URL names (the environment, else `.env`), as README "Operate" says."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from alembic.script import ScriptDirectory

from storage.__main__ import main
from storage.db import alembic_config

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = [script.revision for script in ScriptDirectory.from_config(alembic_config()).walk_revisions()][::-1]
HEAD = SHIPPED[-1]


def storage_command(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """`python -m storage ARGS` in `cwd`, as an operator runs it there (no DATABASE_URL in the environment)."""
    env = {name: value for name, value in os.environ.items() if name not in ("DATABASE_URL", "DISCORD_GUILD_ID")}
    env["PYTHONPATH"] = str(ROOT)
    return subprocess.run([sys.executable, "-m", "storage", *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=120)


def schema(path: Path) -> tuple[str, set[str], set[str]]:
    """The database's revision, its tables, and the columns of quota_overrides (revision 0004 adds guild_id)."""
    with sqlite3.connect(path) as connection:
        version = connection.execute("SELECT version_num FROM alembic_version").fetchone()[0]
        tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        columns = {row[1] for row in connection.execute("PRAGMA table_info(quota_overrides)")}
    connection.close()
    return version, tables, columns


def test_an_operator_upgrades_downgrades_to_a_named_revision_and_upgrades_again(tmp_path: Path) -> None:
    database = tmp_path / "data" / "bot.db"
    database.parent.mkdir()
    sqlite3.connect(database).close()  # the file the bot would have made
    (tmp_path / ".env").write_text(f"DISCORD_TOKEN=a.token-of.a-bot\nDATABASE_URL=sqlite+aiosqlite:///{database}\n")

    up = storage_command("migrate", cwd=tmp_path)
    assert (up.returncode, up.stdout.strip()) == (0, f"sqlite+aiosqlite:///{database}: upgraded from revision base "
                                                     f"to {HEAD}"), up.stderr
    assert schema(database)[0] == HEAD and "guild_id" in schema(database)[2]

    down = storage_command("migrate", "--to", "0003", cwd=tmp_path)
    assert down.returncode == 0, down.stderr
    assert down.stdout.strip().endswith(f"downgraded from revision {HEAD} to 0003")
    assert "Running downgrade 0004 -> 0003" in down.stderr
    version, tables, columns = schema(database)
    assert version == "0003" and "guild_id" not in columns and {"jobs", "showcase_entries"} <= tables

    current = storage_command("current", cwd=tmp_path)
    assert current.stdout.strip() == (f"sqlite+aiosqlite:///{database}: at revision 0003; this code ships "
                                      f"{', '.join(SHIPPED)} (oldest first)")

    again = storage_command("migrate", "--to", "head", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert again.stdout.strip().endswith(f"upgraded from revision 0003 to {HEAD}")
    assert schema(database)[0] == HEAD and "guild_id" in schema(database)[2]


def test_an_unknown_revision_is_refused_with_the_ones_there_are(bot_folder: Path,
                                                                capsys: pytest.CaptureFixture) -> None:
    capsys.readouterr()
    assert main(["migrate", "--to", "0099"]) == 2
    said = capsys.readouterr().err
    assert said == f"error: --to 0099: no such revision; use one of {', '.join(SHIPPED)}, head or base\n"
    assert schema(bot_folder / "videobot.db")[0] == HEAD


@pytest.mark.parametrize("stray", [["head"], ["0003"], ["-1"], ["base", "x"]])
def test_a_revision_without_to_is_refused_naming_the_command_that_takes_it(bot_folder: Path, stray: list[str],
                                                                          capsys: pytest.CaptureFixture) -> None:
    capsys.readouterr()
    assert main(["migrate", *stray]) == 2
    assert capsys.readouterr().err == (f"error: python -m storage migrate takes the revision with --to, not "
                                       f"{' '.join(stray)!r}: python -m storage migrate --to {stray[0]}\n")
    assert schema(bot_folder / "videobot.db")[0] == HEAD


def test_migrating_to_where_the_database_is_changes_nothing(bot_folder: Path, capsys: pytest.CaptureFixture) -> None:
    capsys.readouterr()
    assert main(["migrate", "--to", HEAD]) == 0
    assert capsys.readouterr().out == f"sqlite+aiosqlite:///videobot.db: already at revision {HEAD}; nothing to do\n"


def test_a_sqlite_file_that_is_not_there_is_named_and_never_made(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                capsys: pytest.CaptureFixture) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DATABASE_URL", "sqlite:///elsewhere/videobot.db")
    assert main(["migrate", "--to", "0003"]) == 2
    assert capsys.readouterr().err == (f"error: DATABASE_URL=sqlite:///elsewhere/videobot.db: there is no database at "
                                       f"{tmp_path / 'elsewhere' / 'videobot.db'}; run this in the bot's working "
                                       "directory, or set DATABASE_URL to the bot's\n")
    assert not (tmp_path / "elsewhere").exists()


def test_a_url_with_a_newline_in_it_is_named_on_one_line_with_the_newline_shown(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DATABASE_URL", "sqlite:///video\nbot.db")  # a quoted .env value with an escaped newline
    assert main(["migrate"]) == 2
    said = capsys.readouterr().err
    assert said.count("\n") == 1 and said.startswith("error: DATABASE_URL=sqlite:///video\\nbot.db: there is no ")


def test_a_database_a_newer_version_migrated_is_left_alone(bot_folder: Path, capsys: pytest.CaptureFixture) -> None:
    with sqlite3.connect(bot_folder / "videobot.db") as connection:
        connection.execute("UPDATE alembic_version SET version_num = '0099'")
    connection.close()
    capsys.readouterr()
    assert main(["migrate", "--to", "0003"]) == 2
    assert capsys.readouterr().err == (
        f"error: DATABASE_URL=sqlite+aiosqlite:///videobot.db: the database's schema is at revision 0099, newer than "
        f"this code's newest, {HEAD}: a newer version of the bot migrated it; with that version, python -m storage "
        f"migrate --to {HEAD} moves it down to this one's (README \"Migrate by hand\"), or restore the backup taken "
        "before the upgrade\n")
    assert schema(bot_folder / "videobot.db")[0] == "0099"


def test_a_database_a_running_bot_holds_is_left_alone(bot_folder: Path, capsys: pytest.CaptureFixture) -> None:
    import asyncio

    from storage import create_engine, held_alone

    async def while_a_bot_runs() -> int:
        engine = create_engine("sqlite+aiosqlite:///videobot.db")
        try:
            async with held_alone(engine):
                return await asyncio.to_thread(main, ["migrate", "--to", "0003"])
        finally:
            await engine.dispose()

    capsys.readouterr()
    assert asyncio.run(while_a_bot_runs()) == 2
    assert capsys.readouterr().err == (f"error: DATABASE_URL=sqlite+aiosqlite:///videobot.db: another process (pid "
                                       f"{os.getpid()}) holds this database as its bot's ({bot_folder / 'videobot.db'}"
                                       ".lock is locked): stop the bot first\n")
    assert schema(bot_folder / "videobot.db")[0] == HEAD


@pytest.mark.parametrize("value", ["²", "99999999999999999999", "0", "abc"])
def test_a_server_id_that_is_not_one_is_one_line_naming_it(bot_folder: Path, monkeypatch: pytest.MonkeyPatch,
                                                           capsys: pytest.CaptureFixture, value: str) -> None:
    monkeypatch.setenv("DISCORD_GUILD_ID", value)
    capsys.readouterr()
    assert main(["migrate", "--to", "0003"]) == 2
    assert capsys.readouterr().err == (f"error: DISCORD_GUILD_ID={value}: {value!r} is not a server id (a whole number "
                                       "from 1 to 9223372036854775807, such as 123456789012345678)\n")
    with pytest.raises(SystemExit):
        main(["migrate", "--home-guild-id", value])
    assert f"argument --home-guild-id: {value!r} is not a server id" in capsys.readouterr().err
    assert schema(bot_folder / "videobot.db")[0] == HEAD  # nothing was done


def test_current_reads_no_server_id_which_only_migrate_uses(bot_folder: Path, capsys: pytest.CaptureFixture) -> None:
    (bot_folder / ".env").write_text("DISCORD_GUILD_ID=abc\n")
    capsys.readouterr()
    assert main(["current"]) == 0
    assert capsys.readouterr().out.startswith(f"sqlite+aiosqlite:///videobot.db: at revision {HEAD} (the newest)")
    assert main(["migrate"]) == 2
    assert capsys.readouterr().err.startswith("error: DISCORD_GUILD_ID=abc: 'abc' is not a server id")


@pytest.mark.parametrize(("url", "says"), [
    ("sqlite+aiosqlite://x.db", "DATABASE_URL=sqlite+aiosqlite://x.db: a SQLite URL names a file after three slashes"),
    ("postgresql://bot:pg-Secret-4711@db:99999/videobot",
     "DATABASE_URL=postgresql://bot:***@db:99999/videobot: the port '99999' is not a number from 1 to 65535"),
])
def test_a_database_url_that_cannot_be_read_is_named_with_its_password_masked(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture, url: str, says: str) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DATABASE_URL", url)
    assert main(["current"]) == 2
    said = capsys.readouterr().err
    assert said.startswith(f"error: {says}") and "pg-Secret-4711" not in said and said.count("\n") == 1


def test_database_url_and_the_server_id_are_read_in_any_case_and_an_empty_variable_is_unset(
        bot_folder: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    """As the bot's pydantic-settings reads them (case_sensitive=False, env_ignore_empty=True)."""
    sqlite3.connect(bot_folder / "real.db").close()
    (bot_folder / ".env").write_text("database_url=sqlite+aiosqlite:///real.db\ndiscord_guild_id=abc\n")
    monkeypatch.setenv("DATABASE_URL", "")  # set empty: .env is read next
    capsys.readouterr()
    assert main(["current"]) == 0
    assert capsys.readouterr().out.startswith("sqlite+aiosqlite:///real.db: no migration has run on it; ")
    assert main(["migrate"]) == 2
    assert capsys.readouterr().err.startswith("error: DISCORD_GUILD_ID=abc: 'abc' is not a server id")

    monkeypatch.setenv("discord_guild_id", "123456789012345678")  # the environment's, in any case, over .env's
    assert main(["migrate"]) == 0
    assert capsys.readouterr().out == f"sqlite+aiosqlite:///real.db: upgraded from revision base to {HEAD}\n"


def test_a_single_quoted_database_url_is_taken_as_written_as_the_bot_takes_it(
        bot_folder: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    """A `${…}` in a single-quoted value is the file's name, not a variable: python-dotenv expanded it, so `python -m
    storage` migrated real.db (or whatever the variable held) while the bot opened real${x}.db."""
    from bot.settings import Settings

    sqlite3.connect(bot_folder / "real${x}.db").close()
    (bot_folder / ".env").write_text("DISCORD_TOKEN=a.token-of.a-bot\nT2V_MODEL=tiny-random\nT2V_ALLOW_TINY=1\n"
                                     "DATABASE_URL='sqlite+aiosqlite:///real${x}.db'\n")
    monkeypatch.setenv("x", "")
    capsys.readouterr()
    assert main(["current"]) == 0
    assert capsys.readouterr().out.startswith("sqlite+aiosqlite:///real${x}.db: ")
    assert Settings().database_url == "sqlite+aiosqlite:///real${x}.db"  # one reader: the bot finds the same file


def test_an_env_that_is_a_folder_is_one_line_naming_it(bot_folder: Path, capsys: pytest.CaptureFixture) -> None:
    (bot_folder / ".env").mkdir()
    capsys.readouterr()
    assert main(["current"]) == 2
    assert capsys.readouterr().err == (f"error: {bot_folder / '.env'} is a folder, not a file; the bot's settings are "
                                       "read from a file named .env in the working directory: remove or rename the "
                                       "folder\n")


def test_a_database_under_a_folder_the_user_may_not_enter_is_one_line_naming_that_folder(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    from tests.permissions import lock_out

    home = lock_out(monkeypatch, tmp_path / "alice")
    monkeypatch.setenv("DATABASE_URL", f"sqlite+aiosqlite:///{home / 'bot.db'}")
    assert main(["current"]) == 2
    assert capsys.readouterr().err == (
        f"error: DATABASE_URL=sqlite+aiosqlite:///{home / 'bot.db'}: permission denied: user {_user()} may not enter "
        f"{home}, so it cannot reach {home / 'bot.db'}; let that user in (chown, or chmod o+x {home}) or keep the "
        "database in a folder it may write\n")


def test_a_database_file_the_user_may_not_open_is_named_with_its_owner_and_mode(
        bot_folder: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    database = bot_folder / "other.db"
    sqlite3.connect(database).close()
    database.chmod(0o600)
    real_open = open

    def not_its_owner(file, mode="r", *args, **kwargs):  # as another user meets a file of mode 600
        if Path(file).absolute() == database:
            raise PermissionError(13, "Permission denied", str(file))
        return real_open(file, mode, *args, **kwargs)

    monkeypatch.setattr("builtins.open", not_its_owner)
    monkeypatch.setenv("DATABASE_URL", "sqlite+aiosqlite:///other.db")
    capsys.readouterr()
    assert main(["current"]) == 2
    assert capsys.readouterr().err == (
        f"error: DATABASE_URL=sqlite+aiosqlite:///other.db: permission denied: user {_user()} may not read and write "
        f"{database} (uid {os.geteuid()}, mode 600); give it to that user (chown) or run as its owner\n")


def test_a_postgresql_driver_that_cannot_be_imported_is_one_line_naming_it_and_the_pip_command(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setitem(sys.modules, "asyncpg", None)  # a broken install: `import asyncpg` fails
    monkeypatch.setenv("DATABASE_URL", "postgresql://bot:pg-Secret-4711@db/videobot")
    assert main(["migrate"]) == 2
    said = capsys.readouterr().err
    assert said.startswith("error: DATABASE_URL=postgresql://bot:***@db/videobot: postgresql is reached through the "
                           "asyncpg driver, which cannot be imported here (")
    assert said.endswith(f"install it into this Python: {sys.executable} -m pip install asyncpg\n")
    assert said.count("\n") == 1 and "pg-Secret-4711" not in said



def _user() -> str:
    from t2v.errors import current_user  # the bot's words for the user; storage says it alike

    return current_user()
