"""Ctrl-C while `python -m bot` imports the standard library's heavier modules (asyncio, logging), as much as while it
imports its own: a quiet stop, exit status 0, never a KeyboardInterrupt traceback. The child presses Ctrl-C itself
(signal.raise_signal) as the named module is looked for, so nothing depends on timing."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.bot.helpers import child_env, interrupted_while_importing
from tests.bot.test_interrupts import ENV


@pytest.mark.parametrize("module", ["asyncio", "logging", "bot.env_file"])
def test_a_ctrl_c_while_python_m_bot_imports_is_a_quiet_stop(tmp_path: Path, module: str):
    result = interrupted_while_importing(["bot"], module, tmp_path, child_env(**ENV))

    assert (result.returncode, result.stderr) == (0, "")
    assert not (tmp_path / "videobot.db").exists()
