"""Compiles off the rendering threads: jobs of any shape are served at once, compiles happen behind them.

The end-to-end test runs the bot's own service, executor and worker code on tiny-random with t2v's fast path and a
real torch.compile (the "eager" backend: dynamo traces, no code generation), with the compile thread held by the
test, so "a job does not wait for its shape's compile" is shown, not timed.
"""

from __future__ import annotations

import asyncio
import os
import threading
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from bot.gpu import source as engines
from bot.gpu.compiles import BackgroundCompiles, label
from bot.gpu.executor import GPUExecutor
from bot.gpu.source import ModelSource
from bot.jobs.queue import FairQueue
from bot.jobs.service import VideoService
from bot.moderation.policy import PolicyGate
from storage import Repository, create_engine, migrate
from t2v import TINY_RANDOM
from t2v.compiled import video_shape
from tests.bot.helpers import WAIT, Events, requester, sparse_file, spec

CFG = SimpleNamespace(in_dim=4, context_dim=8)
COMPILE_WAIT = 300.0  # dynamo traces tiny-random in ~30 s on 2 cores; a loaded CI machine may take several times that


class RecordingUNet:
    """A FastUNet's face towards the compile thread: records compiles (`done` the UNet's, `order` the UNet's and the
    decoder's); `fail` lists shapes whose compile fails; `decoder` None: no compiled decoder (t2v's CPU path)."""

    max_shapes = 8

    def __init__(self, fail: tuple = (), decoder: Any = None) -> None:
        self.cfg, self.fail, self.decoder = CFG, fail, decoder
        self.done: list[Any] = []
        self.order: list[str] = []
        self.request_compile = None

    def compiled(self, shape: Any) -> bool:
        return shape in self.done

    def compile_shape(self, shape: Any, decoder: bool = True) -> bool:
        assert not decoder  # the compile thread leaves the decoder for later
        if shape in self.fail:
            return False
        self.done.append(shape)
        self.order.append(label(shape))
        return True

    def compile_decoder(self, shape: Any) -> None:
        self.order.append(f"{label(shape)} decoder")


class HeldCompiles(BackgroundCompiles):
    """The compile thread, each compile waiting for a permit the test gives (`allow`)."""

    def __init__(self) -> None:
        super().__init__()
        self.permits = threading.Semaphore(0)
        self.began = threading.Semaphore(0)
        self.finished = threading.Semaphore(0)

    def allow(self, compiles: int = 1) -> None:
        for _ in range(compiles):
            self.permits.release()

    async def compiled(self, count: int = 1, within: float = WAIT) -> None:
        for _ in range(count):
            assert await asyncio.to_thread(self.finished.acquire, True, within), "no compile finished"

    async def compiling(self) -> None:
        """Until the thread has taken a shape (and waits for its permit)."""
        assert await asyncio.to_thread(self.began.acquire, True, WAIT), "no compile began"

    def _compile(self, unet: Any, device: str, shape: Any, decoder: bool = False) -> bool:
        self.began.release()
        self.permits.acquire()
        if self._stopping:
            return False
        try:
            return super()._compile(unet, device, shape, decoder)
        finally:
            self.finished.release()


def shapes(*specs: tuple[int, int, int, int]) -> list[Any]:
    return [video_shape(CFG, *spec) for spec in specs]


@pytest.fixture
def compiles() -> Any:
    held = HeldCompiles()
    yield held
    held.stop()
    held.allow(100)


async def test_the_shape_with_the_most_expected_use_compiles_next(compiles):
    unet = RecordingUNet()
    warm = shapes((1, 16, 256, 256), (4, 16, 256, 256), (1, 16, 448, 256))  # head starts 200, 150, 112.5 calls
    compiles.warm(unet, "cpu", warm)
    await compiles.compiling()  # the first warm shape is under way
    busy, once = shapes((1, 24, 320, 256), (1, 8, 256, 256))
    ask = compiles.requester(unet, "cpu")
    ask(once)  # one eager UNet call: behind the warm shapes
    for _ in range(160):  # 160 eager UNet calls (three videos of 50 steps and some): ahead of the warm 4×16
        ask(busy)
    assert compiles.status()["waiting"] == ["1×24×256×320", "4×16×256×256", "1×16×256×448", "1×8×256×256"]
    compiles.allow(5)
    await compiles.compiled(5)
    assert unet.done == [warm[0], busy, warm[1], warm[2], once]
    assert compiles.status()["compiled"] == ["1×16×256×256", "1×24×256×320", "4×16×256×256", "1×16×256×448",
                                             "1×8×256×256"]


async def test_each_shape_compiles_once_and_a_failure_stays_failed(compiles):
    broken = shapes((1, 8, 64, 64))[0]
    unet = RecordingUNet(fail=(broken,))
    ask = compiles.requester(unet, "cpu")
    for shape in [broken, *shapes((1, 16, 256, 256))] * 2:
        ask(shape)
    compiles.allow(2)
    await compiles.compiled(2)
    ask(broken)
    assert compiles.status() == {"compiled": ["1×16×256×256"], "compiling": None, "waiting": [],
                                 "decoders_waiting": [], "failed": ["1×8×64×64"],
                                 "compile_s": compiles.status()["compile_s"]}


async def test_the_after_compile_hook_runs_after_each_compile_and_its_failure_leaves_the_thread_compiling(
        compiles, caplog):
    ran = threading.Semaphore(0)

    def prune() -> None:
        ran.release()
        raise OSError("the cache's disk went away")

    compiles.after_compile = prune
    unet = RecordingUNet()
    warm = shapes((1, 16, 256, 256), (1, 8, 256, 256))
    compiles.warm(unet, "cpu", warm)
    compiles.allow(2)
    await compiles.compiled(2)
    for _ in warm:
        assert await asyncio.to_thread(ran.acquire, True, WAIT), "the hook did not run"
    assert unet.done == warm
    assert "after a compile: test_the_after_compile_hook_runs_after_each_compile" in caplog.text
    assert "the cache's disk went away" in caplog.text


async def test_decoders_compile_only_once_no_unet_shape_waits_in_the_unets_order(compiles):
    unet = RecordingUNet(decoder=object())
    standard, wide, tall = shapes((1, 16, 256, 256), (1, 16, 448, 256), (1, 16, 256, 448))
    compiles.warm(unet, "cpu", [standard, wide])
    compiles.allow(2)
    await compiles.compiled(2)  # both UNets; the standard shape's decoder is taken next
    await compiles.compiling()
    assert compiles.status()["compiling"] == "1×16×256×256 decoder"
    assert compiles.status()["decoders_waiting"] == ["1×16×256×448"]
    compiles.requester(unet, "cpu")(tall)  # asked for while a decoder compiles: its UNet goes before the next decoder
    compiles.allow(3)
    await compiles.compiled(3)
    assert unet.order == ["1×16×256×256", "1×16×256×448", "1×16×256×256 decoder", "1×16×448×256",
                          "1×16×256×448 decoder"]
    await compiles.compiling()  # the last decoder
    assert compiles.status()["decoders_waiting"] == [] and compiles.status()["compiling"] == "1×16×448×256 decoder"
    compiles.allow()
    await compiles.compiled()
    assert unet.order[-1] == "1×16×448×256 decoder" and compiles.status()["compiling"] is None


async def test_status_names_what_compiles_and_what_waits_per_device_when_there_are_several(compiles):
    standard, wide = shapes((1, 16, 256, 256), (1, 16, 256, 448))
    compiles.warm(RecordingUNet(), "cuda:0", [standard])
    compiles.warm(RecordingUNet(), "cuda:1", [standard, wide])
    await compiles.compiling()
    assert compiles.status()["compiling"] == "cuda:0 1×16×256×256"
    assert compiles.status()["waiting"] == ["cuda:1 1×16×256×256", "cuda:1 1×16×448×256"]
    assert label(wide) == "1×16×448×256"


async def test_workers_take_jobs_at_once_and_queue_the_default_shape_then_the_aspects(compiles, monkeypatch,
                                                                                      tmp_path, caplog):
    caplog.set_level("INFO", "bot.gpu.source")
    sparse_file(tmp_path / "fxgraph" / "entry", 1.5)  # a compiled shape's files
    monkeypatch.setattr(engines, "COMPILES", compiles)
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path / "inductor-default"))  # as importing open_clip sets
    source = ModelSource(TINY_RANDOM, optimize="on", backend="eager", batch_max=3, compile_cache=str(tmp_path))
    unet = source("cpu").pipeline.unet  # returns with nothing compiled: the compile thread is held
    assert os.environ["TORCHINDUCTOR_CACHE_DIR"] == str(tmp_path)  # T2V_COMPILE_CACHE is where inductor writes
    assert f"(cache {tmp_path}, 1.6 GB on disk)" in caplog.text  # it grows with each shape: the log says how much
    assert unet.request_compile is not None and not unet._serving
    await compiles.compiling()
    assert compiles.status()["compiling"] == "1×4×64×64"  # tiny-random: 4 frames at 64²
    assert compiles.status()["waiting"] == ["3×4×64×64", "1×4×128×64", "1×4×64×128"]  # 4:3 and 3:4 are 64² too


async def test_at_default_guidance_one_the_warm_shapes_are_unguided_ones(compiles, monkeypatch, tmp_path):
    monkeypatch.setattr(engines, "COMPILES", compiles)
    source = ModelSource(TINY_RANDOM, optimize="on", backend="eager", batch_max=2, compile_cache=str(tmp_path),
                         default_guidance=1.0)
    source("cpu")
    await compiles.compiling()
    # one UNet row a video: two unguided videos take one guided video's shape, which the label names
    assert compiles.status()["compiling"] == "1×4×64×64 unguided"
    assert compiles.status()["waiting"] == ["1×4×64×64", "1×4×128×64 unguided", "1×4×64×128 unguided"]


@pytest.fixture
async def service(tmp_path: Path, compiles: HeldCompiles, gate: PolicyGate, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setattr(engines, "COMPILES", compiles)
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'videobot.db'}")
    await migrate(engine)
    events = Events()
    source = ModelSource(TINY_RANDOM, optimize="on", backend="eager", batch_max=1, compile_cache=str(tmp_path))
    executor = GPUExecutor(["cpu"], source)
    service = VideoService(Repository(engine), gate, FairQueue(20, 100), executor, events,
                           shutdown_grace_s=0)
    await asyncio.wait_for(service.start(), WAIT)
    yield SimpleNamespace(service=service, events=events, executor=executor)
    await asyncio.wait_for(service.stop(), WAIT)
    await engine.dispose()


async def test_twelve_shapes_are_each_delivered_at_once_while_their_compiles_wait(service, compiles):
    asks = [(aspect, frames) for aspect in ("1:1", "16:9", "9:16") for frames in (1, 2, 3, 4)]
    delivered = []
    for i, (aspect, frames) in enumerate(asks):
        asked = spec(f"a paper boat, take {i}", steps=2, frames=frames, aspect=aspect, sizes=service.service.model.size)
        job = (await service.service.submit(requester(i + 1), asked)).job
        delivered.append(await service.events.wait("done", job.id))  # the compile thread has not moved
    assert all(video.video[4:8] == b"ftyp" for video in delivered)
    status = compiles.status()
    assert status["compiled"] == [] and status["compiling"] == "1×4×64×64"  # the first warm shape, held
    waiting = set(status["waiting"])
    assert {"1×1×64×64", "1×2×128×64", "1×3×64×128", "1×4×64×128"} <= waiting  # asked for by the jobs
    assert len(waiting) >= 11


async def test_a_compiled_shape_serves_the_next_job_of_that_shape(service, compiles):
    compiles.allow()  # the default shape (1:1 at the model's 4 frames) compiles for real
    await compiles.compiled(within=COMPILE_WAIT)
    assert compiles.status()["compiled"] == ["1×4×64×64"]
    job = (await service.service.submit(requester(), spec("a paper boat", steps=2, frames=4))).job
    done = await service.events.wait("done", job.id)
    assert done.video[4:8] == b"ftyp"
    unet = (await service.executor.run(lambda models, *_: models.pipeline.unet))
    assert [label(shape) for shape in unet._serving] == ["1×4×64×64"]  # it ran compiled
