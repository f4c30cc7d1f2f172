"""bot.paths: the one check of a path as written, for the path settings and a style's LoRA file alike."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.errors import SettingsError
from bot.gpu.styles import read_styles
from bot.settings import load_settings

VALID = {"DISCORD_TOKEN": "a.token-of.a-bot", "T2V_MODEL": "tiny-random", "T2V_ALLOW_TINY": "1"}


def setting_problems(value: str) -> list[str]:
    with pytest.raises(SettingsError) as caught:
        load_settings({**VALID, "MEDIA_DIR": value}, env_file=None)
    return caught.value.lines


def style_problems(tmp_path: Path, file: str) -> list[str]:
    path = tmp_path / "styles.toml"
    path.write_text(f"[clay]\nfile = {file!r}\n".replace("'", '"'), encoding="utf-8")
    with pytest.raises(SettingsError) as caught:
        read_styles(path, check_files=False)
    return caught.value.lines


@pytest.mark.parametrize(("value", "shown"), [("media\u200b", "'\\u200b'"), ("\u202emedia", "'\\u202e'"),
                                              ("me\ufeffdia", "'\\ufeff'")])
def test_a_path_holding_an_invisible_character_is_refused_alike_in_a_setting_and_a_style(tmp_path: Path, value: str,
                                                                                        shown: str):
    """A zero-width space or a bidi mark pasted with a path made a folder (or looked for a LoRA) nobody can name
    again; both checks refuse it, being one."""
    assert setting_problems(value) == [
        f"MEDIA_DIR={value!r} holds the invisible character {shown}, which no file name should: remove it"]
    assert style_problems(tmp_path, value) == [
        f"STYLES_FILE={tmp_path / 'styles.toml'} [clay]: file = {value!r} holds the invisible character {shown}, "
        "which no file name should: remove it"]
