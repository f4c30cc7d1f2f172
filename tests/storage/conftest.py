"""Storage fixtures: a freshly migrated database per test on every backend, and a clock the test moves by hand.

Every test that uses a database runs on SQLite and on PostgreSQL (a throwaway cluster started once per session).
Without PostgreSQL those runs are skipped, except under CI, where they fail: CI must prove both backends.
"""

import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from storage import JobRecord, Repository, create_engine, migrate
from tests.ci import missing
from tests.clocks import Clock
from tests.storage.postgres import PostgresCluster, PostgresUnavailable, find_bindir

BACKENDS = ("sqlite", "postgres")

START = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
PARAMS = {"steps": 50, "guidance": 9.0, "frames": 16, "width": 256, "height": 256, "fps": 8, "sampler": "ddim"}


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "backends(*names): run this database test only on these backends")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Run every test that needs a database once per backend (or per backend named by its `backends` mark)."""
    if "backend" in metafunc.fixturenames:
        marker = metafunc.definition.get_closest_marker("backends")
        metafunc.parametrize("backend", marker.args if marker else BACKENDS, indirect=True)


@pytest.fixture
def backend(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture(scope="session")
def postgres_cluster() -> Iterator[PostgresCluster]:
    """One PostgreSQL server for the whole session; skipped without PostgreSQL, except under CI, where it fails."""
    try:
        cluster = PostgresCluster(find_bindir())
        cluster.start()
    except PostgresUnavailable as error:
        missing(f"CI must test the storage layer on PostgreSQL too: {error}",
                f"PostgreSQL is not available, so only SQLite was tested: {error}")
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
async def db_url(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    """A URL of an empty database of the test's backend, as DATABASE_URL would hold it."""
    if backend == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'videobot.db'}"
    cluster: PostgresCluster = request.getfixturevalue("postgres_cluster")
    return await cluster.empty_database()


@pytest.fixture
async def engine(db_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(db_url)
    await migrate(engine)
    yield engine
    await engine.dispose()


@pytest.fixture
def clock() -> Clock:
    return Clock(START)


@pytest.fixture
def repo(engine: AsyncEngine, clock: Clock) -> Repository:
    return Repository(engine, clock=clock)


@pytest.fixture
def job_params() -> dict[str, Any]:
    return dict(PARAMS)


@pytest.fixture
def make_job(repo: Repository, job_params: dict[str, Any]) -> Callable[..., Awaitable[JobRecord]]:
    """Create a job for `user_id` with sensible defaults; keyword overrides go to create_job."""

    async def make(user_id: int = 1, **overrides: Any) -> JobRecord:
        fields = {
            "user_id": user_id,
            "user_name": f"user{user_id}",
            "guild_id": 900,
            "channel_id": 800,
            "prompt": "A panda eating bamboo on a rock.",
            "params": job_params,
        }
        return await repo.create_job(**{**fields, **overrides})

    return make


@pytest.fixture
def bot_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The bot's working directory, with the default database (videobot.db) migrated to the newest revision."""
    monkeypatch.chdir(tmp_path)
    for name in ("DATABASE_URL", "DISCORD_GUILD_ID"):
        monkeypatch.delenv(name, raising=False)
    from storage.__main__ import main

    sqlite3.connect(tmp_path / "videobot.db").close()
    assert main(["migrate"]) == 0
    return tmp_path
