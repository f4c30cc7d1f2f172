"""`python -m storage` names a variable in `.env` or the environment that looks meant for a setting it reads
(DATABSE_URL, DB_URL) once, with that setting, as `python -m bot` does (bot.env_file.misspelled): otherwise the
command reads the default database and says only that there is none. The bot's own settings and other programs'
variables are never named."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from bot.settings import Settings
from storage.__main__ import _misspelled
from tests.bot.test_settings import ORDINARY
from tests.storage.test_migrate_command import storage_command


def test_a_misspelled_database_url_in_env_is_named_once_with_the_setting_before_the_error(tmp_path: Path):
    sqlite3.connect(tmp_path / "bot.db").close()
    (tmp_path / ".env").write_text("DISCORD_TOKEN=a.token-of.a-bot\nDATABSE_URL=sqlite+aiosqlite:///bot.db\n"
                                   "databse_url=sqlite+aiosqlite:///bot.db\n")

    result = storage_command("current", cwd=tmp_path)  # one line for both spellings: the last, which is read

    assert result.stderr.splitlines() == [
        "warning: databse_url (in .env) is not a setting the bot reads, so it is ignored; did you mean DATABASE_URL?",
        f"error: DATABASE_URL=sqlite+aiosqlite:///videobot.db: there is no database at {tmp_path / 'videobot.db'}; "
        "run this in the bot's working directory, or set DATABASE_URL to the bot's"]
    assert result.returncode == 2


def test_a_name_other_guides_use_is_named_with_the_setting_it_stands_for(tmp_path: Path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for name in ("DATABASE_URL", "DISCORD_GUILD_ID", "DB_URL", "GUILD_ID"):
        monkeypatch.delenv(name, raising=False)
    (tmp_path / ".env").write_text("DB_URL=sqlite+aiosqlite:///bot.db\nDISCORD_GUILDID=123456789012345678\n")
    monkeypatch.setenv("GUILD_ID", "1")  # another program's, perhaps: named while DISCORD_GUILD_ID is unset

    assert [line.rsplit(" ", 1)[1] for line in _misspelled()] == [
        "DISCORD_GUILD_ID?", "DATABASE_URL?", "DISCORD_GUILD_ID?"]
    monkeypatch.setenv("DISCORD_GUILD_ID", "123456789012345678")
    assert [line.split(" ", 1)[0] for line in _misspelled()] == ["DB_URL", "DISCORD_GUILDID"]


@pytest.mark.parametrize("names", [[name.upper() for name in Settings.model_fields], list(ORDINARY)])
def test_the_bots_settings_and_other_programs_variables_are_never_named(tmp_path: Path, monkeypatch, names):
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text("".join(f"{name}=x\n" for name in names))
    for name in names:
        monkeypatch.setenv(name, "x")

    assert _misspelled() == []
