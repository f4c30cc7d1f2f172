"""GPU executor: one thread per device, each owning the models it loaded; the event loop never touches CUDA.

Work crosses into the threads through a shared `queue.Queue`; progress and results cross back only through
`loop.call_soon_threadsafe`. Cancellation flows in through a thread-safe callable (see `CancelToken`). A worker
whose queue stays empty does its `idle` work meanwhile (the bot: bot.gpu.work.capture_while_idle), stopping as soon
as work arrives. Whatever a unit of work raises settles its future (a BaseException as `WorkCrashed`), and the
thread takes the next unit, unless the error left its GPU's CUDA context unusable (`context_lost`): that worker then
takes no more work, and `on_broken` says why (the bot restarts: only a new process gets a working context).
"""

from __future__ import annotations

import asyncio
import logging
import queue
import sys
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from bot.errors import ServiceUnavailable, SettingsError, WorkCrashed
from bot.settings import device_list
from t2v.errors import WeightsError

log = logging.getLogger(__name__)

T = TypeVar("T")
ProgressFn = Callable[..., None]  # (step, total, *extra) from the worker thread; extra: e.g. a live preview
CancelFn = Callable[[], bool]  # polled from the worker thread; True asks the work to stop
Work = Callable[[Any, ProgressFn, CancelFn], T]  # (what the worker holds: bot.gpu.models.Models, progress,
# should_cancel) -> result

_STOP = object()  # sentinel telling one worker thread to exit
_IDLE = object()  # what a worker with idle work takes when its queue stayed empty for IDLE_CHECK_S
IDLE_CHECK_S = 1.0  # how often a worker with idle work looks for it while its queue is empty
IdleWork = Callable[[Any, CancelFn], None]  # (what the worker holds, should_stop): true once work waits
JOIN_TIMEOUT_S = 30.0  # close() waits this long for each worker thread to finish its work and stop
# What torch says of CUDA's sticky errors: after one, every CUDA call of the process fails the same way
_CONTEXT_LOST = ("device-side assert triggered", "illegal memory access", "unspecified launch failure",
                 "misaligned address", "an illegal instruction")


class CancelToken:
    """Thread-safe cancellation flag: the event loop calls `cancel()`, the GPU thread polls the token.

    Listeners (`when_cancelled`) hear of it at once: the Ray executor forwards a cancel to the remote worker so.
    """

    def __init__(self) -> None:
        self._event = threading.Event()
        self._lock = threading.Lock()
        self._listeners: list[Callable[[], None]] = []

    def cancel(self) -> None:
        """Ask the work to stop at its next check, and tell the listeners (each once)."""
        with self._lock:
            self._event.set()
            listeners, self._listeners = self._listeners, []
        for listener in listeners:
            try:
                listener()
            except Exception:
                log.exception("a cancellation listener failed")

    def when_cancelled(self, listener: Callable[[], None]) -> None:
        """Call `listener()` (in the cancelling thread) when the token is cancelled; at once if it already is."""
        with self._lock:
            if not self._event.is_set():
                self._listeners.append(listener)
                return
        listener()

    def is_set(self) -> bool:
        """Whether cancellation was requested."""
        return self._event.is_set()

    __call__ = is_set


@dataclass(eq=False)
class _WorkItem:
    """One unit of work on its way to a worker thread."""

    work: Work[Any]
    future: asyncio.Future[Any]
    on_progress: ProgressFn | None
    should_cancel: CancelFn
    abandoned: CancelToken  # set when the caller cancelled the future


class WorkFuture(asyncio.Future[Any]):
    """A future whose `cancel()` sets the work's token at once, so a worker never starts abandoned work."""

    def __init__(self, loop: asyncio.AbstractEventLoop, token: CancelToken) -> None:
        super().__init__(loop=loop)
        self._token = token

    def cancel(self, msg: Any = None) -> bool:
        """Cancel the future and tell the worker thread to stop (or never start) the work."""
        self._token.cancel()
        return super().cancel(msg)


class Executor(Protocol):
    """What the video service needs from an executor (T2V_EXECUTOR): `GPUExecutor` (threads, here) or
    `bot.gpu.ray_executor.RayExecutor` (actors of a Ray cluster).

    `submit(work, on_progress, should_cancel)` runs `work(models, progress, should_cancel)` on a free worker;
    progress reaches `on_progress` on the event loop; cancelling the future or `should_cancel()` turning true stops
    the work at its next check. `workers` counts the workers taking work now; when it grows (a lost Ray worker is
    back), `on_capacity()` is called on the loop so the dispatcher can hand out more; when a worker is lost until
    the bot restarts (its CUDA context is unusable), `on_broken(reason)` is.
    """

    load_error: BaseException | None
    on_capacity: Callable[[], None]
    on_broken: Callable[[str], None]

    @property
    def started(self) -> bool: ...

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    @property
    def workers(self) -> int: ...

    def submit(self, work: Work[T], on_progress: ProgressFn | None = None,
               should_cancel: CancelFn | None = None) -> asyncio.Future[T]: ...

    async def run(self, work: Work[T], on_progress: ProgressFn | None = None,
                  should_cancel: CancelFn | None = None) -> T: ...


class ExecutorBase(ABC):
    """What both executors share: availability, the futures handed out (cancelling one stops its work), `run`."""

    def __init__(self, loop: asyncio.AbstractEventLoop | None) -> None:
        self.load_error: BaseException | None = None  # set when no worker could load the pipeline
        self.failed_devices: dict[str, BaseException] = {}  # worker -> why it is not serving
        self.on_capacity: Callable[[], None] = _nothing
        self.on_broken: Callable[[str], None] = _log_broken  # a worker serves no more until the bot restarts
        self._loop = loop
        self._in_flight = 0  # submitted and not yet settled; touched only on the loop thread
        self._started = False
        self._closed = False

    @property
    def started(self) -> bool:
        """Whether `start()` was called (by the service, or before it by its caller)."""
        return self._started

    def _begin(self) -> asyncio.AbstractEventLoop:
        """Mark the executor started (once) and return its loop."""
        if self._started:
            raise RuntimeError(f"{type(self).__name__}.start() was already called")
        self._started = True
        self._loop = self._loop or asyncio.get_running_loop()
        return self._loop

    @property
    def busy(self) -> int:
        """Units of work handed over and not yet settled (work whose caller gave up counts as settled)."""
        return self._in_flight

    def _new_future(self, should_cancel: CancelFn | None) -> tuple[asyncio.Future[Any], CancelToken, CancelFn]:
        """(future, abandoned, cancel check) for one unit of work: cancelling the future sets `abandoned`, and the
        work's cancel check is true once either it or `should_cancel` is."""
        self._check_available()
        assert self._loop is not None
        abandoned = CancelToken()
        cancel_fn = abandoned if should_cancel is None else either(abandoned, should_cancel)
        future: asyncio.Future[Any] = WorkFuture(self._loop, abandoned)
        future.add_done_callback(self._settled)
        self._in_flight += 1
        return future, abandoned, cancel_fn

    @abstractmethod
    def submit(self, work: Work[T], on_progress: ProgressFn | None = None,
               should_cancel: CancelFn | None = None) -> asyncio.Future[T]:
        """Hand `work(models, progress, should_cancel)` to the next free worker; cancelling the future stops it."""

    async def run(
        self,
        work: Work[T],
        on_progress: ProgressFn | None = None,
        should_cancel: CancelFn | None = None,
    ) -> T:
        """Run `work(models, progress, should_cancel)` on the next free worker and return its result."""
        return await self.submit(work, on_progress, should_cancel)

    def _check_available(self) -> None:
        """Raise ServiceUnavailable with the reason when no worker can take work."""
        if self.load_error is not None:
            raise ServiceUnavailable(f"the model failed to load ({self.load_error})")
        if self._closed:
            raise ServiceUnavailable("the bot is shutting down")
        if not self._started:
            raise ServiceUnavailable("the model is still loading")

    def _settled(self, future: asyncio.Future[Any]) -> None:
        """Loop-side bookkeeping when a submitted future resolves or is cancelled."""
        self._in_flight -= 1


class GPUExecutor(ExecutorBase):
    """Runs blocking model work on one thread per device; `await run(...)` from the event loop."""

    def __init__(
        self,
        devices: list[str],
        factory: Callable[[str], Any],
        loop: asyncio.AbstractEventLoop | None = None,
        idle: IdleWork | None = None,
    ) -> None:
        if not devices:
            raise ValueError("GPUExecutor needs at least one device")
        super().__init__(loop)  # on_capacity is never called: a thread that failed to load does not come back
        self.devices = list(devices)
        self._factory = factory  # device -> what its worker holds (bot.gpu.source.ModelSource: Models)
        self._idle = idle  # run by a worker whose queue is empty, until `should_stop()`; None: a worker just waits
        self._work: queue.Queue[_WorkItem | object] = queue.Queue()
        self._threads: list[threading.Thread] = []

    async def start(self) -> None:
        """Start one thread per device and wait until each has loaded its models or failed to."""
        loop = self._begin()
        loaded = [loop.create_future() for _ in self.devices]
        for device, ready in zip(self.devices, loaded, strict=True):
            thread = threading.Thread(target=self._serve, args=(device, ready), name=f"gpu-{device}", daemon=True)
            self._threads.append(thread)
            thread.start()
        for device, error in zip(self.devices, await asyncio.gather(*loaded), strict=True):
            if error is not None:
                self.failed_devices[device] = error
        if len(self.failed_devices) == len(self.devices):
            self.load_error = load_error_of(list(self.failed_devices.values()))
            if not operator_must_fix(self.load_error):  # the operator's: the start stops with it (VideoService.start)
                log.error("no device could load the pipeline; generation is unavailable: %s", self.load_error)
        elif self.failed_devices:
            log.error("pipeline failed to load on %s; serving on the others", ", ".join(self.failed_devices))
        else:
            log.info("pipeline loaded on %s", ", ".join(self.devices))

    @property
    def workers(self) -> int:
        """Worker threads that loaded a pipeline and have not been stopped."""
        return 0 if self._closed else len(self.devices) - len(self.failed_devices)

    def idle_workers(self) -> int:
        """Loaded workers that a newly submitted unit of work would not have to wait for."""
        return max(self.workers - self._in_flight, 0)

    def submit(
        self,
        work: Work[T],
        on_progress: ProgressFn | None = None,
        should_cancel: CancelFn | None = None,
    ) -> asyncio.Future[T]:
        """Hand `work(models, progress, should_cancel)` to the next free worker; cancelling the future stops it."""
        future, abandoned, cancel_fn = self._new_future(should_cancel)
        self._work.put(_WorkItem(work, future, on_progress, cancel_fn, abandoned))
        return future

    async def close(self) -> None:
        """Let handed-over work finish, stop every worker thread and join them without blocking the loop."""
        if self._closed:
            return
        self._closed = True
        for _ in self._threads:
            self._work.put(_STOP)
        for thread in self._threads:
            await asyncio.to_thread(thread.join, JOIN_TIMEOUT_S)
            if thread.is_alive():  # stuck in its work (a hung kernel): the process ends without it
                log.error("worker thread %s did not stop within %.0f s; leaving it", thread.name, JOIN_TIMEOUT_S)
        log.info("executor stopped (%d threads)", len(self._threads))

    def _serve(self, device: str, ready: asyncio.Future[BaseException | None]) -> None:
        """Worker thread body: load the models once, then run work items until the stop sentinel."""
        try:
            _use_device(device)
            held = self._factory(device)
        except (SettingsError, WeightsError) as exc:  # a style or the weights the settings name: the line says what
            log.error("loading the pipeline on %s failed: %s", device, exc)
            self._post(settle, ready, exc, None)
            return
        except Exception as exc:
            log.exception("loading the pipeline on %s failed", device)
            self._post(settle, ready, exc, None)
            return
        self._post(settle, ready, None, None)
        while (item := self._next_item()) is not _STOP:
            if item is _IDLE:
                served = self._run_idle(device, held)
            else:
                assert isinstance(item, _WorkItem)
                served = self._execute(device, held, item)
            if not served:
                return  # its CUDA context is unusable: another thread or, after the restart, a new process serves
        log.debug("worker for %s stopped", device)

    def _next_item(self) -> _WorkItem | object:
        """The queue's next item; with idle work, `_IDLE` whenever the queue stayed empty for IDLE_CHECK_S."""
        if self._idle is None:
            return self._work.get()
        try:
            return self._work.get(timeout=IDLE_CHECK_S)
        except queue.Empty:
            return _IDLE

    def _run_idle(self, device: str, held: Any) -> bool:
        """The idle work, told to stop once work is queued or the executor closes; what it raises is logged. Whether
        the thread can go on (not once an error left its GPU's CUDA context unusable, as after a job's)."""
        assert self._idle is not None
        try:
            self._idle(held, lambda: self._closed or not self._work.empty())
        except Exception as exc:
            log.exception("idle work on %s failed", device)
            if device.startswith("cuda") and context_lost(exc):
                self._post(self._lost, device, exc)
                return False
        return True

    def _execute(self, device: str, held: Any, item: _WorkItem) -> bool:
        """Run one work item on what this thread holds and post its result or exception to the loop; whatever the
        work raises settles its future. Whether the thread can take the next item: not once an error left its GPU's
        CUDA context unusable (every later job would fail the same way)."""
        if item.abandoned.is_set():
            return True  # the caller stopped waiting before the work started
        try:
            result = item.work(held, self._progress_poster(item.on_progress), item.should_cancel)
        except Exception as exc:
            if device.startswith("cuda") and context_lost(exc):
                self._post(self._lost, device, exc)  # first: it no longer counts once its job's failure frees a slot
                self._post(settle, item.future, None, exc)
                return False
            self._post(settle, item.future, None, exc)
        except BaseException as exc:  # SystemExit, GeneratorExit, a library's own: never let it end the thread
            log.error("work raised %r on %s; the thread serves on", exc, threading.current_thread().name, exc_info=exc)
            crashed = WorkCrashed(f"the work raised {type(exc).__name__}: {exc}")
            crashed.__cause__ = exc
            self._post(settle, item.future, None, crashed)
        else:
            self._post(settle, item.future, result, None)
        return True

    def _lost(self, device: str, error: BaseException) -> None:
        """On the loop: the worker of `device` stopped because `error` left its CUDA context unusable; it no longer
        counts as a worker, and `on_broken` says why."""
        self.failed_devices[device] = error
        self.on_broken(f"the GPU worker on {device} is unusable until the bot restarts ({_first_line(error)})")

    def _progress_poster(self, on_progress: ProgressFn | None) -> ProgressFn:
        """A progress function for the worker thread that forwards (step, total, *extra) to the event loop."""
        if on_progress is None:
            return _ignore_progress
        return lambda step, total, *extra: self._post(report_progress, on_progress, step, total, *extra)

    def _post(self, callback: Callable[..., None], *args: Any) -> None:
        """Schedule `callback(*args)` on the event loop from a worker thread."""
        assert self._loop is not None
        try:
            self._loop.call_soon_threadsafe(callback, *args)
        except RuntimeError:
            log.warning("event loop is closed; dropped a %s call from a worker thread", callback.__name__)


def operator_must_fix(error: BaseException | None) -> bool:
    """Whether a load failure is the operator's to fix, the same on every device: a style that does not fit the model
    (SettingsError) or weights that are missing, damaged or of another network (WeightsError). Others (out of GPU
    memory on one device, a driver error) may leave the other devices serving."""
    return isinstance(error, (SettingsError, WeightsError))


def load_error_of(errors: list[BaseException]) -> BaseException:
    """The load error to report when no device loaded: the operator's, if any device met one (another device's out
    of memory would have met it next), else the first."""
    return next((error for error in errors if operator_must_fix(error)), errors[0])


def settle(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    """Resolve a future on the loop thread unless its awaiter already gave up."""
    if future.done():
        if error is not None:
            log.info("work failed after its caller stopped waiting: %r", error)
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)


def report_progress(on_progress: ProgressFn, step: int, total: int, *extra: Any) -> None:
    """Call a progress callback on the loop thread; a failing callback is logged, never fatal to the job."""
    try:
        on_progress(step, total, *extra)
    except Exception:
        log.exception("progress callback failed at step %d/%d", step, total)


def _ignore_progress(step: int, total: int, *extra: Any) -> None:
    """Progress sink used when the caller passes no callback."""


def _nothing() -> None:
    """The default `on_capacity`."""


def _log_broken(reason: str) -> None:
    """The default `on_broken`: say it loudly (the video service hands it to its stuck-worker path instead)."""
    log.error("%s", reason)


def context_lost(error: BaseException) -> bool:
    """Whether `error`, or an error it was raised from, is a CUDA error after which the process's CUDA context is
    unusable (a device-side assert, an illegal address or instruction, a failed launch): every later CUDA call fails
    with it, and only a new process gets a working context. Told by torch's words for these sticky errors, on a
    RuntimeError or torch >= 2.8's AcceleratorError (one of its subclasses), which also carries CUDA errors that
    leave the context working (an invalid launch configuration, a kernel image missing for this GPU, running out of
    memory): those fail their job alone."""
    torch = sys.modules.get("torch")  # not imported here: work that raised a CUDA error has loaded it
    out_of_memory = getattr(torch, "OutOfMemoryError", None)
    cause: BaseException | None = error
    while cause is not None:
        text = str(cause)
        if out_of_memory is not None and isinstance(cause, out_of_memory):
            return False
        if isinstance(cause, RuntimeError) and "CUDA error" in text and any(words in text for words in _CONTEXT_LOST):
            return True
        cause = cause.__cause__
    return False


def _first_line(error: BaseException) -> str:
    """`Type: the first line of its message`: torch's CUDA errors go on with advice over several lines."""
    lines = str(error).splitlines()
    return f"{type(error).__name__}: {lines[0]}" if lines else type(error).__name__


def either(first: CancelFn, second: CancelFn) -> CancelFn:
    """A cancel check that is true when either check is."""
    return lambda: first() or second()


def _use_device(device: str) -> None:
    """Make `device` this thread's current CUDA device: kernels, streams and CUDA graphs that name no device (the
    fast path's graph capture) then land on this worker's GPU, not on cuda:0."""
    if not device.startswith("cuda:"):
        return
    import torch  # lazily, like _cuda_count

    if torch.cuda.is_available():  # else the factory fails to load on it, with torch's own words
        torch.cuda.set_device(device)


def devices_for(setting: str) -> list[str]:
    """Expand a T2V_DEVICE setting ('cpu', 'cuda', 'cuda:N' or a comma list: bot.settings.device_list) into one
    device string per worker (ValueError for a malformed setting, RuntimeError for `cuda` on a machine without
    GPUs)."""
    return [device for part in device_list(setting)
            for device in (_all_cuda_devices(setting) if part == "cuda" else [part])]


def check_devices(setting: str) -> None:
    """`devices_for`, and every GPU it names present on this machine (RuntimeError naming T2V_DEVICE otherwise)."""
    gpus = [int(device.removeprefix("cuda:")) for device in devices_for(setting) if device != "cpu"]
    if gpus and max(gpus) >= (count := _cuda_count()):
        raise RuntimeError(f"T2V_DEVICE={setting}: this machine has {_gpus(count)}; "
                           + ("set T2V_DEVICE=cpu, or check CUDA_VISIBLE_DEVICES and the NVIDIA driver" if count == 0
                              else f"name cuda:0 to cuda:{count - 1}, or cuda for all of them"))


def _all_cuda_devices(setting: str) -> list[str]:
    """Every GPU torch can see, as 'cuda:0' … 'cuda:N-1'."""
    count = _cuda_count()
    if count == 0:
        raise RuntimeError(f"T2V_DEVICE={setting} asks for every GPU but torch sees none; set T2V_DEVICE=cpu, or "
                           "check CUDA_VISIBLE_DEVICES and the NVIDIA driver")
    return [f"cuda:{i}" for i in range(count)]


def _cuda_count() -> int:
    """How many CUDA GPUs torch sees here."""
    import torch  # lazily: the bot core must import without torch

    return torch.cuda.device_count()


def _gpus(count: int) -> str:
    return "no CUDA GPU" if count == 0 else f"{count} CUDA GPU{'s' if count > 1 else ''}"
