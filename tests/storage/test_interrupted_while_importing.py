"""Ctrl-C while `python -m storage` imports its modules, the package's own included (Python imports storage/__init__.py
before storage/__main__.py runs): one line, exit status 130, never a KeyboardInterrupt traceback. The child presses
Ctrl-C itself (signal.raise_signal) as the named module is looked for, so nothing depends on timing."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.bot.helpers import child_env, interrupted_while_importing


@pytest.mark.parametrize("module", ["storage.errors", "storage.records", "asyncio", "storage.db"])
def test_ctrl_c_while_python_m_storage_imports_is_one_line_and_nothing_is_done(tmp_path: Path, module: str):
    result = interrupted_while_importing(["storage", "current"], module, tmp_path, child_env())

    assert result.stderr == "error: interrupted before the command started; nothing was done\n"
    assert result.returncode == 130
    assert not (tmp_path / "videobot.db").exists()
