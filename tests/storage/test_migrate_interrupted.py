"""Ctrl-C during `python -m storage migrate`: one line saying what became of the database (as it was: the command is
one transaction), exit status 130; never a traceback. The child presses Ctrl-C itself (signal.raise_signal) inside
the migration's transaction, so nothing depends on timing."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

from tests.bot.helpers import START_S, child_env
from tests.storage.test_migrate_command import HEAD, schema

CTRL_C_MID_MIGRATION = """
import logging, runpy, signal, sys

class CtrlC(logging.Filter):
    def filter(self, record):
        if record.getMessage().startswith("Running downgrade 0004 -> 0003"):  # 0005 -> 0004 ran, in the transaction
            signal.raise_signal(signal.SIGINT)
        return True

logging.getLogger("alembic.runtime.migration").addFilter(CtrlC())
sys.argv = ["storage", "migrate", "--to", "0003"]
runpy.run_module("storage", run_name="__main__", alter_sys=True)
"""

def test_ctrl_c_in_the_middle_of_a_migration_is_one_line_and_leaves_the_database_as_it_was(tmp_path: Path):
    database = tmp_path / "videobot.db"
    sqlite3.connect(database).close()
    assert subprocess.run([sys.executable, "-m", "storage", "migrate"], cwd=tmp_path, env=child_env(),
                          capture_output=True, timeout=START_S).returncode == 0

    before = schema(database)
    assert before[0] == HEAD
    result = subprocess.run([sys.executable, "-c", CTRL_C_MID_MIGRATION], cwd=tmp_path, env=child_env(),
                            capture_output=True, text=True, timeout=START_S)

    assert result.stderr.splitlines()[-1] == (
        "error: interrupted; the database is as it was before the command, unless a migrate had just finished (each "
        "runs as one transaction): python -m storage current says which"), result.stderr
    assert "Traceback" not in result.stderr
    assert result.returncode == 130
    assert "Running downgrade 0005 -> 0004" in result.stderr
    assert schema(database) == before  # rolled back
