"""GPUExecutor: worker threads own their pipelines; progress, results and cancellation cross threads safely."""

import asyncio
import sys
import threading
import time
import types
from collections.abc import Awaitable, Callable

import pytest

from bot.errors import ServiceUnavailable, WorkCrashed
from bot.gpu.executor import CancelToken, GPUExecutor, devices_for
from tests.bot.helpers import WAIT, LagMeter


class DevicePipeline:
    """Stands in for t2v.VideoPipeline where only its device and building thread matter (tests.bot.helpers.FakePipeline
    renders)."""

    def __init__(self, device: str) -> None:
        self.device = device
        self.thread = threading.get_ident()


class Factory:
    """Pipeline factory that records every call."""

    def __init__(self) -> None:
        self.built: list[DevicePipeline] = []

    def __call__(self, device: str) -> DevicePipeline:
        pipeline = DevicePipeline(device)
        self.built.append(pipeline)
        return pipeline


@pytest.fixture
async def make_executor():
    """Build and start executors, closing them when the test ends."""
    executors: list[GPUExecutor] = []

    async def make(devices: list[str], factory: Callable[[str], object] | None = None) -> GPUExecutor:
        executor = GPUExecutor(devices, factory or Factory())
        executors.append(executor)
        await asyncio.wait_for(executor.start(), WAIT)
        return executor

    yield make
    for executor in executors:
        await asyncio.wait_for(executor.close(), WAIT)


def blocking_work(release: threading.Event, result: object = None):
    """Work that reports step 0 (so the test knows it started), then blocks until `release` is set."""

    def work(pipeline, progress, should_cancel):
        progress(0, 1)
        assert release.wait(WAIT), "the test never released this work"
        return result if result is not None else pipeline.device

    return work


def on_start(event: asyncio.Event) -> Callable[[int, int], None]:
    """Progress callback that sets `event` at step 0."""
    return lambda step, total: event.set() if step == 0 else None


async def wait_for(awaitable: Awaitable) -> object:
    """Await with the test-wide safety timeout."""
    return await asyncio.wait_for(awaitable, WAIT)


async def test_each_device_loads_its_pipeline_once_in_its_own_thread(make_executor):
    factory = Factory()
    executor = await make_executor(["cpu", "cuda:7"], factory)
    assert sorted(p.device for p in factory.built) == ["cpu", "cuda:7"]
    assert threading.get_ident() not in {p.thread for p in factory.built}
    assert len({p.thread for p in factory.built}) == 2
    for _ in range(4):
        await executor.run(lambda pipeline, progress, cancel: pipeline)
    assert len(factory.built) == 2


async def test_work_runs_off_the_loop_thread_on_the_pipelines_own_thread(make_executor):
    executor = await make_executor(["cpu"])
    pipeline, thread = await executor.run(lambda pipeline, progress, cancel: (pipeline, threading.get_ident()))
    assert thread != threading.get_ident()
    assert thread == pipeline.thread


async def test_progress_arrives_on_the_loop_thread_in_order_before_the_result(make_executor):
    executor = await make_executor(["cpu"])
    seen: list[tuple[int, int, int]] = []

    def work(pipeline, progress, should_cancel):
        for step in range(1, 21):
            progress(step, 20)
        return "done"

    def record(step: int, total: int) -> None:
        seen.append((step, total, threading.get_ident()))

    result = await executor.run(work, on_progress=record)
    assert result == "done"
    assert [(step, total) for step, total, _ in seen] == [(step, 20) for step in range(1, 21)]
    assert {thread for _, _, thread in seen} == {threading.get_ident()}


async def test_two_devices_run_two_jobs_at_the_same_time(make_executor):
    executor = await make_executor(["cuda:0", "cuda:1"])
    release = threading.Event()
    started = [asyncio.Event(), asyncio.Event()]
    jobs = [asyncio.ensure_future(executor.run(blocking_work(release), on_start(event))) for event in started]
    await wait_for(asyncio.gather(*(event.wait() for event in started)))
    assert executor.busy == 2 and executor.idle_workers() == 0
    release.set()
    assert sorted(await wait_for(asyncio.gather(*jobs))) == ["cuda:0", "cuda:1"]
    assert executor.busy == 0 and executor.idle_workers() == 2


async def test_one_device_runs_one_job_while_the_next_waits(make_executor):
    executor = await make_executor(["cpu"])
    release = threading.Event()
    first_started, second_started = asyncio.Event(), asyncio.Event()
    first = executor.submit(blocking_work(release, "first"), on_start(first_started))
    second = executor.submit(blocking_work(release, "second"), on_start(second_started))
    await wait_for(first_started.wait())
    assert not second_started.is_set() and executor.idle_workers() == 0
    release.set()
    assert await wait_for(asyncio.gather(first, second)) == ["first", "second"]


async def test_a_failing_job_reaches_its_caller_and_the_worker_keeps_serving(make_executor):
    executor = await make_executor(["cpu"])

    def broken(pipeline, progress, should_cancel):
        raise ValueError("prompt exploded")

    with pytest.raises(ValueError, match="prompt exploded"):
        await wait_for(executor.run(broken))
    assert await wait_for(executor.run(lambda pipeline, progress, cancel: "still serving")) == "still serving"
    assert executor.busy == 0


class Crash(BaseException):
    """What a library may raise that is not an Exception (as SystemExit and GeneratorExit are not)."""


async def test_a_job_raising_a_base_exception_fails_alone_and_the_worker_keeps_serving(make_executor, caplog):
    executor = await make_executor(["cpu"])

    def crashing(held, progress, should_cancel):
        raise Crash("the library gave up")

    with pytest.raises(WorkCrashed, match="the work raised Crash: the library gave up"):
        await wait_for(executor.run(crashing))
    assert await wait_for(executor.run(lambda held, progress, cancel: "still serving")) == "still serving"
    assert executor.busy == 0 and executor.workers == 1
    assert "the thread serves on" in caplog.text


async def test_a_model_that_fails_to_load_makes_the_service_unavailable_with_the_reason(make_executor, caplog):
    def factory(device: str):
        raise RuntimeError("CUDA out of memory on " + device)

    executor = await make_executor(["cuda:0"], factory)
    assert isinstance(executor.load_error, RuntimeError)
    assert executor.idle_workers() == 0
    with pytest.raises(ServiceUnavailable, match="CUDA out of memory on cuda:0") as refused:
        await executor.run(lambda pipeline, progress, cancel: None)
    assert "CUDA out of memory" in refused.value.reason
    assert "Traceback" in caplog.text  # logged with log.exception


async def test_one_failed_device_leaves_the_others_serving(make_executor):
    def factory(device: str) -> DevicePipeline:
        if device == "cuda:1":
            raise RuntimeError("no such GPU")
        return DevicePipeline(device)

    executor = await make_executor(["cuda:0", "cuda:1"], factory)
    assert executor.load_error is None
    assert list(executor.failed_devices) == ["cuda:1"]
    assert executor.idle_workers() == 1
    assert await wait_for(executor.run(lambda pipeline, progress, cancel: pipeline.device)) == "cuda:0"


async def test_work_is_refused_before_start_and_after_close():
    executor = GPUExecutor(["cpu"], Factory())
    with pytest.raises(ServiceUnavailable, match="still loading"):
        executor.submit(lambda pipeline, progress, cancel: None)
    await wait_for(executor.start())
    await wait_for(executor.close())
    with pytest.raises(ServiceUnavailable, match="shutting down"):
        await executor.run(lambda pipeline, progress, cancel: None)
    assert executor.idle_workers() == 0


async def test_close_finishes_handed_over_work_and_stops_every_thread():
    executor = GPUExecutor(["cpu", "cuda:0"], Factory())
    await wait_for(executor.start())
    release = threading.Event()
    started = asyncio.Event()
    job = executor.submit(blocking_work(release, "finished"), on_start(started))
    await wait_for(started.wait())
    closing = asyncio.ensure_future(executor.close())
    release.set()  # the loop is free while close() joins the threads
    await wait_for(closing)
    assert job.result() == "finished"
    assert not any(thread.is_alive() for thread in executor._threads)


def step_loop(steps: int, pause_at: int, go: threading.Event):
    """A fake sampler: reports each step, checks should_cancel before each, pauses at one step."""

    def work(pipeline, progress, should_cancel):
        for step in range(steps):
            if should_cancel():
                return step
            progress(step, steps)
            if step == pause_at:
                assert go.wait(WAIT)
        return steps

    return work


async def test_cancel_token_stops_the_step_loop_at_its_next_check(make_executor):
    executor = await make_executor(["cpu"])
    token, go, paused = CancelToken(), threading.Event(), asyncio.Event()
    job = executor.submit(step_loop(50, 3, go), lambda step, total: paused.set() if step == 3 else None, token)
    await wait_for(paused.wait())
    assert not token()
    token.cancel()
    assert token.is_set() and token()
    go.set()
    assert await wait_for(job) == 4  # steps 0-3 ran, step 4 saw the token


async def test_cancelling_the_awaiting_task_stops_the_running_work(make_executor):
    executor = await make_executor(["cpu"])
    go, paused = threading.Event(), asyncio.Event()
    outcome: list[int] = []

    def work(pipeline, progress, should_cancel):
        outcome.append(step_loop(50, 0, go)(pipeline, progress, should_cancel))

    task = asyncio.ensure_future(executor.run(work, on_start(paused)))
    await wait_for(paused.wait())
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    go.set()
    await wait_for(executor.run(lambda pipeline, progress, cancel: None))  # runs after the cancelled work ended
    assert outcome == [1]


async def test_work_cancelled_while_waiting_never_runs(make_executor):
    executor = await make_executor(["cpu"])
    release, started = threading.Event(), asyncio.Event()
    ran: list[str] = []
    first = executor.submit(blocking_work(release), on_start(started))
    waiting = executor.submit(lambda pipeline, progress, cancel: ran.append("waiting"))
    await wait_for(started.wait())
    waiting.cancel()
    release.set()
    await wait_for(first)
    assert executor.busy == 0
    await wait_for(executor.run(lambda pipeline, progress, cancel: ran.append("after")))
    assert ran == ["after"]


async def test_cpu_bound_work_in_a_worker_does_not_stall_the_event_loop(make_executor):
    executor = await make_executor(["cpu"])
    started = asyncio.Event()

    def spin(pipeline, progress, should_cancel):
        progress(0, 1)
        end, n = time.monotonic() + 0.3, 0
        while time.monotonic() < end:  # pure-Python work holds the GIL, as a Python-heavy step would
            n += 1
        return n

    job = executor.submit(spin, on_start(started))
    await wait_for(started.wait())
    meter = LagMeter(period=0.01)
    meter.start()
    await wait_for(asyncio.wait({job}))
    meter.stop()
    assert len(meter.lags) >= 10  # the loop really ticked while the worker spun
    # Work on the loop would delay every tick by the whole 0.3 s, and a worker that kept the GIL would delay most of
    # them. On a shared 2-core machine the OS may still deschedule the loop's thread once in a while, which makes a
    # tick late without the loop doing any work: the wall-clock bound holds for 90% of ticks, and the worst stall is
    # bounded by the CPU the loop's own thread spent between two ticks.
    lags = sorted(meter.lags)
    p90, busiest = lags[int(0.9 * (len(lags) - 1))], max(meter.busy)
    assert p90 < 0.05 and busiest < 0.15, f"event loop lag p90 {p90 * 1000:.0f} ms, busiest {busiest * 1000:.0f} ms"
    assert job.result() > 0


def fake_torch(gpus: int) -> types.ModuleType:
    """A stand-in torch module that reports `gpus` visible CUDA devices."""
    torch = types.ModuleType("torch")
    torch.cuda = types.SimpleNamespace(device_count=lambda: gpus)
    return torch


@pytest.mark.parametrize(
    ("setting", "devices"),
    [
        ("cpu", ["cpu"]),
        ("cuda:1", ["cuda:1"]),
        ("cuda", ["cuda:0", "cuda:1", "cuda:2"]),
        ("cuda:0, cuda:2", ["cuda:0", "cuda:2"]),
        ("CPU", ["cpu"]),
    ],
)
def test_device_settings_expand_to_one_device_per_worker(monkeypatch, setting, devices):
    monkeypatch.setitem(sys.modules, "torch", fake_torch(3))
    assert devices_for(setting) == devices


@pytest.mark.parametrize("setting", ["gpu", "cuda:", "cuda:x", "", "cpu,,cuda:0", "cuda:-1"])
def test_bad_device_settings_name_the_value_and_the_allowed_forms(setting):
    with pytest.raises(ValueError, match=r"bad device .*cuda:N"):
        devices_for(setting)


def test_a_device_listed_twice_is_refused(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", fake_torch(2))
    with pytest.raises(ValueError, match="'cuda:1' appears twice"):
        devices_for("cuda,cuda:1")
    with pytest.raises(ValueError, match="'cuda:0' appears twice"):
        devices_for("cuda:0,cuda:00")  # one GPU, two spellings


def test_all_gpus_with_none_visible_says_so(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", fake_torch(0))
    with pytest.raises(RuntimeError, match="torch sees none"):
        devices_for("cuda")
