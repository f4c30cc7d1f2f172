"""The `.env` file the bot reads its settings from, checked before anything starts (bot.env_file)."""

from pathlib import Path

import pytest

from bot.env_file import unreadable
from bot.settings import load_settings


def test_an_env_that_is_a_folder_is_one_line_naming_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").mkdir()  # `docker run -v ./.env:/app/.env` with no file there makes a folder of it

    assert unreadable() == (f"{tmp_path / '.env'} is a folder, not a file; the bot reads its settings from a file "
                            "named .env in its working directory: remove or rename the folder")


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
