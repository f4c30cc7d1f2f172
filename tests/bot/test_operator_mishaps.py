"""What an operator running the bot for months meets across restarts and over time: a database another program keeps
locked, files a command run as another user left beside it, a second bot reaching it through a link, a DATABASE_URL
naming another file, a full disk. Each test is one such situation, fast and without sleeps."""

from __future__ import annotations

import builtins
import errno
import functools
import logging
import os
import sqlite3
from pathlib import Path
from typing import Any

import pytest

import bot.app
from bot import startup
from bot.errors import SettingsError, Unreachable
from bot.media import MediaStore
from bot.startup import DEPLOYED_AS, Retry, Stop
from storage import DatabaseInUse, Delivery, JobState, create_engine, held_alone, migrate
from t2v.errors import WriteError, current_user
from tests.bot.conftest import Stacks, settings_for
from tests.bot.helpers import has_video, video


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
        f"DATABASE_URL={url}: the database stayed locked by another process (database is locked): a program holds a "
        "write transaction open on it (a sqlite3 shell inside BEGIN, a backup or a copy of the file); end it, and the "
        "bot's supervisor starts the bot again")



@pytest.mark.parametrize(("cause", "advice"), [
    ("No space left on device", "free space under MEDIA_DIR={}, or set MEDIA_DIR to a folder with room that the bot "
                                "may write"),
    ("Read-only file system", "let the bot's user write MEDIA_DIR={} (a read-only mount, or its owner's permissions), "
                              "or set MEDIA_DIR to a folder it may write"),
])
async def test_a_video_the_full_disk_cannot_keep_is_posted_and_logged_as_the_disk_s_problem_not_discord_s(
    stacks: Stacks, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, cause: str, advice: str
) -> None:
    def full(path: Path, data: bytes) -> Path:  # what t2v.video.write_whole raises on ENOSPC, EROFS
        code = next(code for code in (errno.ENOSPC, errno.EROFS) if os.strerror(code) == cause)
        raise WriteError(f"could not write {path} ({cause}); nothing was written there") from OSError(code, cause)

    monkeypatch.setattr(MediaStore, "_write", staticmethod(full))
    async with stacks.run() as stack:
        handle = await video(stack.fake, "a paper boat on a pond")
        result = await handle.wait_followup(has_video)
        media = stack.settings.media_dir
    job = await stack.job(1)

    assert result.attachments and (job.state, job.delivery) == (JobState.DONE, Delivery.POSTED)
    [error] = [record for record in caplog.records if record.levelno >= logging.ERROR]
    assert error.getMessage() == (
        f"job 1: its video is not kept (could not write {media / '1.mp4'} ({cause}); nothing was written there): it "
        f"is posted all the same, but cannot be upscaled; {advice.format(media)}")
    assert error.exc_info is None  # a foreseen cause, in one line



async def test_a_second_bot_that_reaches_the_database_through_a_link_to_its_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "elsewhere").mkdir()
    database = tmp_path / "data" / "videobot.db"
    first, second = create_engine(f"sqlite+aiosqlite:///{database}"), None
    try:
        await migrate(first)
        (tmp_path / "elsewhere" / "videobot.db").symlink_to(database)  # a second checkout linking the operator's file
        second = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'elsewhere' / 'videobot.db'}")
        async with held_alone(first):
            with pytest.raises(DatabaseInUse) as raised:
                async with held_alone(second):
                    pass
    finally:
        await first.dispose()
        if second is not None:
            await second.dispose()

    assert str(raised.value) == (f"another process (pid {os.getpid()}) holds this database as its bot's "
                                 f"({database}.lock is locked)")


def test_a_lock_file_a_command_run_as_another_user_left_is_one_line_at_start_not_a_traceback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}"
    (tmp_path / "bot.db").touch()
    lock = tmp_path / "bot.db.lock"  # left by `sudo python -m storage migrate`: root's, mode 644
    lock.write_text("1\n")
    lock.chmod(0o644)
    real_open = builtins.open

    def open_(file: Any, *args: Any, **kwargs: Any) -> Any:  # the bot's user may read it, not write it
        if not isinstance(file, int) and Path(os.fsdecode(file)).absolute() == lock and args[0] != "r":
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), os.fsdecode(file))
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", open_)
    with pytest.raises(SettingsError) as raised:
        startup.check_environment(settings_for(url))

    assert raised.value.lines == [
        f"DATABASE_URL={url}: permission denied: user {current_user()} may not read and write {lock} (uid "
        f"{os.getuid()}, mode 644); give it to that user (chown) or run as its owner ({DEPLOYED_AS})"]



async def test_a_database_url_naming_a_file_that_is_not_there_beside_kept_videos_warns_where_the_new_one_is(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="bot.app")
    (tmp_path / "data" / "media").mkdir(parents=True)
    await migrate(f"sqlite+aiosqlite:///{tmp_path / 'data' / 'videobot.db'}")  # the bot's database, months old
    (tmp_path / "data" / "media" / "17.mp4").write_bytes(b"kept")  # and a video it kept
    monkeypatch.chdir(tmp_path / "data")  # the operator meant the absolute path: three slashes make it relative
    wrong = f"sqlite+aiosqlite:///{str(tmp_path / 'data' / 'videobot.db').lstrip('/')}"
    media = {"media_dir": tmp_path / "data" / "media"}
    engine, first = create_engine(wrong), create_engine(f"sqlite+aiosqlite:///{tmp_path / 'first.db'}")
    try:
        await bot.app.reach_database(engine, settings_for(wrong, **media), Retry(0.0, Stop()))
        said = [(record.levelname, record.getMessage()) for record in caplog.records]
        caplog.clear()
        await bot.app.reach_database(engine, settings_for(wrong, **media), Retry(0.0, Stop()))  # there now: nothing
        again = [record.getMessage() for record in caplog.records]
        fresh = settings_for(f"sqlite+aiosqlite:///{tmp_path / 'first.db'}", media_dir=tmp_path / "empty")
        await bot.app.reach_database(first, fresh, Retry(0.0, Stop()))  # a first start: no kept videos
        first_start = [(record.levelname, record.getMessage()) for record in caplog.records]
    finally:
        await engine.dispose()
        await first.dispose()

    new = tmp_path / "data" / str(tmp_path / "data" / "videobot.db").lstrip("/")
    assert new.is_file() and said == [("WARNING", (
        f"DATABASE_URL={wrong}: there was no database at {new}, so a new, empty one was made there, but MEDIA_DIR "
        "keeps videos of an earlier run (17.mp4): DATABASE_URL most likely names another file than the bot's database "
        f"(a relative path is read from the working directory, {tmp_path / 'data'}; an absolute one takes four "
        "slashes, sqlite+aiosqlite:////var/lib/videobot/videobot.db)"))]
    assert again == []
    assert first_start == [("INFO", f"DATABASE_URL=sqlite+aiosqlite:///{tmp_path / 'first.db'}: a new database at "
                                    f"{tmp_path / 'first.db'} (the bot's first start)")]
