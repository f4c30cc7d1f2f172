"""What an operator running the bot for months meets across restarts and over time: a database another program keeps
locked, a full disk, a server that removed the bot while it was down. Each test is one such situation, fast and
without sleeps."""

from __future__ import annotations

import functools
import sqlite3
from pathlib import Path

import pytest

import bot.app
from bot.errors import Unreachable
from storage import create_engine
from tests.bot.conftest import settings_for


async def test_a_database_another_program_keeps_locked_at_start_is_one_line_not_a_traceback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    database = tmp_path / "bot.db"
    url = f"sqlite+aiosqlite:///{database}"
    monkeypatch.setattr(bot.app, "create_engine", functools.partial(create_engine, busy_timeout_ms=0))
    shell = sqlite3.connect(database, isolation_level=None)  # an operator's `sqlite3 bot.db` left inside BEGIN
    try:
        shell.execute("PRAGMA journal_mode=WAL")
        shell.execute("BEGIN IMMEDIATE")
        with pytest.raises(Unreachable) as raised:
            await bot.app.run(settings_for(url))
    finally:
        shell.close()

    assert str(raised.value) == (
        f"DATABASE_URL={url}: the database stayed locked by another process while the bot started (database is "
        "locked): a program holds a write transaction open on it (a sqlite3 shell inside BEGIN, a backup or a copy "
        "of the file); end it, and the bot's supervisor starts the bot again")
