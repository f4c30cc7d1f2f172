"""A required setting whose line is there but empty (`DISCORD_TOKEN=` in a .env copied from .env.example, where an
empty value counts as unset) is named as empty, with the file and line to fill in, not as missing, which would send
its operator looking for a line that is there."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from bot.errors import SettingsError
from bot.settings import load_settings
from tests.bot.helpers import START_S, child_env
from tests.bot.test_settings import TOKEN

GET_ONE = "set it to your bot token (Discord developer portal → Bot → Reset Token)"


def problems(env: dict[str, str], env_file: Path | None) -> list[str]:
    with pytest.raises(SettingsError) as error:
        load_settings(env, env_file=None if env_file is None else str(env_file))
    return error.value.lines


def test_python_m_bot_names_the_env_line_that_leaves_the_token_empty(tmp_path: Path):
    (tmp_path / ".env").write_text("# Required: the bot's token\nDISCORD_TOKEN=\nT2V_MODEL=tiny-random\n"
                                   "T2V_ALLOW_TINY=1\nT2V_DEVICE=cpu\n")

    result = subprocess.run([sys.executable, "-m", "bot"], cwd=tmp_path, env=child_env(), capture_output=True,
                            text=True, timeout=START_S)

    assert result.stderr.splitlines() == [f"error: DISCORD_TOKEN is empty on .env line 2: {GET_ONE}"]
    assert result.returncode == 2


@pytest.mark.parametrize(("text", "line"), [
    ("DISCORD_TOKEN=\n", 1),
    ("T2V_DEVICE=cpu\r\n\r\nexport discord_token=''   # paste it here\r\n", 3),  # any case, quoted, commented
    ("DISCORD_TOKEN=\nDISCORD_TOKEN=\n", 2),  # the last is the one read
])
def test_an_empty_line_is_named_by_its_number_however_it_is_written(tmp_path: Path, text: str, line: int):
    env_file = tmp_path / ".env"
    env_file.write_text(text, newline="")

    assert problems({"T2V_MODEL": "tiny-random", "T2V_ALLOW_TINY": "1"}, env_file) == [
        f"DISCORD_TOKEN is empty on {env_file} line {line}: {GET_ONE}"]


def test_a_required_setting_set_empty_in_the_environment_says_so(tmp_path: Path):
    assert problems({"DISCORD_TOKEN": "", "T2V_MODEL": "tiny-random", "T2V_ALLOW_TINY": "1"}, None) == [
        f"DISCORD_TOKEN is set empty in the environment: {GET_ONE}"]
    assert problems({"DISCORD_TOKEN": TOKEN, "t2v_model": ""}, tmp_path / "none.env")[0].startswith(
        "T2V_MODEL is set empty in the environment: set it to the folder of your weights")


def test_a_setting_set_nowhere_is_still_missing(tmp_path: Path):
    env_file = tmp_path / ".env"
    env_file.write_text("T2V_MODEL=tiny-random\nT2V_ALLOW_TINY=1\n# DISCORD_TOKEN=\n")

    assert problems({}, env_file) == [f"DISCORD_TOKEN is missing: {GET_ONE}"]
