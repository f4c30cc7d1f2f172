"""Fixtures of the bot tests: the service on a temporary SQLite file, and the whole bot on the fake Discord.

`make_service` starts VideoServices on a fake pipeline (bot.jobs without Discord); `stacks` starts whole bots —
settings, database, service, discord.py client — on one fake Discord, restartable on one database. The fakes
themselves are in helpers.py, the clocks in tests/clocks.py.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import make_url

from bot.app import video_service
from bot.errors import Refused
from bot.gpu.executor import GPUExecutor
from bot.gpu.models import ASPECTS
from bot.jobs.events import JobEvents, Submitted
from bot.jobs.queue import FairQueue
from bot.jobs.service import VideoService
from bot.moderation.denylist_edits import load_gates
from bot.moderation.policy import PolicyGate
from bot.moderation.rules import Moderation
from bot.settings import Settings, load_settings
from bot.ui.client import VideoBot
from storage import JobRecord, JobState, ModerationRepository, Repository, ShowcaseRepository, create_engine, migrate
from t2v import load_pipeline
from tests.bot.helpers import PROMPTS, WAIT, Events, FakePipeline, ScriptedPipeline, held, requester, spec
from tests.bot.voice import bot_texts, problems
from tests.clocks import MIDWEEK, Clock, Monotonic, WallClock
from tests.fakediscord import BOT_TOKEN, FakeDiscord, running_bot

PipelineFactory = Callable[[str], Any]  # device -> a pipeline (or a bot.gpu.models.Models)


# --- the service alone --------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def gate() -> PolicyGate:
    return PolicyGate()  # the real English detectors and the shipped denylist


class Database:
    """One migrated SQLite file; repositories on it, each on an engine with its own options."""

    def __init__(self, path: Path) -> None:
        self.url = f"sqlite+aiosqlite:///{path}"
        self._engines: list[Any] = []

    def engine(self, busy_timeout_ms: int = 5000) -> Any:
        self._engines.append(create_engine(self.url, busy_timeout_ms=busy_timeout_ms))
        return self._engines[-1]

    def repo(self, busy_timeout_ms: int = 5000, **options: Any) -> Repository:
        return Repository(self.engine(busy_timeout_ms), **options)

    def moderation(self) -> ModerationRepository:
        return ModerationRepository(self.engine())

    async def close(self) -> None:
        for engine in self._engines:
            await engine.dispose()


@pytest.fixture
async def database(tmp_path: Path) -> AsyncIterator[Database]:
    db = Database(tmp_path / "videobot.db")
    await migrate(db.url)
    yield db
    await db.close()


@dataclass
class Harness:
    """A started service, its pipeline, the events it emitted and its database."""

    service: VideoService
    pipeline: Any
    events: Events
    repo: Repository

    async def submit(self, user_id: int = 1, prompt: str = PROMPTS[0], **fields: Any) -> Submitted:
        return await self.service.submit(requester(user_id), spec(prompt, **fields))

    async def job_id(self, user_id: int, prompt: str, **fields: Any) -> int:
        return (await self.submit(user_id, prompt, **fields)).job.id

    async def refused(self, user_id: int = 1, prompt: str = PROMPTS[0], **fields: Any) -> Refused:
        with pytest.raises(Refused) as caught:
            await self.submit(user_id, prompt, **fields)
        return caught.value

    async def state(self, job_id: int) -> JobState:
        job = await self.repo.get_job(job_id)
        assert job is not None
        return job.state


@pytest.fixture
async def make_service(database: Database, gate: PolicyGate) -> AsyncIterator[Callable[..., Awaitable[Harness]]]:
    """Start services on the test's database (a FakePipeline unless given; the clock stands at NOW unless given);
    each is released and stopped when the test ends."""
    made: list[Harness] = []

    async def make(pipeline: Any = None, *, factory: PipelineFactory | None = None, events: Events | None = None,
                   repo: Repository | None = None, per_user_cap: int = 3, global_cap: int = 100,
                   clock: Callable[..., Any] | None = None, **kwargs: Any) -> Harness:
        pipeline = FakePipeline() if pipeline is None and factory is None else pipeline
        clock, events = clock or Clock(), events or Events()
        repo = repo or database.repo(clock=clock)
        executor = GPUExecutor(["cpu"], lambda device: held(factory(device) if factory else pipeline))
        service = VideoService(repo, kwargs.pop("gate", gate), FairQueue(per_user_cap, global_cap), executor,
                               events, clock=clock, **kwargs)
        await asyncio.wait_for(service.start(), WAIT)
        made.append(Harness(service, pipeline, events, repo))
        return made[-1]

    yield make
    for harness in made:
        if isinstance(harness.pipeline, FakePipeline):
            harness.pipeline.hold.set()
        await asyncio.wait_for(harness.service.stop(), WAIT)


# --- the whole bot on the fake Discord ----------------------------------------------------------------------------


@functools.cache
def tiny_pipeline() -> Any:
    """The tiny-random model, loaded once per test session (one stack uses it at a time)."""
    return load_pipeline("tiny-random")


def settings_for(db_url: str, **overrides: Any) -> Settings:
    """Settings as the environment would give them: tiny model on the CPU, 2 frames, 3 steps by default.

    A shutdown stops running jobs at their next step at once (SHUTDOWN_GRACE_S=0), so gated jobs never hold it up;
    no row is pruned (HISTORY_KEEP_DAYS=0) unless a test asks.
    Kept videos go to `media/` next to the SQLite file (the test's tmp dir), never into the working directory.
    """
    media = Path(make_url(db_url).database or ".").parent / "media"
    env = {"DISCORD_TOKEN": BOT_TOKEN, "T2V_MODEL": "tiny-random", "T2V_ALLOW_TINY": "1",
           "T2V_DEVICE": "cpu", "DATABASE_URL": db_url, "DEFAULT_STEPS": "3", "DEFAULT_FRAMES": "2",
           "MEDIA_DIR": str(media), "SHUTDOWN_GRACE_S": "0", "HEALTH_ENABLED": "0",  # tests that want it pick a port
           "HISTORY_KEEP_DAYS": "0"}  # the calendar's rows are of MIDWEEK, which ages: tests that prune say so
    env.update({name.upper(): str(value) for name, value in overrides.items()})
    return load_settings(env, env_file=None)


class EventLog:
    """Wraps the bot's delivery so tests can await each JobEvents call after it has finished."""

    def __init__(self, events: JobEvents) -> None:
        self.calls: asyncio.Queue[tuple[str, tuple[Any, ...]]] = asyncio.Queue()
        for name in ("job_started", "job_progress", "job_done", "job_failed", "job_cancelled"):
            setattr(events, name, self._recorded(name, getattr(events, name)))

    def _recorded(self, name: str, method: Callable[..., Any]) -> Callable[..., Any]:
        async def call(*args: Any) -> None:
            await method(*args)
            self.calls.put_nowait((name, args))

        return call

    async def next(self) -> tuple[str, tuple[Any, ...]]:
        return await asyncio.wait_for(self.calls.get(), WAIT)

    async def until(self, name: str) -> tuple[Any, ...]:
        """The arguments of the next `name` call, once it has finished (the calls before it are passed over)."""
        while True:
            called, args = await self.next()
            if called == name:
                return args


@dataclass
class Stack:
    """One running bot with its service and database, on the shared fake Discord."""

    fake: FakeDiscord
    bot: VideoBot
    service: VideoService
    repo: Repository
    settings: Settings
    moderation: Moderation

    async def job(self, job_id: int) -> JobRecord:
        record = await self.repo.get_job(job_id)
        assert record is not None, f"no job #{job_id} in the database"
        return record

    async def jobs(self) -> list[JobRecord]:
        return await self.repo.list_jobs()

    def events(self) -> EventLog:
        return EventLog(self.bot.delivery)


class Stacks:
    """Starts bots on one database and one fake Discord; a test may stop one and start another (a restart)."""

    def __init__(self, fake: FakeDiscord, db_path: Path) -> None:
        self.fake = fake
        self.db_url = f"sqlite+aiosqlite:///{db_path}"
        self.monotonic = Monotonic()
        self.wall = WallClock()  # the delivery's: a job's age (its row stamped by the service's real clock)
        # The moderation clock (blocks expire, quota periods turn), moved by the test. It stands at MIDWEEK, so the
        # videos of a test fall in one hour, day and week whenever it runs (at 23:59 UTC on a Sunday too). The jobs'
        # rows are stamped later, by the service's real clock (video_service takes no clock): every video a test
        # makes counts in the calendar's period, a quota reset forgives none, and moving the calendar on ends no
        # period for them. Its audit rows would age past a HISTORY_KEEP_DAYS: the tests' bots keep every row.
        self.calendar = Clock(MIDWEEK)

    @asynccontextmanager
    async def run(self, pipeline: PipelineFactory | None = None, **settings: Any) -> AsyncIterator[Stack]:
        config = settings_for(self.db_url, **settings)
        engine = create_engine(config.database_url)
        try:
            await migrate(engine)
            repo, moderation_repo = Repository(engine), ModerationRepository(engine, clock=self.calendar)
            gate = await load_gates(repo, moderation_repo)
            queue: FairQueue = FairQueue(config.queue_per_user_cap, config.queue_global_cap)
            executor = GPUExecutor(["cpu"], lambda device: held((pipeline or (lambda _: tiny_pipeline()))(device)))
            moderation = Moderation.from_settings(moderation_repo, config, clock=self.calendar)

            batch_max = config.batch_max if "batch_max" in settings else 1  # batches only where a test asks

            def service(events: JobEvents) -> VideoService:
                return video_service(config, repo, gate, queue, executor, events, moderation, batch_max=batch_max)

            bot = VideoBot(config, service, repo=repo, showcase_repo=ShowcaseRepository(engine),
                           monotonic=self.monotonic, now=self.wall)
            async with running_bot(bot, self.fake, timeout=WAIT):
                assert bot.service is not None
                yield Stack(self.fake, bot, bot.service, repo, config, moderation)
        finally:
            await engine.dispose()


@pytest.fixture
def stacks(fake_discord: FakeDiscord, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Stacks]:
    """A 64×64 aspect for fast CPU videos, and the stack starter; at the end every word the bot sent in the test is
    walked through docs/voice.md's rules (tests/bot/voice.py)."""
    monkeypatch.setitem(ASPECTS, "tiny", (64, 64))
    yield Stacks(fake_discord, tmp_path / "bot.db")
    broken = [f"{where}: {problem} in {text!r}" for where, text, operator in bot_texts(fake_discord)
              for problem in problems(text, operator=operator)]
    report = os.environ.get("VOICE_REPORT")
    if report:  # collect instead of failing (a survey of the whole suite)
        with open(report, "a", encoding="utf-8") as out:
            out.writelines(line + "\n" for line in broken)
        return
    assert not broken, "words against docs/voice.md:\n" + "\n".join(broken)


@pytest.fixture
def scripted() -> ScriptedPipeline:
    return ScriptedPipeline()


# --- errors the bot logged ------------------------------------------------------------------------------------------


class LoggedErrors(logging.Handler):
    """ERROR records of the project's loggers; a test fails on any it did not `expect`."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []
        self.expected: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.name.split(".")[0] in ("bot", "storage", "t2v"):
            self.records.append(record)

    def expect(self, text: str) -> None:
        self.expected.append(text)

    def unexpected(self) -> list[str]:
        messages = [logging.Formatter().format(r) for r in self.records]
        return [m for m in messages if not any(text in m for text in self.expected)]


@pytest.fixture
def logged_errors() -> Any:
    """Fail the test if the bot logged an error it did not announce with `logged_errors.expect(text)`."""
    handler = LoggedErrors()
    logging.getLogger().addHandler(handler)
    yield handler
    logging.getLogger().removeHandler(handler)
    assert not handler.unexpected(), "errors were logged:\n" + "\n".join(handler.unexpected())
