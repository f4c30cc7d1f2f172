"""DATABASE_URL read without SQLAlchemy (what is wrong, what would be right, the password never shown), and the first
connection's check: a server out of reach is worth another try, a database that says no is not."""

import socket
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from storage import (
    DatabaseInUse,
    DatabaseRefused,
    DatabaseUnreachable,
    InvalidDatabaseURL,
    check_connection,
    create_engine,
    held_alone,
    urls,
)
from storage.urls import parse

ROOT = Path(__file__).resolve().parents[2]
# A server restart or a network cut, for the sessions holding the bot's lock: each ended, and waited for (up to 5 s,
# PostgreSQL 14+) — pg_terminate_backend(pid) alone returns once signalled, while the lock may still be held.
END_LOCK_SESSIONS = "SELECT pg_terminate_backend(pid, 5000) FROM pg_locks WHERE locktype = 'advisory'"


@pytest.mark.parametrize(("url", "kind", "file", "address"), [
    ("sqlite+aiosqlite:///videobot.db", "sqlite", Path("videobot.db"), None),
    ("sqlite:////data/videobot.db", "sqlite", Path("/data/videobot.db"), None),
    ("sqlite+aiosqlite://", "sqlite", None, None),  # in memory
    ("postgresql://videobot:pw@postgres/videobot", "postgresql", None, "postgres:5432"),
    ("postgresql+asyncpg://videobot@10.0.0.5:6432/videobot", "postgresql", None, "10.0.0.5:6432"),
])
def test_the_urls_the_bot_can_use_are_read_like_sqlalchemy_reads_them(url, kind, file, address):
    read = parse(url)
    assert (read.backend, read.sqlite_file) == (kind, file)
    assert address is None or read.address == address


@pytest.mark.parametrize("url", [
    "postgresql://u:p%40s@h/d",
    "postgresql://vid%40eo:p%40ss%23w%2Fo%3Frd%3A%25@db:5432/video%20bot",  # every mark ENCODING names
    "postgresql://videobot:50%off@db/videobot",  # not an escape: kept as it is
    "postgresql://videobot:hunter2@db/videobot",
    "postgresql://videobot:@db/videobot",
    "postgresql+asyncpg://videobot@[::1]:6432/videobot",
    "sqlite+aiosqlite:///data%20dir/videobot.db",
])
def test_the_user_password_and_database_are_percent_decoded_as_sqlalchemy_and_the_driver_read_them(url):
    read, theirs = parse(url), make_url(url)
    assert (read.username, read.password, read.host, read.port, read.database) == (
        theirs.username, theirs.password, theirs.host, theirs.port, theirs.database)


def test_a_url_encoded_password_is_the_password_the_driver_sends():
    read = parse("postgresql://u:p%40s@h/d")
    assert (read.username, read.password, read.database) == ("u", "p@s", "d")
    assert parse("sqlite+aiosqlite:///data%20dir/videobot.db").sqlite_file == Path("data dir/videobot.db")


@pytest.mark.parametrize(("url", "says"), [
    ("nonsense://x", "'nonsense' is not a database the bot can use: it stores its data in SQLite or PostgreSQL"),
    ("videobot.db", "not a database URL; use e.g. sqlite+aiosqlite:///videobot.db"),
    ("postgres://u:pw@db/videobot", "write postgresql://, not postgres://"),
    ("postgresql+psycopg2://u:pw@db/videobot", "not 'psycopg2'; write postgresql+asyncpg:// or plain postgresql://"),
    ("sqlite+pysqlite:///videobot.db", "not 'pysqlite'; write sqlite+aiosqlite:// or plain sqlite://"),
    ("postgresql://u:pw@db:99999/videobot", "the port '99999' is not a number from 1 to 65535"),
    ("sqlite://localhost/videobot.db", "a SQLite URL names a file after three slashes, with no host"),
    ("postgresql://videobot:p@ss/w@db/videobot", "the user and password part holds a '@' or '#' of its own: "
                                                "URL-encode the password (@ as %40,"),
    ("postgresql://videobot:pass#w@db/videobot", "holds a '@' or '#' of its own"),
])
def test_a_url_it_cannot_use_says_what_is_wrong_and_what_would_be_right(url, says):
    with pytest.raises(InvalidDatabaseURL) as caught:
        parse(url)
    assert says in str(caught.value)
    assert not {"p@ss", "pass#w", "pw"} & set(str(caught.value).replace("'", " ").split())  # never a password


@pytest.mark.parametrize(("url", "shown"), [
    ("postgresql://videobot:hunter2@db/videobot", "postgresql://videobot:***@db/videobot"),
    ("postgresql://videobot:p@ss:w/rd@db:5432/videobot", "postgresql://videobot:***@db:5432/videobot"),  # unescaped
    ("videobot:hunter2@db/videobot", "videobot:***@db/videobot"),  # no scheme: still masked
    ("postgresql://db/videobot?user=v&password=hunter2", "postgresql://db/videobot?user=v&password=***"),
    ("sqlite+aiosqlite:///data/videobot.db", "sqlite+aiosqlite:///data/videobot.db"),
])
def test_shown_urls_never_carry_the_password_even_when_they_cannot_be_read(url, shown):
    assert urls.shown(url) == shown


def test_the_password_is_found_for_the_log_filter_as_the_driver_uses_it_and_as_the_url_writes_it():
    assert urls.passwords("postgresql://videobot:hunter2@db/videobot") == ("hunter2",)
    assert urls.passwords(" postgresql://videobot:p%40ss%23w0rd@db/videobot\n") == ("p@ss#w0rd", "p%40ss%23w0rd")
    assert urls.passwords("postgresql://videobot@db/videobot") == urls.passwords("postgresql://videobot:@db/x") == ()
    assert urls.passwords("sqlite+aiosqlite:///videobot.db") == urls.passwords("nonsense") == ()
    assert urls.passwords("postgresql://videobot:p@ss/w@db/videobot") == ()  # refused: masked by its pattern only


def test_reading_a_url_imports_no_sqlalchemy():
    code = ("import sys\nfrom storage import urls, InvalidDatabaseURL\nurls.parse('postgresql://u:p@h/d')\n"
            "heavy = sorted(m for m in ('sqlalchemy', 'alembic', 'asyncpg', 'aiosqlite') if m in sys.modules)\n"
            "assert not heavy, heavy\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert result.returncode == 0, result.stderr


@pytest.mark.backends("sqlite")
async def test_a_reachable_database_passes_the_check(engine):
    await check_connection(engine)


async def test_a_server_nobody_listens_for_is_unreachable_and_worth_another_try():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    engine = create_engine(f"postgresql://videobot:pw@127.0.0.1:{port}/videobot")
    try:
        with pytest.raises(DatabaseUnreachable, match="connection refused"):
            await check_connection(engine)
    finally:
        await engine.dispose()


async def test_a_server_that_never_answers_is_unreachable_after_the_timeout():
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)  # the kernel accepts; nobody ever answers
        engine = create_engine(f"postgresql://videobot:pw@127.0.0.1:{silent.getsockname()[1]}/videobot")
        try:
            with pytest.raises(DatabaseUnreachable, match=r"no answer within 0\.1 s"):
                await check_connection(engine, timeout_s=0.1)
        finally:
            await engine.dispose()


@pytest.mark.backends("postgres")
async def test_a_database_that_does_not_exist_is_refused_not_retried(db_url):
    engine = create_engine(db_url.rsplit("/", 1)[0] + "/no_such_database")
    try:
        with pytest.raises(DatabaseRefused, match='database "no_such_database" does not exist'):
            await check_connection(engine)
    finally:
        await engine.dispose()


async def test_one_process_at_a_time_holds_a_database_and_lets_go_when_done(engine, db_url):
    other = create_engine(db_url)  # another bot's engine on the same database
    try:
        async with held_alone(engine):
            with pytest.raises(DatabaseInUse, match=r"^another process"):
                async with held_alone(other):
                    pass
        async with held_alone(other):  # free once the first let go
            pass
    finally:
        await other.dispose()


@pytest.mark.backends("postgres")
async def test_the_postgresql_lock_leaves_no_transaction_open_and_a_lost_session_ends_it_quietly(engine, db_url):
    from sqlalchemy import text

    watcher = create_engine(db_url)
    try:
        async with held_alone(engine), watcher.connect() as connection:
            states = (await connection.execute(text(
                "SELECT state FROM pg_stat_activity WHERE pid IN (SELECT pid FROM pg_locks WHERE locktype = "
                "'advisory')"))).scalars().all()
            assert states == ["idle"]  # not "idle in transaction": VACUUM is not held back for the bot's life
            await connection.execute(text(END_LOCK_SESSIONS))
        async with held_alone(watcher):  # the lock went with its session, and leaving did not raise
            pass
    finally:
        await watcher.dispose()


async def test_a_hold_checked_keeps_its_lock_a_lost_session_takes_it_again_and_another_bot_wins_it(engine, db_url):
    from sqlalchemy import text

    other = create_engine(db_url)
    terminate = text(END_LOCK_SESSIONS)
    try:
        async with held_alone(engine) as hold:
            assert await hold.check() is True
            if engine.dialect.name != "postgresql":
                return  # a file lock is the process's until it ends: nothing can take it away
            async with other.connect() as connection:
                await connection.execute(terminate)  # a server restart, a network cut: the session and its lock go
            assert await hold.check() is False  # taken again on a new session
            with pytest.raises(DatabaseInUse):
                async with held_alone(other):
                    pass
            async with other.connect() as connection:
                await connection.execute(terminate)
            async with held_alone(other):  # another bot took it in the gap
                with pytest.raises(DatabaseInUse, match=r"^another process"):
                    await hold.check()
    finally:
        await other.dispose()


@pytest.mark.backends("postgres")
async def test_a_hold_whose_own_session_the_server_still_keeps_ends_it_and_takes_the_lock_again(engine, db_url):
    from sqlalchemy.exc import DBAPIError

    class CutOff:
        """The client side of a session the network cut: every statement fails, the server's side lives on."""

        async def execute(self, *args: object, **kwargs: object) -> None:
            raise DBAPIError("SELECT 1", None, ConnectionResetError("connection reset by peer"))

        async def close(self) -> None:
            pass

    other = create_engine(db_url)
    try:
        async with held_alone(engine) as hold:
            kept, hold._connection = hold._connection, CutOff()  # the old session still holds the lock server-side
            assert await hold.check() is False  # its own old session ended, the lock taken on a new one
            with pytest.raises(DatabaseInUse):
                async with held_alone(other):
                    pass
            assert await hold.check() is True
            await kept.close()
    finally:
        await other.dispose()


async def test_a_hold_that_could_not_take_its_lock_again_keeps_trying_at_each_check(engine, db_url, monkeypatch):
    from sqlalchemy import text

    async with held_alone(engine) as hold:
        if engine.dialect.name != "postgresql":
            return
        restart = create_engine(db_url)
        async with restart.connect() as connection:  # a server restart ends every session
            await connection.execute(text(END_LOCK_SESSIONS))
        await restart.dispose()
        down = OSError("connection refused")

        async def unreachable(*args: object) -> None:
            raise down

        monkeypatch.setattr("storage.db._locked_connection", unreachable)
        for _ in range(2):  # the server is still down: each check says so, none claims the hold is fine
            with pytest.raises(OSError):
                await hold.check()
        monkeypatch.undo()
        assert await hold.check() is False  # it is back: the lock is taken again
