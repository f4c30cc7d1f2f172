"""Secrets stay secret: the bot token is read from the environment and never reaches a log line (even at DEBUG) or
the database; interaction tokens, which discord.py logs at DEBUG, are masked by bot.redaction."""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from bot.gpu.models import ASPECTS
from bot.redaction import MASK, RedactTokens, install, redact
from tests.bot.conftest import Stacks
from tests.bot.helpers import WAIT, child_env, has_video, video
from tests.fakediscord import FakeDiscord

BOT_TOKEN = "MTE3NzM0NTY3ODkwMTIzNDU2.GsEcRt.a-distinctive-bot-token-9f3c1e7b"  # shaped like one; appears nowhere else
EXPIRED = "MTE3NzM0NTY3ODkwMTIzNDU2.GoLdOn.an-expired-bot-token-5d2a8c04"


class Lines(logging.Handler):
    """Every record as the bot's log would print it (message and traceback), from the DEBUG level up."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))

    def text(self) -> str:
        return "\n".join(self.lines)


@contextmanager
def captured(caplog: pytest.LogCaptureFixture) -> Iterator[tuple[Lines, Lines]]:
    """(raw, redacted): a handler as it is, and one set up like `python -m bot`'s, with the log at DEBUG."""
    caplog.set_level(logging.DEBUG)
    raw, redacted = Lines(), Lines()
    root, sql = logging.getLogger(), logging.getLogger("aiosqlite")
    level = sql.level
    root.addHandler(raw)  # first: the filter rewrites records in place
    root.addHandler(redacted)
    install([redacted])
    try:
        yield raw, redacted
    finally:
        root.removeHandler(raw)
        root.removeHandler(redacted)
        sql.setLevel(level)
        logging.getLogger("sqlalchemy.engine").setLevel(logging.NOTSET)


def database_bytes(directory: Path) -> bytes:
    """The SQLite database with its WAL and shared-memory files, as bytes on disk."""
    return b"".join(path.read_bytes() for path in sorted(directory.glob("bot.db*")))


async def test_the_bot_token_is_never_logged_nor_stored_and_interaction_tokens_are_masked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
):
    monkeypatch.setitem(ASPECTS, "tiny", (64, 64))
    async with FakeDiscord(token=BOT_TOKEN) as fake:
        with fake.patched_client(), captured(caplog) as (raw, redacted):
            async with Stacks(fake, tmp_path / "bot.db").run(discord_token=BOT_TOKEN):
                fake.fail_next("PATCH /webhooks/*/@original", 403, code=50013, message="Missing Permissions")
                done = await (await video(fake, "a lighthouse in the fog at night")).wait_followup(has_video)
                await (await video(fake, "un phare dans le brouillard")).wait_answer()
                await (await fake.slash("queue")).wait_answer()
        interaction_tokens = [record.token for record in fake.interactions.values()]

    assert done.attachments and "Discord delivery failed" in raw.text()  # a traceback was logged, too
    assert BOT_TOKEN not in raw.text()
    assert BOT_TOKEN.encode() not in database_bytes(tmp_path)
    assert all(token in raw.text() for token in interaction_tokens)  # discord.py logs them at DEBUG ...
    assert not any(token in redacted.text() for token in interaction_tokens)  # ... and the filter masks them
    assert f"/webhooks/{fake.app_id}/{MASK}/messages/@original" in redacted.text()


def test_redact_masks_interaction_tokens_in_urls_and_events_and_any_given_secret():
    line = ("PATCH http://d/api/v10/webhooks/123/itk-9-aBc_D/messages/@original with None has returned 200; "
            "POST /api/v10/interactions/456/itk-10-xY/callback; {'t': 'INTERACTION_CREATE', 'd': {'token': 'itk-11'}} "
            '{"token": "itk-12"} secret s3cr3t')

    assert redact(line, ["s3cr3t"]) == (
        f"PATCH http://d/api/v10/webhooks/123/{MASK}/messages/@original with None has returned 200; "
        f"POST /api/v10/interactions/456/{MASK}/callback; {{'t': 'INTERACTION_CREATE', 'd': {{'token': '{MASK}'}}}} "
        f'{{"token": "{MASK}"}} secret {MASK}')


def test_redact_masks_url_passwords_and_leaves_short_secrets_and_plain_addresses_alone():
    line = "reached postgresql://videobot:pg-pw-4711@db:5432/videobot and http://127.0.0.1:8080/api/v10; pw"

    assert RedactTokens(["pw"]).secrets == ()  # too short to mask wherever it occurs
    assert redact(line) == (f"reached postgresql://videobot:{MASK}@db:5432/videobot and "
                            "http://127.0.0.1:8080/api/v10; pw")


def test_the_filter_rewrites_arguments_and_tracebacks_and_keeps_every_record():
    redactor = RedactTokens(["s3cr3t"])
    try:
        raise RuntimeError("refused: /webhooks/1/itk-secret-token/messages/2")
    except RuntimeError:
        record = logging.LogRecord("discord.webhook", logging.ERROR, __file__, 1, "token %s then %s",
                                   ("s3cr3t", "/interactions/5/itk-other/callback"), sys.exc_info())

    assert redactor.filter(record) is True
    assert record.getMessage() == f"token {MASK} then /interactions/5/{MASK}/callback"
    assert "itk-secret-token" not in record.exc_text and f"/webhooks/1/{MASK}/messages/2" in record.exc_text


async def test_python_m_bot_with_an_expired_token_exits_without_printing_it(fake_discord: FakeDiscord,
                                                                            tmp_path: Path):
    env = child_env(DISCORD_TOKEN=EXPIRED, DISCORD_API_BASE=fake_discord.api_url,
                    DISCORD_GATEWAY_URL=fake_discord.gateway_url, LOG_LEVEL="DEBUG", T2V_MODEL="tiny-random",
                    T2V_ALLOW_TINY="1", T2V_DEVICE="cpu", HEALTH_ENABLED="0",
                    DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}")
    child = await asyncio.create_subprocess_exec(sys.executable, "-m", "bot", cwd=tmp_path, env=env,
                                                 stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
                                                 stderr=asyncio.subprocess.PIPE)
    stdout, stderr = await asyncio.wait_for(child.communicate(), 12 * WAIT)
    output = (stdout + stderr).decode(errors="replace")

    assert child.returncode != 0 and "DEBUG" in output  # it ran at DEBUG and gave up on the refused token
    assert [r.status for r in fake_discord.requests_to("GET /users/@me")] == [401]
    assert EXPIRED not in output and EXPIRED.encode() not in database_bytes(tmp_path)


async def test_python_m_bot_at_debug_serves_a_video_and_its_log_holds_no_token_nor_the_voice_warnings(tmp_path: Path):
    async with FakeDiscord(token=BOT_TOKEN) as fake:
        env = child_env(DISCORD_TOKEN=BOT_TOKEN, DISCORD_API_BASE=fake.api_url, DISCORD_GATEWAY_URL=fake.gateway_url,
                        DISCORD_GUILD_ID=str(fake.guild.id), LOG_LEVEL="DEBUG", T2V_MODEL="tiny-random",
                        T2V_ALLOW_TINY="1", T2V_DEVICE="cpu", HEALTH_ENABLED="0", MEDIA_DIR=str(tmp_path / "media"),
                        DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}")
        child = await asyncio.create_subprocess_exec(sys.executable, "-m", "bot", cwd=tmp_path, env=env,
                                                     stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
                                                     stderr=asyncio.subprocess.STDOUT)
        lines: list[str] = []

        async def read() -> None:
            assert child.stdout is not None
            async for line in child.stdout:
                lines.append(line.decode(errors="replace").rstrip())
                fake.notify()

        reader = asyncio.create_task(read())
        try:
            await fake.wait_for(lambda: any("connected as" in line for line in lines) or reader.done(),
                                timeout=12 * WAIT, what="the child to connect")
            handle = await fake.slash("video", {"prompt": "a lighthouse in the fog at night", "steps": 2, "frames": 2})
            result = await handle.wait_followup(has_video, timeout=12 * WAIT)
            child.terminate()
            await asyncio.wait_for(reader, 6 * WAIT)
        finally:
            if child.returncode is None:
                child.kill()
            await child.wait()
        interaction_tokens = [record.token for record in fake.interactions.values()]
    output = "\n".join(lines)

    # 255 is asyncio's report for a child something else reaped (a stale pid in subprocess's cleanup list, reused): a
    # suite-wide race, not this child's exit, which its log then states.
    assert result.attachments and (child.returncode == 0 or (child.returncode == 255 and
                                                            "stopped; exit status 0" in output))
    assert " DEBUG " in output and "INTERACTION_CREATE" in output  # discord.py logged the events with their tokens
    assert BOT_TOKEN not in output and not any(token in output for token in interaction_tokens)
    assert "voice will NOT be supported" not in output


def test_a_secret_that_holds_another_is_masked_whole():
    written, decoded = "hunter2%25", "hunter2%"  # DATABASE_URL's password as written, and as the driver sends it

    assert redact(f"tried {written}", RedactTokens([decoded, written]).secrets) == f"tried {MASK}"


def test_python_m_bot_masks_a_url_encoded_database_password_both_as_the_driver_uses_it_and_as_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    import signal

    import bot.__main__ as entry
    from bot import startup
    from bot.settings import Settings

    written, decoded = "pg%40pw%23w0rd", "pg@pw#w0rd"
    for name in Settings.model_fields:
        monkeypatch.delenv(name.upper(), raising=False)
    for name, value in {"DISCORD_TOKEN": BOT_TOKEN, "T2V_MODEL": "tiny-random", "T2V_ALLOW_TINY": "1",
                        "T2V_DEVICE": "cpu", "DATABASE_URL": f"postgresql://videobot:{written}@db/videobot"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(startup, "check_environment", lambda settings: None)

    def run(settings: Settings) -> int:  # what asyncpg's and SQLAlchemy's errors could say, in the bot's log
        logging.getLogger("bot.app").error("password authentication failed: sent %s, DATABASE_URL has %s",
                                           decoded, written)
        return 0

    monkeypatch.setattr(entry, "run", run)
    root, lines = logging.getLogger(), Lines()
    signals = {number: signal.getsignal(number) for number in (signal.SIGTERM, signal.SIGINT)}
    levels = {name: logging.getLogger(name).level for name in (*entry.QUIET_LOGGERS, "aiosqlite", "sqlalchemy.engine")}
    root.addHandler(lines)  # the root has handlers, so python -m bot's basicConfig leaves it as it is
    try:
        assert entry.main([]) == 0
    finally:
        root.removeHandler(lines)
        for handler in [lines, *root.handlers]:
            for added in [f for f in handler.filters if isinstance(f, RedactTokens)]:
                handler.removeFilter(added)
        for number, handler in signals.items():
            signal.signal(number, handler)
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)

    assert f"password authentication failed: sent {MASK}, DATABASE_URL has {MASK}" in lines.text()
    assert decoded not in lines.text() and written not in lines.text()
