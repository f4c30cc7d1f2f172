"""The `.env` file the bot reads its settings from, checked before anything starts (bot.env_file)."""

from pathlib import Path

import pytest

from bot.env_file import unreadable


def test_an_env_that_is_a_folder_is_one_line_naming_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").mkdir()  # `docker run -v ./.env:/app/.env` with no file there makes a folder of it

    assert unreadable() == (f"{tmp_path / '.env'} is a folder, not a file; the bot reads its settings from a file "
                            "named .env in its working directory: remove or rename the folder")
