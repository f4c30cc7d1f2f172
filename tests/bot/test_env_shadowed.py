"""A setting that `.env` gives and the environment gives too, to another value: the environment's wins, so the edit an
operator made in `.env` (a rotated token, a device) changes nothing while the shell that starts the bot still exports
the old value. The start names each such setting (a warning, or a note beside the errors), never its values."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest

from bot.__main__ import main
from bot.env_file import shadowed
from tests.bot.helpers import SETTING_NAMES, START_S, child_env

OLD = "MTE3NzM0NTY3ODkwMTIzNDU2.GsOlDt.the-token-before-the-reset-1a2b"
NEW = "MTE3NzM0NTY3ODkwMTIzNDU2.GsNeWt.the-token-after-the-reset-3c4d"


@pytest.fixture(autouse=True)
def signals_given_back():
    """main() hands SIGTERM and SIGINT to python -m bot's own handler; here the process is pytest's."""
    handlers = {number: signal.getsignal(number) for number in (signal.SIGTERM, signal.SIGINT)}
    yield
    for number, handler in handlers.items():
        signal.signal(number, handler)


def line(name: str, env_file: Path | str) -> str:
    return (f"{name} is set both in the environment and in {env_file}, to different values: the environment's is "
            f"used and {env_file}'s ignored; to use {env_file}'s, unset it in the environment (unset {name})")


def test_each_setting_the_environment_gives_another_value_than_env_is_named_once(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text(f"DISCORD_TOKEN={NEW}\nT2V_DEVICE=cpu\nQUOTA_DEFAULT=5\nMEDIA_DIR=/srv/media\n"
                        "DEFAULT_STEPS=25\nHF_HOME=/srv/hf\nmax_frames=24\n")
    env = {"discord_token": OLD, "T2V_DEVICE": "cpu", "QUOTA_DEFAULT": " 5 ", "MEDIA_DIR": "",
           "DEFAULT_STEPS": "30", "HF_HOME": "/root/hf", "MAX_FRAMES": "16"}

    assert shadowed(env, str(env_file)) == [line("DISCORD_TOKEN", env_file), line("DEFAULT_STEPS", env_file),
                                            line("MAX_FRAMES", env_file)]  # the same value, or an empty one: none
    assert shadowed({"T2V_DEVICE": "cpu"}, str(env_file)) == []
    assert shadowed(env, str(tmp_path / "missing.env")) == []


def test_a_wrong_value_the_shell_still_exports_is_explained_beside_its_error(tmp_path: Path, monkeypatch, capsys):
    for name in SETTING_NAMES:
        monkeypatch.delenv(name, raising=False)
    (tmp_path / ".env").write_text(f"DISCORD_TOKEN={NEW}\nT2V_MODEL=tiny-random\nT2V_ALLOW_TINY=1\nT2V_DEVICE=cpu\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("T2V_DEVICE", "gpu")  # exported an hour ago; .env was corrected since

    assert main() == 2
    said = capsys.readouterr().err.splitlines()
    assert said[0].startswith("error: T2V_DEVICE=gpu is not cuda, cuda:N, cpu")
    assert f"note: {line('T2V_DEVICE', '.env')}" in said


def test_a_token_rotated_in_env_while_the_environment_keeps_the_old_one_is_a_warning_at_start(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text(f"DISCORD_TOKEN={NEW}\nT2V_MODEL=tiny-random\nT2V_ALLOW_TINY=1\nT2V_DEVICE=cpu\n")
    env = child_env(DISCORD_TOKEN=OLD, DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}",
                    MEDIA_DIR=str(tmp_path / "media"), HEALTH_ENABLED="0", STARTUP_RETRY_S="0",
                    DISCORD_LOGIN_TIMEOUT_S="0.2", DISCORD_API_BASE="http://127.0.0.1:9/api/v10")
    result = subprocess.run([sys.executable, "-m", "bot"], cwd=tmp_path, env=env, capture_output=True, text=True,
                            timeout=START_S)

    assert result.returncode == 1  # Discord out of reach here
    warnings = [said.split(" WARNING bot: ", 1)[1] for said in result.stderr.splitlines() if " WARNING bot: " in said]
    assert warnings == [line("DISCORD_TOKEN", ".env")]
    assert OLD not in result.stderr and NEW not in result.stderr
