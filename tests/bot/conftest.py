"""The whole bot on a temporary SQLite file and the fake Discord: settings, clocks, pipelines, restartable stacks."""

from __future__ import annotations

import asyncio
import functools
import logging
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlalchemy.engine import make_url

from bot.__main__ import load_gate
from bot.gpu.executor import GPUExecutor
from bot.jobs.queue import FairQueue
from bot.jobs.service import JobEvents, VideoService
from bot.jobs.spec import ASPECTS
from bot.moderation.rules import Moderation
from bot.settings import Settings, load_settings
from bot.ui.client import VideoBot
from storage import JobRecord, ModerationRepository, Repository, ShowcaseRepository, create_engine, migrate
from t2v import GenerationCancelled, GenerationResult, load_pipeline
from tests.fakediscord import FakeDiscord, running_bot

WAIT = 10.0  # seconds before a wait that should never take this long fails the test
PipelineFactory = Callable[[str], Any]


class ManualClock:
    """A monotonic clock that moves only when the test says so."""

    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


class WallClock:
    """The real UTC time plus an offset the test can move forward (to age interaction tokens)."""

    def __init__(self) -> None:
        self.offset = timedelta(0)

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.offset


class ScriptedPipeline:
    """Stands in for t2v.VideoPipeline: records which prompts start, in order; gated prompts run step by step.

    A prompt given a gate waits before each step until the test releases a permit (`gate.release(n)`); while
    waiting it still honours cancellation, like the real pipeline between steps.
    """

    def __init__(self) -> None:
        self.started: list[str] = []
        self.previews = False  # True: call on_preview after every step with small made-up frames, like t2v
        self.steps_done: dict[str, int] = {}
        self._gates: dict[str, threading.Semaphore] = {}
        self._stepped = threading.Condition()

    def gate(self, prompt: str, permits: int = 0) -> threading.Semaphore:
        self._gates[prompt] = threading.Semaphore(permits)
        return self._gates[prompt]

    def generate(self, request: Any, latents: Any = None, on_step: Any = None, should_cancel: Any = None,
                 on_preview: Any = None) -> Any:
        self.started.append(request.prompt)
        gate = self._gates.get(request.prompt)
        for step in range(1, request.steps + 1):
            if gate is not None:
                self._wait(gate, should_cancel, step)
            if on_step is not None:
                on_step(step, request.steps)
            if on_preview is not None and self.previews:  # frame i of step s is grey level 40·i + s
                grey = (np.arange(request.frames) * 40 + step).astype(np.uint8)
                on_preview(step, request.steps, np.broadcast_to(grey[:, None, None, None], (request.frames, 8, 64, 3)))
            with self._stepped:
                self.steps_done[request.prompt] = step
                self._stepped.notify_all()
        frames = np.zeros((request.frames, request.height, request.width, 3), np.uint8)
        return GenerationResult(frames, request.seed or 0, {"total_s": 0.01})

    async def finished_step(self, prompt: str, step: int) -> None:
        """Until the job with this prompt has finished `step` (waited for on a thread, not the event loop)."""

        def wait() -> bool:
            with self._stepped:
                return self._stepped.wait_for(lambda: self.steps_done.get(prompt, 0) >= step, timeout=WAIT)

        assert await asyncio.to_thread(wait), f"{prompt!r} never finished step {step}"

    @staticmethod
    def _wait(gate: threading.Semaphore, should_cancel: Any, step: int) -> None:
        while not gate.acquire(timeout=0.01):
            if should_cancel is not None and should_cancel():
                raise GenerationCancelled(step - 1, step)


@functools.cache
def tiny_pipeline() -> Any:
    """The tiny-random model, loaded once per test session (one stack uses it at a time)."""
    return load_pipeline("tiny-random")


def settings_for(db_url: str, **overrides: Any) -> Settings:
    """Settings as the environment would give them: tiny model on the CPU, 2 frames, 3 steps by default.

    A shutdown stops running jobs at their next step at once (SHUTDOWN_GRACE_S=0), so gated jobs never hold it up.

    Kept videos go to `media/` next to the SQLite file (the test's tmp dir), never into the working directory.
    """
    media = Path(make_url(db_url).database or ".").parent / "media"
    env = {"DISCORD_TOKEN": "fake-bot-token", "T2V_MODEL": "tiny-random", "T2V_ALLOW_TINY": "1",
           "T2V_DEVICE": "cpu", "DATABASE_URL": db_url, "DEFAULT_STEPS": "3", "DEFAULT_FRAMES": "2",
           "MEDIA_DIR": str(media), "SHUTDOWN_GRACE_S": "0", "HEALTH_ENABLED": "0"}  # tests that want it pick a port
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
        self.monotonic = ManualClock()
        self.wall = WallClock()
        self.calendar = WallClock()  # the moderation clock (blocks expire, quota periods turn), moved by the test

    @asynccontextmanager
    async def run(self, pipeline: PipelineFactory | None = None, **settings: Any) -> AsyncIterator[Stack]:
        config = settings_for(self.db_url, **settings)
        engine = create_engine(config.database_url)
        try:
            await migrate(engine)
            repo = Repository(engine)
            gate = await load_gate(repo)
            queue: FairQueue[JobRecord] = FairQueue(config.queue_per_user_cap, config.queue_global_cap)
            executor = GPUExecutor(["cpu"], pipeline or (lambda device: tiny_pipeline()))
            moderation = Moderation.from_settings(ModerationRepository(engine, clock=self.calendar), config,
                                                  clock=self.calendar)

            def service(events: JobEvents) -> VideoService:
                return VideoService(repo, gate, queue, executor, events, max_steps=config.max_steps,
                                    max_frames=config.max_frames, moderation=moderation,
                                    shutdown_grace_s=config.shutdown_grace_s, job_time_limit_s=config.job_time_limit_s)

            bot = VideoBot(config, service, repo=repo, showcase_repo=ShowcaseRepository(engine), gate=gate,
                           monotonic=self.monotonic, now=self.wall)
            async with running_bot(bot, self.fake, timeout=WAIT):
                assert bot.service is not None
                yield Stack(self.fake, bot, bot.service, repo, config, moderation)
        finally:
            await engine.dispose()


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


@pytest.fixture
def stacks(fake_discord: FakeDiscord, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Stacks:
    """A 64×64 aspect for fast CPU videos, and the stack starter."""
    monkeypatch.setitem(ASPECTS, "tiny", (64, 64))
    return Stacks(fake_discord, tmp_path / "bot.db")


@pytest.fixture
def scripted() -> ScriptedPipeline:
    return ScriptedPipeline()
