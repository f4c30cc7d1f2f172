"""`python -m storage migrate` while another process is writing to the SQLite database and takes no lock file (a
sqlite3 shell, a backup, an older bot): one line naming the database and what to do, exit status 1, the database as it
was; never SQLAlchemy's forty-line traceback. The test process holds the write lock itself, so nothing depends on
timing."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from storage.__main__ import main
from tests.storage.test_migrate_command import HEAD, schema


def test_a_migrate_while_another_process_writes_is_one_line_and_changes_nothing(bot_folder: Path,
                                                                                 capsys: pytest.CaptureFixture):
    writer = sqlite3.connect(bot_folder / "videobot.db", isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")  # a sqlite3 shell in the middle of an edit
    writer.execute("CREATE TABLE notes (text TEXT)")
    capsys.readouterr()
    try:
        status = main(["migrate", "--to", "0003"])
    finally:
        writer.execute("ROLLBACK")
        writer.close()

    assert status == 1
    assert capsys.readouterr().err.splitlines()[-1] == (
        "error: DATABASE_URL=sqlite+aiosqlite:///videobot.db: database is locked: another process is writing to it "
        "(a sqlite3 shell, a backup, a bot that takes no lock file); nothing was changed: let it finish or stop it, "
        "then run this again")
    assert schema(bot_folder / "videobot.db")[0] == HEAD
