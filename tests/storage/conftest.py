"""Storage fixtures: a freshly migrated SQLite file per test and a clock the test moves by hand."""

from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from storage import JobRecord, Repository, create_engine, migrate

START = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
PARAMS = {"steps": 50, "guidance": 9.0, "frames": 16, "width": 256, "height": 256, "fps": 8, "sampler": "ddim"}


class FakeClock:
    """A clock that only moves when the test says so."""

    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> datetime:
        self.now += timedelta(seconds=seconds)
        return self.now


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path / 'videobot.db'}"


@pytest.fixture
async def engine(db_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(db_url)
    await migrate(engine)
    yield engine
    await engine.dispose()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(START)


@pytest.fixture
def repo(engine: AsyncEngine, clock: FakeClock) -> Repository:
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
