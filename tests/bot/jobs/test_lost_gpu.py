"""A GPU whose CUDA context an error left unusable (a device-side assert): its job fails as any failed job does, the
worker takes no more jobs, and the bot takes the stuck-worker path — /healthz unhealthy, one loud line, a restart.
VideoService on a temporary SQLite file with a fake pipeline on a named CUDA device; nothing touches a GPU.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from bot.gpu.executor import GPUExecutor
from bot.jobs.queue import FairQueue
from bot.jobs.service import VideoService
from bot.web.health import Health
from bot.web.metrics import Metrics
from storage import JobState
from tests.bot.helpers import PROMPTS, WAIT, Events, FakePipeline, held, requester, spec
from tests.clocks import Clock

LOST = ("the GPU worker on cuda:0 is unusable until the bot restarts (RuntimeError: CUDA error: device-side assert "
        "triggered)")


@pytest.fixture
async def on_gpu(database: Any, gate: Any) -> AsyncIterator[tuple[VideoService, FakePipeline, Events]]:
    """A started service whose one worker holds a FakePipeline on cuda:0 (its prompts in `fail` raise torch's words
    for a device-side assert); stopped when the test ends."""
    pipeline, events = FakePipeline(), Events()
    executor = GPUExecutor(["cuda:0"], lambda device: held(pipeline))
    service = VideoService(database.repo(), gate, FairQueue(3, 100), executor, events, clock=Clock())
    await asyncio.wait_for(service.start(), WAIT)
    yield service, pipeline, events
    await asyncio.wait_for(service.stop(), WAIT)


async def test_a_device_side_assert_fails_its_job_and_takes_the_stuck_worker_path(on_gpu, database):
    service, pipeline, events = on_gpu
    reported: list[str] = []
    service.on_stuck = reported.append  # python -m bot's logs it and stops for its supervisor to restart it
    pipeline.fail.add(PROMPTS[0])
    bad = (await service.submit(requester(1), spec(PROMPTS[0], steps=2))).job
    message = await events.wait("failed", bad.id)
    behind = (await service.submit(requester(2), spec(PROMPTS[1], steps=2))).job

    assert message.startswith(f"Sorry, job #{bad.id} failed") and "Nothing was charged" in message
    assert reported == [LOST] and service.stuck == LOST
    assert service.workers == 0 and service.dispatcher.units == 0  # the worker is gone, not busy: no job is handed
    assert (await database.repo().get_job(behind.id)).state == JobState.QUEUED  # to it; kept for after the restart
    assert events.of(behind.id) == []
    assert pipeline.steps_run == {}  # nothing rendered after the assert


async def test_without_the_bot_around_it_the_service_logs_one_critical_line(on_gpu, caplog):
    service, pipeline, events = on_gpu
    pipeline.fail.add(PROMPTS[0])
    bad = (await service.submit(requester(1), spec(PROMPTS[0], steps=2))).job
    await events.wait("failed", bad.id)

    loud = [record for record in caplog.records if record.levelno >= logging.ERROR]
    assert [(r.levelname, r.getMessage()) for r in loud] == [
        ("CRITICAL", f"{LOST}; restart the bot to recover the GPU"),
        ("ERROR", f"job {bad.id} failed")]  # with the traceback, as any failed job


async def test_healthz_names_the_device_and_the_error(on_gpu):
    service, pipeline, events = on_gpu
    service.on_stuck = lambda reason: None
    pipeline.fail.add(PROMPTS[0])
    await events.wait("failed", (await service.submit(requester(1), spec(PROMPTS[0], steps=2))).job.id)
    client = SimpleNamespace(service=service, ws=SimpleNamespace(open=True), latency=0.04, is_ready=lambda: True,
                             is_closed=lambda: False)

    async with TestClient(TestServer(Health(client, Metrics()).app)) as http:  # type: ignore[arg-type]
        response = await http.get("/healthz")
        report = json.loads(await response.text())
    assert response.status == 503 and report["problems"] == [LOST]
    assert report["model"]["workers"] == 0
