"""storage.sqlite_file.problem on a path that is there but is no regular file: one line naming it and what it is."""

import os
from pathlib import Path

from storage import sqlite_file


def test_a_fifo_named_as_the_database_is_said_to_be_one(tmp_path: Path):
    fifo = tmp_path / "videobot.db"
    os.mkfifo(fifo)
    found = sqlite_file.problem(fifo)
    assert found is not None and found.kind == "not a file" and found.path == fifo and not found.in_folder
    assert found.text == (f"{fifo} is a FIFO (named pipe), not a database file; name a regular file (or one that is "
                          "not there yet)")
    assert "None" not in found.text


def test_a_fifo_left_as_a_journal_beside_the_database_is_named(tmp_path: Path):
    database = tmp_path / "videobot.db"
    database.write_bytes(b"")
    os.mkfifo(tmp_path / "videobot.db-wal")
    found = sqlite_file.problem(database)
    assert found is not None and found.kind == "not a file" and found.path == tmp_path / "videobot.db-wal"
    assert found.text.startswith(f"{tmp_path / 'videobot.db-wal'} is a FIFO (named pipe), not a database file")


def test_a_character_device_is_not_taken_for_a_database():
    found = sqlite_file.problem(Path("/dev/null"))
    assert found is not None and found.kind == "not a file"
    assert found.text.startswith("/dev/null is a character device, not a database file")


def test_a_regular_file_has_no_problem(tmp_path: Path):
    database = tmp_path / "videobot.db"
    database.write_bytes(b"")
    assert sqlite_file.problem(database) is None
