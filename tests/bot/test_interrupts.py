"""Ctrl-C (or SIGTERM) while `python -m bot` starts, before its event loop handles them: a quiet stop, exit status 0,
wherever it lands; a second one while that stop unwinds ends the process at once with one line, never with Python's
"Exception ignored" tracebacks. Each child presses Ctrl-C itself (signal.raise_signal) at a chosen point, so nothing
depends on timing."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.bot.helpers import START_S, child_env

ENV = {"DISCORD_TOKEN": "a.token-of.a-bot", "T2V_MODEL": "tiny-random", "T2V_ALLOW_TINY": "1", "T2V_DEVICE": "cpu",
       "STARTUP_RETRY_S": "0", "DISCORD_API_BASE": "http://127.0.0.1:9/api/v10", "HEALTH_ENABLED": "0"}

CTRL_C = """
import runpy, signal, sys
import bot.settings

class Ctrl_C:
    def __del__(self):  # Python ignores what a __del__ raises, with a traceback
        signal.raise_signal(signal.SIGINT)

read = bot.settings.load_settings

def load_settings(*args, **kwargs):
{body}

bot.settings.load_settings = load_settings
sys.argv = ["bot"]
runpy.run_module("bot", run_name="__main__", alter_sys=True)
"""


def start(tmp_path: Path, body: str) -> subprocess.CompletedProcess[str]:
    code = CTRL_C.format(body="\n".join(f"    {line}" for line in body.splitlines()))
    return subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=child_env(**ENV), capture_output=True,
                          text=True, timeout=START_S)


def test_a_second_ctrl_c_while_the_first_stops_the_start_is_one_line(tmp_path: Path):
    result = start(tmp_path, "pressed_again = Ctrl_C()  # its __del__ runs as the first one's stop leaves this frame\n"
                             "signal.raise_signal(signal.SIGINT)")

    assert result.stderr == "SIGINT again while stopping: stopped at once\n"
    assert result.returncode == 130
    assert not (tmp_path / "videobot.db").exists()


def test_a_ctrl_c_that_lands_where_python_ignores_exceptions_still_stops_the_start_quietly(tmp_path: Path):
    result = start(tmp_path, "Ctrl_C()  # deleted at once: the stop raised in its __del__ is ignored\n"
                             "return read(*args, **kwargs)")

    assert (result.returncode, result.stderr) == (0, "")
    assert not (tmp_path / "videobot.db").exists()  # stopped before the database was made


def test_a_ctrl_c_while_python_m_bot_imports_its_modules_is_a_quiet_stop(tmp_path: Path):
    code = ("import runpy, signal, sys\n"
            "class Interrupt:\n"
            "    def find_spec(self, name, path=None, target=None):\n"
            "        if name == 'bot.env_file':\n"
            "            signal.raise_signal(signal.SIGINT)\n"
            "sys.meta_path.insert(0, Interrupt())\n"
            "sys.argv = ['bot']\n"
            "runpy.run_module('bot', run_name='__main__', alter_sys=True)\n")
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=child_env(**ENV), capture_output=True,
                            text=True, timeout=START_S)

    assert (result.returncode, result.stderr) == (0, "")
