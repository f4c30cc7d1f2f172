"""GPUExecutor: worker threads own their pipelines; progress, results and cancellation cross threads safely."""

import asyncio
import sys
import threading
import time
import types
from collections.abc import Callable

import pytest

from bot.errors import ServiceUnavailable, WorkCrashed
from bot.gpu import executor as executor_module
from bot.gpu.executor import CancelToken, GPUExecutor, context_lost, devices_for
from t2v.errors import WeightsError
from tests.bot.helpers import WAIT, LagMeter, fake_torch, soon


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

    async def make(devices: list[str], factory: Callable[[str], object] | None = None,
                   idle: Callable[[object, Callable[[], bool]], None] | None = None) -> GPUExecutor:
        executor = GPUExecutor(devices, factory or Factory(), idle=idle)
        executors.append(executor)
        await soon(executor.start())
        return executor

    yield make
    for executor in executors:
        await soon(executor.close())


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
    await soon(asyncio.gather(*(event.wait() for event in started)))
    assert executor.busy == 2 and executor.idle_workers() == 0
    release.set()
    assert sorted(await soon(asyncio.gather(*jobs))) == ["cuda:0", "cuda:1"]
    assert executor.busy == 0 and executor.idle_workers() == 2


async def test_one_device_runs_one_job_while_the_next_waits(make_executor):
    executor = await make_executor(["cpu"])
    release = threading.Event()
    first_started, second_started = asyncio.Event(), asyncio.Event()
    first = executor.submit(blocking_work(release, "first"), on_start(first_started))
    second = executor.submit(blocking_work(release, "second"), on_start(second_started))
    await soon(first_started.wait())
    assert not second_started.is_set() and executor.idle_workers() == 0
    release.set()
    assert await soon(asyncio.gather(first, second)) == ["first", "second"]


async def test_a_failing_job_reaches_its_caller_and_the_worker_keeps_serving(make_executor):
    executor = await make_executor(["cpu"])

    def broken(pipeline, progress, should_cancel):
        raise ValueError("prompt exploded")

    with pytest.raises(ValueError, match="prompt exploded"):
        await soon(executor.run(broken))
    assert await soon(executor.run(lambda pipeline, progress, cancel: "still serving")) == "still serving"
    assert executor.busy == 0


class Crash(BaseException):
    """What a library may raise that is not an Exception (as SystemExit and GeneratorExit are not)."""


async def test_a_job_raising_a_base_exception_fails_alone_and_the_worker_keeps_serving(make_executor, caplog):
    executor = await make_executor(["cpu"])

    def crashing(held, progress, should_cancel):
        raise Crash("the library gave up")

    with pytest.raises(WorkCrashed, match="the work raised Crash: the library gave up"):
        await soon(executor.run(crashing))
    assert await soon(executor.run(lambda held, progress, cancel: "still serving")) == "still serving"
    assert executor.busy == 0 and executor.workers == 1
    assert "the thread serves on" in caplog.text


# What torch raises after a device-side assert, word for word (the advice lines follow the first one)
DEVICE_ASSERT = ("CUDA error: device-side assert triggered\nCUDA kernel errors might be asynchronously reported at "
                 "some other API call, so the stacktrace below might be incorrect.\nFor debugging consider passing "
                 "CUDA_LAUNCH_BLOCKING=1\nCompile with `TORCH_USE_CUDA_DSA` to enable device-side assertions.\n")


def raising(error: Exception) -> Callable[..., object]:
    """Work that raises `error`, as a kernel's failure surfaces in the worker thread."""

    def work(held, progress, should_cancel):
        raise error

    return work


def caused_by(error: Exception) -> Exception:
    """A wrapper raised from `error`, as a library re-raises a CUDA error."""
    wrapper = RuntimeError("decoding the latents failed")
    wrapper.__cause__ = error
    return wrapper


def test_context_lost_is_true_for_cuda_errors_that_leave_the_context_unusable():
    import torch

    lost = [RuntimeError(DEVICE_ASSERT), RuntimeError("CUDA error: an illegal memory access was encountered"),
            RuntimeError("CUDA error: unspecified launch failure"), RuntimeError("CUDA error: misaligned address"),
            RuntimeError("CUDA error: an illegal instruction was encountered"),
            caused_by(RuntimeError("CUDA error: an illegal memory access was encountered"))]
    if hasattr(torch, "AcceleratorError"):  # torch >= 2.8
        lost.append(torch.AcceleratorError(DEVICE_ASSERT))
    assert [context_lost(error) for error in lost] == [True] * len(lost)


def test_context_lost_is_false_for_running_out_of_memory_and_ordinary_errors():
    import torch

    kept = [torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"),
            caused_by(torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")),
            RuntimeError("CUDA error: out of memory"), RuntimeError("mat1 and mat2 shapes cannot be multiplied"),
            ValueError("an illegal memory access"), ServiceUnavailable("the bot is shutting down")]
    if hasattr(torch, "AcceleratorError"):  # cudaMalloc outside the caching allocator (a cuBLAS workspace), and
        kept += [torch.AcceleratorError(f"CUDA error: {words}")  # errors of one launch, which leave the context working
                 for words in ("out of memory", "invalid configuration argument", "too many resources requested for "
                               "launch", "no kernel image is available for execution on the device")]
    assert [context_lost(error) for error in kept] == [False] * len(kept)


def test_context_lost_reads_the_message_where_torch_has_no_accelerator_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", types.ModuleType("torch"))  # an older torch: RuntimeError only
    assert context_lost(RuntimeError(DEVICE_ASSERT))
    assert not context_lost(RuntimeError("something else"))


async def test_a_gpu_error_that_loses_the_cuda_context_retires_its_worker_and_says_why_once(make_executor):
    executor = await make_executor(["cuda:0", "cuda:1"])
    broken: list[str] = []
    executor.on_broken = broken.append
    error = RuntimeError(DEVICE_ASSERT)

    with pytest.raises(RuntimeError, match="device-side assert triggered") as raised:
        await soon(executor.run(raising(error)))
    assert raised.value is error  # the job fails with what the work raised, as any failed job does
    [lost] = executor.failed_devices  # whichever worker took it
    [serving] = {"cuda:0", "cuda:1"} - {lost}
    assert broken == [f"the GPU worker on {lost} is unusable until the bot restarts (RuntimeError: CUDA error: "
                      "device-side assert triggered)"]
    assert executor.failed_devices[lost] is error and executor.load_error is None and executor.workers == 1
    [thread] = [thread for thread in executor._threads if thread.name == f"gpu-{lost}"]
    await asyncio.to_thread(thread.join, WAIT)
    assert not thread.is_alive()  # it takes no more work
    for _ in range(3):
        assert await soon(executor.run(lambda held, progress, cancel: held.device)) == serving
    assert len(broken) == 1


class Idle:
    """Idle work that records what it was handed; its first call holds the worker until `go` is set, then notes
    whether it was told to stop, and returns or raises `error`."""

    def __init__(self, error: Exception | None = None) -> None:
        self.error = error
        self.held: list[object] = []
        self.idling, self.go = threading.Event(), threading.Event()
        self.told_to_stop: list[bool] = []

    def __call__(self, held: object, should_stop: Callable[[], bool]) -> None:
        self.held.append(held)
        if len(self.held) > 1:
            return
        self.idling.set()
        assert self.go.wait(WAIT), "the test never let the idle work go on"
        self.told_to_stop.append(should_stop())
        if self.error is not None:
            raise self.error


async def test_a_worker_with_an_empty_queue_does_its_idle_work_told_to_stop_once_work_waits(make_executor,
                                                                                             monkeypatch):
    monkeypatch.setattr(executor_module, "IDLE_CHECK_S", 0.01)
    idle = Idle()
    executor = await make_executor(["cuda:0"], idle=idle)
    assert await soon(asyncio.to_thread(idle.idling.wait, WAIT))
    job = executor.submit(lambda held, progress, cancel: held.device)  # waits for the idle work
    idle.go.set()
    assert await soon(job) == "cuda:0"
    assert idle.told_to_stop == [True] and idle.held[0].device == "cuda:0"  # what the worker holds (its Models)


async def test_idle_work_that_fails_is_logged_and_the_worker_serves_on(make_executor, monkeypatch, caplog):
    monkeypatch.setattr(executor_module, "IDLE_CHECK_S", 0.01)
    idle = Idle(RuntimeError("a capture failed"))
    executor = await make_executor(["cuda:0"], idle=idle)
    assert await soon(asyncio.to_thread(idle.idling.wait, WAIT))
    idle.go.set()
    assert await soon(executor.run(lambda held, progress, cancel: "still serving")) == "still serving"
    assert executor.workers == 1 and "idle work on cuda:0 failed" in caplog.text and "a capture failed" in caplog.text


async def test_idle_work_that_loses_the_cuda_context_retires_its_worker_and_says_why(make_executor, monkeypatch):
    monkeypatch.setattr(executor_module, "IDLE_CHECK_S", 0.01)
    idle = Idle(RuntimeError(DEVICE_ASSERT))
    executor = await make_executor(["cuda:2"], idle=idle)
    broken: list[str] = []
    executor.on_broken = broken.append
    assert await soon(asyncio.to_thread(idle.idling.wait, WAIT))
    idle.go.set()
    [thread] = executor._threads
    await asyncio.to_thread(thread.join, WAIT)
    assert not thread.is_alive()
    await soon(asyncio.sleep(0))  # the loss is posted to the loop
    assert broken == ["the GPU worker on cuda:2 is unusable until the bot restarts (RuntimeError: CUDA error: "
                      "device-side assert triggered)"]
    assert executor.workers == 0


async def test_the_default_on_broken_logs_one_error_naming_the_device(make_executor, caplog):
    executor = await make_executor(["cuda:3"])
    with pytest.raises(RuntimeError):
        await soon(executor.run(raising(RuntimeError("CUDA error: unspecified launch failure"))))
    assert [(r.levelname, r.getMessage()) for r in caplog.records if r.levelname == "ERROR"] == [
        ("ERROR", "the GPU worker on cuda:3 is unusable until the bot restarts (RuntimeError: CUDA error: unspecified "
                  "launch failure)")]
    assert executor.workers == 0 and list(executor.failed_devices) == ["cuda:3"]


async def test_running_out_of_gpu_memory_leaves_the_worker_serving(make_executor):
    import torch

    executor = await make_executor(["cuda:0"])
    broken: list[str] = []
    executor.on_broken = broken.append
    with pytest.raises(torch.OutOfMemoryError):
        await soon(executor.run(raising(torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2 GiB"))))
    assert await soon(executor.run(lambda held, progress, cancel: "still serving")) == "still serving"
    assert executor.workers == 1 and not executor.failed_devices and broken == []


async def test_a_cpu_worker_is_never_retired_by_a_cuda_error(make_executor):
    executor = await make_executor(["cpu"])
    broken: list[str] = []
    executor.on_broken = broken.append
    with pytest.raises(RuntimeError, match="device-side assert"):
        await soon(executor.run(raising(RuntimeError(DEVICE_ASSERT))))
    assert await soon(executor.run(lambda held, progress, cancel: "still serving")) == "still serving"
    assert executor.workers == 1 and not executor.failed_devices and broken == []


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


async def test_weights_that_fail_to_load_are_one_line_a_device_and_outrank_another_devices_error(make_executor,
                                                                                                 caplog):
    damaged = WeightsError("/srv/weights/modelscope/text2video_pytorch_model.pth could not be read; the file is "
                           "corrupt or truncated")

    def factory(device: str):
        if device == "cuda:0":
            raise RuntimeError("CUDA out of memory while loading the UNet")
        raise damaged

    executor = await make_executor(["cuda:0", "cuda:1"], factory)
    assert executor.load_error is damaged and executor.workers == 0  # the operator's to fix: VideoService stops
    weights = [record for record in caplog.records if "cuda:1" in record.getMessage()]
    assert [(r.levelname, r.getMessage(), r.exc_info) for r in weights] == [
        ("ERROR", f"loading the pipeline on cuda:1 failed: {damaged}", None)]  # one line, no traceback
    assert "no device could load the pipeline" not in caplog.text  # the start's own line says it


async def test_one_failed_device_leaves_the_others_serving(make_executor):
    def factory(device: str) -> DevicePipeline:
        if device == "cuda:1":
            raise RuntimeError("no such GPU")
        return DevicePipeline(device)

    executor = await make_executor(["cuda:0", "cuda:1"], factory)
    assert executor.load_error is None
    assert list(executor.failed_devices) == ["cuda:1"]
    assert executor.idle_workers() == 1
    assert await soon(executor.run(lambda pipeline, progress, cancel: pipeline.device)) == "cuda:0"


async def test_work_is_refused_before_start_and_after_close():
    executor = GPUExecutor(["cpu"], Factory())
    with pytest.raises(ServiceUnavailable, match="still loading"):
        executor.submit(lambda pipeline, progress, cancel: None)
    await soon(executor.start())
    await soon(executor.close())
    with pytest.raises(ServiceUnavailable, match="shutting down"):
        await executor.run(lambda pipeline, progress, cancel: None)
    assert executor.idle_workers() == 0


async def test_close_finishes_handed_over_work_and_stops_every_thread():
    executor = GPUExecutor(["cpu", "cuda:0"], Factory())
    await soon(executor.start())
    release = threading.Event()
    started = asyncio.Event()
    job = executor.submit(blocking_work(release, "finished"), on_start(started))
    await soon(started.wait())
    closing = asyncio.ensure_future(executor.close())
    release.set()  # the loop is free while close() joins the threads
    await soon(closing)
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
    await soon(paused.wait())
    assert not token()
    token.cancel()
    assert token.is_set() and token()
    go.set()
    assert await soon(job) == 4  # steps 0-3 ran, step 4 saw the token


async def test_cancelling_the_awaiting_task_stops_the_running_work(make_executor):
    executor = await make_executor(["cpu"])
    go, paused = threading.Event(), asyncio.Event()
    outcome: list[int] = []

    def work(pipeline, progress, should_cancel):
        outcome.append(step_loop(50, 0, go)(pipeline, progress, should_cancel))

    task = asyncio.ensure_future(executor.run(work, on_start(paused)))
    await soon(paused.wait())
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    go.set()
    await soon(executor.run(lambda pipeline, progress, cancel: None))  # runs after the cancelled work ended
    assert outcome == [1]


async def test_work_cancelled_while_waiting_never_runs(make_executor):
    executor = await make_executor(["cpu"])
    release, started = threading.Event(), asyncio.Event()
    ran: list[str] = []
    first = executor.submit(blocking_work(release), on_start(started))
    waiting = executor.submit(lambda pipeline, progress, cancel: ran.append("waiting"))
    await soon(started.wait())
    waiting.cancel()
    release.set()
    await soon(first)
    assert executor.busy == 0
    await soon(executor.run(lambda pipeline, progress, cancel: ran.append("after")))
    assert ran == ["after"]


async def test_cpu_bound_work_in_a_worker_does_not_stall_the_event_loop(make_executor):
    executor = await make_executor(["cpu"])
    started = asyncio.Event()
    meter, ticks = LagMeter(period=0.01), 20

    def spin(pipeline, progress, should_cancel):
        progress(0, 1)
        give_up = time.monotonic() + WAIT
        while len(meter.lags) < ticks and time.monotonic() < give_up:  # pure-Python work holds the GIL, as a
            pass  # Python-heavy step would: it ends once the loop has ticked `ticks` times meanwhile
        return len(meter.lags)

    meter.start()
    job = executor.submit(spin, on_start(started))
    await soon(started.wait())
    await soon(asyncio.wait({job}))
    meter.stop()
    # A worker that kept the GIL, or work run on the loop, would keep the loop from ticking until the spin gave up.
    # How late each tick ran is not asserted (the OS may deschedule the loop's thread on a shared machine); the
    # worst stall is bounded by the CPU the loop's own thread spent between two ticks.
    assert job.result() >= ticks, f"the loop ticked {job.result()} times in {WAIT} s while a worker spun"
    assert max(meter.busy) < 0.15, f"the loop's thread worked {max(meter.busy) * 1000:.0f} ms between two ticks"


@pytest.mark.parametrize(
    ("setting", "devices"),
    [
        ("cpu", ["cpu"]),
        ("cuda:1", ["cuda:1"]),
        ("cuda", ["cuda:0", "cuda:1", "cuda:2"]),
        ("cuda:0, cuda:2", ["cuda:0", "cuda:2"]),
        ("CPU", ["cpu"]),
        ("cpu,,cuda:0,", ["cpu", "cuda:0"]),  # empty places are nothing, as in ALLOWED_GUILD_IDS
    ],
)
def test_device_settings_expand_to_one_device_per_worker(monkeypatch, setting, devices):
    monkeypatch.setitem(sys.modules, "torch", fake_torch(3))
    assert devices_for(setting) == devices


@pytest.mark.parametrize("setting", ["gpu", "cuda:", "cuda:x", "", ",", "cuda:-1"])
def test_bad_device_settings_name_the_value_and_the_allowed_forms(setting):
    with pytest.raises(ValueError, match=rf"^T2V_DEVICE={setting} is not cuda, cuda:N, cpu or a comma-separated"):
        devices_for(setting)


def test_a_device_listed_twice_is_refused(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", fake_torch(2))
    with pytest.raises(ValueError, match="cuda already means every GPU"):
        devices_for("cuda,cuda:1")
    with pytest.raises(ValueError, match="names cuda:0 twice"):
        devices_for("cuda:0,cuda:00")  # one GPU, two spellings


def test_all_gpus_with_none_visible_says_so(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", fake_torch(0))
    with pytest.raises(RuntimeError, match="torch sees none"):
        devices_for("cuda")
