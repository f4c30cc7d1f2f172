"""bot.paths: the one check of a path as written, for the path settings and a style's LoRA file alike."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import t2v.unexpanded
from bot.errors import SettingsError
from bot.gpu.styles import read_styles
from bot.settings import load_settings
from t2v.unexpanded import Unexpanded

VALID = {"DISCORD_TOKEN": "a.token-of.a-bot", "T2V_MODEL": "tiny-random", "T2V_ALLOW_TINY": "1"}


def setting_problems(value: str, name: str = "MEDIA_DIR") -> list[str]:
    with pytest.raises(SettingsError) as caught:
        load_settings({**VALID, name: value}, env_file=None)
    return caught.value.lines


def database_problems(url: str) -> list[str]:
    return setting_problems(url, "DATABASE_URL")


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


@pytest.fixture
def asked(monkeypatch) -> list[tuple[str, dict[str, bool]]]:
    """The paths (and the policy) the bot's checks asked t2v's one home about; it answers that each named `asked…`
    is a ~ standing for /srv/the-one-home (the others as it would)."""
    seen: list[tuple[str, dict[str, bool]]] = []
    real = t2v.unexpanded.find

    def home(value: str, **policy: bool) -> Unexpanded | None:
        seen.append((value, policy))
        return Unexpanded("~", "/srv/the-one-home") if value.startswith("asked") else real(value, **policy)

    monkeypatch.setattr(t2v.unexpanded, "find", home)
    return seen


def test_the_path_settings_a_style_s_file_and_the_database_s_file_ask_t2v_s_one_home(tmp_path: Path, asked):
    said = "'~' is not expanded here (it would be a folder named '~'); write the full path"
    assert setting_problems("asked-media") == [f"MEDIA_DIR=asked-media: {said}, e.g. /srv/the-one-home"]
    assert style_problems(tmp_path, "asked.safetensors") == [
        f"STYLES_FILE={tmp_path / 'styles.toml'} [clay]: file = 'asked.safetensors': {said} such as "
        f"'/srv/the-one-home', or one relative to {tmp_path}"]
    assert database_problems("sqlite+aiosqlite:///asked.db") == [
        f"DATABASE_URL=sqlite+aiosqlite:///asked.db: {said}, e.g. sqlite+aiosqlite:////srv/the-one-home"]
    settings_policy = {"variables": False, "as_typed": False}  # no shell reads a setting: every leading ~ is one
    policies = dict(asked)
    assert policies["asked-media"] == policies["asked.safetensors"] == policies["asked.db"] == settings_policy


def test_a_home_of_another_user_is_named_as_written_in_a_setting_and_the_database_url():
    """~root/x was refused as "'~' is not expanded here (it would be a folder named '~')": the folder would be named
    '~root'. DATABASE_URL's file let it by (a folder named '~root' made beside the bot), the path settings did not."""
    root = os.path.expanduser("~root")
    assert setting_problems("~root/media") == [
        f"MEDIA_DIR=~root/media: '~root' is not expanded here (it would be a folder named '~root'); write the full "
        f"path, e.g. {root}/media"]
    assert database_problems("sqlite+aiosqlite:///~root/bot.db") == [
        "DATABASE_URL=sqlite+aiosqlite:///~root/bot.db: '~root' is not expanded here (it would be a folder named "
        f"'~root'); write the full path, e.g. sqlite+aiosqlite:///{root}/bot.db"]
