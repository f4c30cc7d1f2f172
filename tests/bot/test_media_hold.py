"""One MEDIA_DIR, one bot: a second bot started on the media folder of a running one, with a database of its own (a
second systemd unit or a test instance in the same working directory, MEDIA_DIR left at its default), stops at
start with one line, before it moves, deletes or shows any of the first one's videos."""

from __future__ import annotations

import asyncio
import builtins
import errno
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import bot.app
import storage.locks
from bot import startup
from bot.errors import SettingsError
from t2v.errors import current_user
from tests.bot.conftest import settings_for
from tests.bot.helpers import START_S, WAIT, child_env, tiny_mp4
from tests.fakediscord import BOT_TOKEN, FakeDiscord

pytestmark = pytest.mark.usefixtures("logged_errors")


def second_bot(tmp_path: Path, media: Path) -> subprocess.CompletedProcess[str]:
    """`python -m bot` with a database of its own and `media` as its MEDIA_DIR, to its end."""
    env = child_env(DISCORD_TOKEN=BOT_TOKEN, T2V_MODEL="tiny-random", T2V_ALLOW_TINY="1", T2V_DEVICE="cpu",
                    DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path / 'staging.db'}", MEDIA_DIR=str(media),
                    HEALTH_ENABLED="0", STARTUP_RETRY_S="0", DISCORD_LOGIN_TIMEOUT_S="0.2",
                    DISCORD_API_BASE="http://127.0.0.1:9/api/v10")  # never reached: it stops before Discord
    return subprocess.run([sys.executable, "-m", "bot"], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=START_S)


async def test_a_second_bot_on_the_media_dir_of_a_running_one_stops_with_one_line_and_moves_none_of_its_videos(
    fake_discord: FakeDiscord, tmp_path: Path
) -> None:
    media = tmp_path / "media"
    media.mkdir()
    settings = settings_for(f"sqlite+aiosqlite:///{tmp_path / 'videobot.db'}", media_dir=media)
    running = asyncio.create_task(bot.app.run(settings))  # the first bot
    try:
        await fake_discord.wait_for(lambda: fake_discord.gateway.connected, timeout=WAIT, what="the first bot")
        (media / "1.mp4").write_bytes(tiny_mp4(32))  # its job #1's kept video, which the gallery shows
        result = await asyncio.to_thread(second_bot, tmp_path, media)
    finally:
        os.kill(os.getpid(), signal.SIGTERM)
        assert await asyncio.wait_for(running, WAIT) == 0

    assert result.returncode == 2, result.stderr
    errors = [line for line in result.stderr.splitlines() if " ERROR " in line or line.startswith("error: ")]
    assert [line.split(" ERROR   bot: ", 1)[1] for line in errors] == [
        f"MEDIA_DIR={media}: another bot (pid {os.getpid()}) keeps its videos there ({media / '.videobot.lock'} is "
        "locked). Two bots on one MEDIA_DIR, each with its own database, would move aside and delete each other's "
        "videos and show them as their own jobs': stop the other one, or give this one a MEDIA_DIR of its own"]
    assert sorted(path.name for path in media.iterdir()) == [".videobot.lock", "1.mp4"]  # nothing set aside


def test_the_media_dir_is_free_again_once_its_bot_has_stopped(tmp_path: Path) -> None:
    media = tmp_path / "videos" / "media"
    umask = os.umask(0o077)  # systemd's unit's
    try:
        with bot.app.media_held_alone(media), pytest.raises(SettingsError), bot.app.media_held_alone(media):
            pass
    finally:
        os.umask(umask)
    with bot.app.media_held_alone(media):  # a restart
        assert (media / ".videobot.lock").read_text() == f"{os.getpid()}\n"
    assert oct((tmp_path / "videos").stat().st_mode & 0o777) == oct(0o755)  # made as bot.media makes its folders
    assert oct(media.stat().st_mode & 0o777) == oct(0o755)


def test_a_media_lock_file_a_bot_run_as_another_user_left_is_one_line_at_start_not_a_traceback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    media = tmp_path / "media"
    media.mkdir()
    lock = media / ".videobot.lock"  # left by `sudo python -m bot` in the service's folder: root's, mode 644
    lock.write_text("1\n")
    lock.chmod(0o644)
    real_open = builtins.open

    def theirs(file: Any) -> bool:
        return not isinstance(file, int) and Path(os.fsdecode(file)).absolute() == lock

    def open_(file: Any, *args: Any, **kwargs: Any) -> Any:  # the bot's user may read it, not write it
        if theirs(file) and args[0] != "r":
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), os.fsdecode(file))
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", open_)
    with pytest.raises(SettingsError) as raised:
        startup.check_environment(settings_for(f"sqlite+aiosqlite:///{tmp_path / 'videobot.db'}", media_dir=media))

    assert raised.value.lines == [
        f"MEDIA_DIR={media}: permission denied: user {current_user()} may not write {lock} (uid {os.getuid()}, mode "
        "644), the lock a bot run as another user left; it holds no data: remove it, or give it to that user (chown)"]


def test_a_media_dir_on_a_file_system_without_locks_is_a_warning_and_the_bot_runs_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def no_locks(file: Any, operation: int) -> None:  # an NFS mount without its lock service
        raise OSError(errno.ENOLCK, os.strerror(errno.ENOLCK))

    monkeypatch.setattr(storage.locks.fcntl, "flock", no_locks)
    media = tmp_path / "media"
    with bot.app.media_held_alone(media):
        pass

    assert [(record.levelname, record.getMessage()) for record in caplog.records] == [("WARNING", (
        f"MEDIA_DIR={media}: cannot lock {media / '.videobot.lock'} ({os.strerror(errno.ENOLCK)}), so a second bot "
        "started on this folder would not be stopped; the bot runs on"))]
