"""The `.env` file the bot reads its settings from, checked before anything starts (bot.env_file)."""

from pathlib import Path

import pytest

from bot.env_file import malformed_lines, unreadable
from bot.settings import load_settings


def test_an_env_that_is_a_folder_is_one_line_naming_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").mkdir()  # `docker run -v ./.env:/app/.env` with no file there makes a folder of it

    assert unreadable() == (f"{tmp_path / '.env'} is a folder, not a file; the bot reads its settings from a file "
                            "named .env in its working directory: remove or rename the folder")


def test_an_env_that_is_a_link_to_nothing_is_one_line_naming_where_it_points(tmp_path: Path):
    """A .env symlinked to a secrets mount that is not there was read as no .env at all: "DISCORD_TOKEN is missing",
    and a note that there is "no .env" in a folder that has one."""
    (tmp_path / ".env").symlink_to(tmp_path / "secrets" / "bot.env")

    assert unreadable(str(tmp_path / ".env")) == (
        f"{tmp_path / '.env'} is a link to {tmp_path / 'secrets' / 'bot.env'}, which is not there: point it at the "
        "settings file, or replace it with the file")


def test_a_single_quoted_value_in_env_is_taken_as_written_as_a_shell_takes_it(tmp_path: Path, monkeypatch):
    """python-dotenv expands ${VAR} in every value: a password with ${ in single quotes lost it (here: to HOST's
    value), where a shell, systemd and docker keep it. Double-quoted and bare values are expanded as before."""
    monkeypatch.setenv("ss", "-from-the-environment")
    env = tmp_path / ".env"
    env.write_text("DISCORD_TOKEN=a.token-of.a-bot\nT2V_MODEL=tiny-random\nT2V_ALLOW_TINY=1\n"
                   "DATABASE_URL='postgresql://bot:pa${ss}@db/videobot'\nMEDIA_DIR=\"/srv/media${ss}\"\n"
                   "export STYLES_FILE = '${ss}.toml'\n")

    settings = load_settings({}, env_file=str(env))

    assert settings.database_url == "postgresql://bot:pa${ss}@db/videobot"
    assert settings.styles_file == Path("${ss}.toml")
    assert settings.media_dir == Path("/srv/media-from-the-environment")


def test_a_variable_a_setting_uses_that_nothing_sets_is_named_with_its_line(tmp_path: Path, monkeypatch):
    """python-dotenv reads an unset ${DATA} as empty without a word: MEDIA_DIR=${DATA}/media became /media."""
    monkeypatch.delenv("DATA", raising=False)
    monkeypatch.setenv("HOME_OF_THE_BOT", "/srv/bot")
    env = tmp_path / ".env"
    env.write_text("MEDIA_DIR=${DATA}/media\nBASE=/srv\nT2V_MODEL=${BASE}/weights\nSTYLES_FILE=${HOME_OF_THE_BOT}/s.toml\n"
                   "T2V_COMPILE_CACHE='${DATA}/cache'\nDATABASE_URL=\"sqlite+aiosqlite:///${DB:-videobot}.db\"\n"
                   "UPSCALE_MODEL=\"${UPSCALER}\"\nNOT_A_SETTING=${NOTHING}\n")

    assert malformed_lines(str(env)) == [
        f"{env} line 1: MEDIA_DIR uses ${{DATA}}, which neither an earlier line nor the environment sets, so it would "
        "read as empty; set DATA, or put the value in single quotes to keep ${DATA} as written",
        f"{env} line 7: UPSCALE_MODEL uses ${{UPSCALER}}, which neither an earlier line nor the environment sets, so "
        "it would read as empty; set UPSCALER, or put the value in single quotes to keep ${UPSCALER} as written"]


def test_a_name_alone_on_a_line_of_env_is_named_as_not_name_equals_value(tmp_path: Path):
    env = tmp_path / ".env"  # python-dotenv reads QUOTA_DEFAULT with no value, and the bot nothing from it
    env.write_text("LOG_LEVEL=INFO\nQUOTA_DEFAULT\n")

    assert malformed_lines(str(env)) == [f"{env} line 2 is not NAME=value, so the bot would ignore it; correct it or "
                                         "make it a comment (#)"]
