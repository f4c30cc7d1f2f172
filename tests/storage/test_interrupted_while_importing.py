"""Ctrl-C while `python -m storage` imports its modules, the package's own included (Python imports storage/__init__.py
before storage/__main__.py runs): one line, exit status 130, never a KeyboardInterrupt traceback. The child presses
Ctrl-C itself (signal.raise_signal) as the named module is looked for, so nothing depends on timing."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.bot.helpers import START_S, child_env

CTRL_C_WHILE_IMPORTING = """
import runpy, signal, sys

class CtrlC:
    def find_spec(self, name, path=None, target=None):
        if name == {module!r}:
            signal.raise_signal(signal.SIGINT)

sys.meta_path.insert(0, CtrlC())
sys.argv = ["storage", "current"]
runpy.run_module("storage", run_name="__main__", alter_sys=True)
"""


@pytest.mark.parametrize("module", ["storage.errors", "storage.records", "asyncio", "storage.db"])
def test_ctrl_c_while_python_m_storage_imports_is_one_line_and_nothing_is_done(tmp_path: Path, module: str):
    result = subprocess.run([sys.executable, "-c", CTRL_C_WHILE_IMPORTING.format(module=module)], cwd=tmp_path,
                            env=child_env(), capture_output=True, text=True, timeout=START_S)

    assert result.stderr == "error: interrupted before the command started; nothing was done\n"
    assert result.returncode == 130
    assert not (tmp_path / "videobot.db").exists()
