"""Ctrl-C while `python -m bot` imports the standard library's heavier modules (asyncio, logging), as much as while it
imports its own: a quiet stop, exit status 0, never a KeyboardInterrupt traceback. The child presses Ctrl-C itself
(signal.raise_signal) as the named module is looked for, so nothing depends on timing."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.bot.helpers import START_S, child_env
from tests.bot.test_interrupts import ENV

CTRL_C_WHILE_IMPORTING = """
import runpy, signal, sys

class CtrlC:
    def find_spec(self, name, path=None, target=None):
        if name == {module!r}:
            signal.raise_signal(signal.SIGINT)

sys.meta_path.insert(0, CtrlC())
sys.argv = ["bot"]
runpy.run_module("bot", run_name="__main__", alter_sys=True)
"""


@pytest.mark.parametrize("module", ["asyncio", "logging", "bot.env_file"])
def test_a_ctrl_c_while_python_m_bot_imports_is_a_quiet_stop(tmp_path: Path, module: str):
    result = subprocess.run([sys.executable, "-c", CTRL_C_WHILE_IMPORTING.format(module=module)], cwd=tmp_path,
                            env=child_env(**ENV), capture_output=True, text=True, timeout=START_S)

    assert (result.returncode, result.stderr) == (0, "")
    assert not (tmp_path / "videobot.db").exists()
