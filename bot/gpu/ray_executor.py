"""The Ray executor (T2V_EXECUTOR=ray): one Ray actor per GPU of a cluster, each loading the models once.

The queue, fairness, quotas and the database stay in the bot; this module only hands a unit of work (the same
picklable `work(models, progress, should_cancel)` the local executor runs on its threads) to a free actor and
brings its result back (the frames, `bot.gpu.work.Frames`; the bot encodes the MP4). Across the process boundary:

* progress: the actor keeps each job's `(step, total, *extra)` events; the bot long-polls `events(key, seen)`
  (an actor method that waits on a condition until there is something new) and replays them on the event loop;
* cancellation: a `CancelToken` tells the actor at once (`cancel(key)` sets the flag its work polls); any other
  cancel check is polled whenever events arrive, and at least every EVENT_WAIT_S. Work that a cancel finds waiting in
  this executor's line (for a worker Ray is restarting) stops there at once, with the GenerationCancelled its first
  check would raise, so a stop queues its job again as it does a running one; `close()` stops what still waits;
* a worker that dies (its process killed, its node lost) fails the job's call with `RayActorError`: the job goes
  back to the front of this executor's line and runs on the next free worker; a job that loses MAX_LOSSES workers
  fails. Ray restarts the dead actor (up to MAX_RESTARTS times, loading the models again and warming up as the bot's
  start warms every worker up); once it answers, it takes work again and `on_capacity()` tells the dispatcher.

Actors run `max_concurrency=4` threads: one runs the work, the others answer `events`/`cancel` meanwhile; and a thread
of the worker's own captures its compiled shapes' CUDA graphs while no work runs (`idle`: bot.gpu.work.
capture_while_idle, as the local executor's workers do), taking turns with the work on the GPU.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import socket
import threading
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

import ray
from ray.exceptions import ActorUnavailableError, RayActorError, RayTaskError

from bot.errors import ServiceUnavailable, SettingsError, WorkerLost
from bot.gpu.executor import (
    IDLE_CHECK_S,
    CancelFn,
    CancelToken,
    ExecutorBase,
    IdleWork,
    ProgressFn,
    Work,
    load_error_of,
    operator_must_fix,
    settle,
)
from bot.gpu.executor import report_progress as report
from bot.gpu.source import ModelSource
from bot.gpu.work import capture_while_idle, warm_up_work
from bot.settings import GPU_RESOURCE as GPU
from t2v.errors import GenerationCancelled, WeightsError

if TYPE_CHECKING:
    from bot.settings import Settings

log = logging.getLogger(__name__)

T = TypeVar("T")
EVENT_WAIT_S = 5.0  # longest an `events` call waits for news before returning empty (cancel checks poll this often)
CONNECT_TIMEOUT_S = 120.0  # joining the cluster (or starting a local Ray) takes seconds; past this, generation is off
LOAD_TIMEOUT_S = 1800.0  # an actor that has not loaded its pipeline by then counts as failed (and is killed)
MAX_RESTARTS = 3  # times Ray restarts a dead actor before it is gone for good
MAX_LOSSES = 2  # workers a job may lose before it fails with WorkerLost
ENDED_KEPT = 256  # finished job keys an actor remembers, so a late cancel does not leave an entry behind


# --- the actor (runs in the Ray worker process) ------------------------------------------------------------------


@dataclass(eq=False)
class _RemoteJob:
    """One job on an actor: its progress so far, whether it finished, and its cancel flag."""

    events: list[tuple[Any, ...]] = field(default_factory=list)
    finished: bool = False
    cancelled: threading.Event = field(default_factory=threading.Event)


class PipelineWorker:
    """The body of one Ray actor: load the models once, then run work and keep each job's progress for the bot."""

    def __init__(self, factory: Callable[[str], Any], device: str, idle: IdleWork | None = None) -> None:
        self.device = device
        self._load_error: Exception | None = None
        try:
            self.models = factory(device)  # bot.gpu.models.Models
        except (SettingsError, WeightsError) as error:  # kept for info(): Ray hands a creation error over only as
            # text; the operator's to fix (a style, the weights on this worker's host), as one line
            self._load_error, self.models = error, None
        self._changed = threading.Condition()
        self._jobs: dict[int, _RemoteJob] = {}
        self._ended: OrderedDict[int, None] = OrderedDict()  # keys of jobs whose last events were fetched
        self._gpu = threading.Lock()  # the work and the idle work take turns
        self._asked = 0  # runs waiting for the GPU: the idle work stops for them
        self._stopped = threading.Event()  # ends the idle thread (a worker's process simply exits)
        if self.models is not None and ray.get_runtime_context().was_current_actor_reconstructed:
            self._warm_up()
        if self.models is not None and idle is not None:
            threading.Thread(target=self._idle, args=(idle,), name=f"idle-{device}", daemon=True).start()

    def _idle(self, idle: IdleWork) -> None:
        """The worker's idle work, at most every IDLE_CHECK_S while no work runs, told to stop once work waits; what
        it raises is logged (the next job meets a GPU that no longer works, and fails as it would have)."""
        while not self._stopped.wait(IDLE_CHECK_S):
            with self._gpu:
                try:
                    idle(self.models, lambda: self._asked > 0)
                except Exception:
                    log.exception("idle work on %s failed", self.device)

    def _warm_up(self) -> None:
        """A restarted actor's own warm-up render, before it answers: the bot warms each worker up once, at its start
        (bot.jobs.service), and without this the one-off first CUDA work after Ray's restart would be a user's job."""
        try:
            took = warm_up_work()(self.models, lambda *_: None, lambda: False)
        except Exception as error:  # it serves on: the first job pays the start-up work instead
            log.warning("the restarted worker's warm-up render failed (%s: %s)", type(error).__name__, error)
            return
        if took is not None:
            log.info("the restarted worker on %s warmed up in %.1f s", self.device, took)

    def info(self) -> dict[str, Any]:
        """Where this worker runs: process id, host, Ray node and the device its models are on; raises what the
        settings named that did not fit the model (a required style), so the bot can stop in its one line."""
        if self._load_error is not None:
            raise self._load_error
        return {"pid": os.getpid(), "host": socket.gethostname(), "device": self.device,
                "node": ray.get_runtime_context().get_node_id()}

    def run(self, key: int, work: Work[T]) -> T:
        """Run `work` on this worker's models; progress is kept for `events`, `cancel(key)` stops it."""
        with self._changed:
            job = self._job(key)

        def progress(step: int, total: int, *extra: Any) -> None:
            with self._changed:
                job.events.append((step, total, *extra))
                self._changed.notify_all()

        with self._changed:
            self._asked += 1
            self._changed.notify_all()
        try:
            with self._gpu:
                with self._changed:
                    self._asked -= 1
                return work(self.models, progress, job.cancelled.is_set)
        finally:
            with self._changed:
                job.finished = True
                self._changed.notify_all()

    def events(self, key: int, seen: int, wait_s: float = EVENT_WAIT_S) -> tuple[list[tuple[Any, ...]], bool]:
        """The job's events after the first `seen`, waiting up to `wait_s` for one; and whether it has finished.

        The finished job's entry is dropped once its last events are fetched.
        """
        with self._changed:
            if key in self._ended:
                return [], True
            job = self._job(key)
            self._changed.wait_for(lambda: len(job.events) > seen or job.finished, timeout=wait_s)
            news = job.events[seen:]
            if job.finished:
                del self._jobs[key]
                self._ended[key] = None
                while len(self._ended) > ENDED_KEPT:
                    self._ended.popitem(last=False)
            return news, job.finished

    def cancel(self, key: int) -> None:
        """Ask the job to stop at its next check (also when the call overtakes `run`)."""
        with self._changed:
            if key not in self._ended:
                self._job(key).cancelled.set()

    def _job(self, key: int) -> _RemoteJob:
        """The job's entry, made on first mention (`run`, `events` and `cancel` may arrive in any order)."""
        job = self._jobs.get(key)
        if job is None:
            job = self._jobs[key] = _RemoteJob()
        return job


# --- the bot's side ------------------------------------------------------------------------------------------------


@dataclass(eq=False)
class _Worker:
    """One actor as the bot sees it."""

    name: str
    actor: Any
    info: dict[str, Any] = field(default_factory=dict)
    ready: bool = False  # loaded and answering; False while Ray restarts it
    busy: bool = False
    served: int = 0


@dataclass(eq=False)
class _Item:
    """One unit of work between `submit` and its settled future."""

    key: int
    work: Work[Any]
    future: asyncio.Future[Any]
    on_progress: ProgressFn | None
    should_cancel: CancelFn
    losses: int = 0
    worker: _Worker | None = None  # the actor running it now
    cancel_sent: bool = False  # to that actor


class RayExecutor(ExecutorBase):
    """Runs work on Ray actors (one per GPU or per unit of a custom resource); same interface as GPUExecutor."""

    def __init__(
        self,
        factory: Callable[[str], Any],
        *,
        address: str | None = None,
        workers: int = 0,
        resource: str = GPU,
        device: str = "cuda",
        loop: asyncio.AbstractEventLoop | None = None,
        max_restarts: int = MAX_RESTARTS,
    ) -> None:
        super().__init__(loop)
        self._factory, self._address, self._count, self._resource = factory, address, workers, resource
        self._device, self._max_restarts = device, max_restarts
        self._workers: list[_Worker] = []
        self._line: deque[_Item] = deque()  # submitted, waiting for a free worker; retried jobs go first
        self._keys = itertools.count(1)
        self._tasks: set[asyncio.Task[None]] = set()
        self._reviving: set[asyncio.Task[None]] = set()  # of _tasks: waiting for Ray to restart a dead actor
        self._owns_ray = False
        self._factory_ref: Any = None
        self._joining: asyncio.Future[None] | None = None  # ray.init's answer while start() waits for it

    @classmethod
    def from_settings(cls, settings: Settings, loop: asyncio.AbstractEventLoop | None = None) -> RayExecutor:
        """RAY_ADDRESS, RAY_WORKERS and RAY_WORKER_RESOURCE; a GPU worker runs on its GPU, a custom-resource one on
        T2V_DEVICE. Workers get the models to load (`ModelSource`), never the settings."""
        device = "cuda" if settings.ray_worker_resource == GPU else settings.t2v_device.split(",")[0]
        return cls(ModelSource.of(settings), address=settings.ray_address, workers=settings.ray_workers,
                   resource=settings.ray_worker_resource, device=device, loop=loop)

    # --- lifecycle ------------------------------------------------------------------------------------------

    async def start(self) -> None:
        """Join the Ray cluster (or start a local one), start the actors and wait until each has loaded or failed."""
        self._begin()
        if not ray.is_initialized():
            try:
                await self._join_cluster()
            except Exception as error:
                if self._closed:  # a stop (SIGTERM) while Ray had not answered: nothing to report
                    log.info("stopped before Ray answered")
                    return
                where = f"the Ray cluster at {self._address}" if self._address else "a local Ray"
                self.load_error = RuntimeError(f"could not start or join {where} (RAY_ADDRESS): {error}")
                log.error("%s", self.load_error)
                return
        count = self._worker_count()
        if count == 0:
            return
        options: dict[str, Any] = {"max_concurrency": 4, "max_restarts": self._max_restarts, "max_task_retries": 0}
        options.update({"num_gpus": 1} if self._resource == GPU else {"resources": {self._resource: 1}})
        actor_class = ray.remote(PipelineWorker).options(**options)
        self._factory_ref = ray.put(self._factory)  # held here so Ray can restart a dead actor with it
        self._workers = [_Worker(f"ray-{i}", actor_class.remote(self._factory_ref, self._device, capture_while_idle))
                         for i in range(count)]
        await asyncio.gather(*(self._load(worker) for worker in self._workers))
        ready = [w for w in self._workers if w.ready]
        if not ready:
            self.load_error = load_error_of(list(self.failed_devices.values()))
            if not operator_must_fix(self.load_error):  # the operator's: the start stops with it (VideoService.start)
                log.error("no Ray worker could load the pipeline; generation is unavailable: %s", self.load_error)
        else:
            log.info("pipeline loaded on %d Ray workers: %s", len(ready),
                     ", ".join(f"{w.name} ({w.info['host']}, {w.info['device']})" for w in ready))

    async def _join_cluster(self) -> None:
        """`ray.init` on a daemon thread, given up after CONNECT_TIMEOUT_S: Ray waits without end for an address
        where nothing answers, and a thread still waiting must not keep the bot from exiting."""
        assert self._loop is not None
        joined: asyncio.Future[None] = self._loop.create_future()
        self._joining = joined

        def join() -> None:
            try:
                ray.init(address=self._address, include_dashboard=False)
            except Exception as error:
                self._post(settle, joined, None, error)
            else:
                self._post(settle, joined, None, None)

        threading.Thread(target=join, name="ray-init", daemon=True).start()
        try:
            await asyncio.wait_for(joined, CONNECT_TIMEOUT_S)
        except TimeoutError:
            raise TimeoutError(f"nothing answered within {CONNECT_TIMEOUT_S:g} s") from None
        self._owns_ray = True

    def _worker_count(self) -> int:
        """RAY_WORKERS, or the cluster's units of the resource; sets load_error when there are none or too few."""
        available = int(ray.cluster_resources().get(self._resource, 0))
        if available == 0:
            self.load_error = RuntimeError(self._nothing_to_reserve())
        elif self._count > available:
            self.load_error = RuntimeError(f"the Ray cluster has {available} {self._resource} but {self._count} "
                                           f"workers were asked for (RAY_WORKERS={self._count})")
        else:
            return self._count or available
        log.error("%s", self.load_error)
        return 0

    def _nothing_to_reserve(self) -> str:
        """What to do when the cluster has none of the resource: let GPU hosts join it, or join one that has them."""
        lacks = f"no {self._resource} for the workers (RAY_WORKER_RESOURCE={self._resource})"
        if self._address in (None, "local"):  # ray.init() started a Ray of this host's own, which no node joins
            return (f"the Ray the bot started on this host has {lacks}: set RAY_ADDRESS to the head of a cluster whose "
                    "GPU hosts have joined it (docs/scale-out.md), or T2V_EXECUTOR=local")
        head = "HEAD:6379" if "://" in self._address or self._address == "auto" else self._address  # auto: this host's
        counted = "" if self._resource == GPU else f" --resources='{{\"{self._resource}\": 1}}'"  # Ray counts GPUs
        return (f"the Ray cluster at {self._address} has {lacks}: start a Ray node on each GPU host with `ray start "
                f"--address={head}{counted}`, then restart the bot; `ray status` lists what the cluster has")

    async def _load(self, worker: _Worker) -> None:
        """Wait for one actor to load its pipeline; a failure or LOAD_TIMEOUT_S leaves it out."""
        try:
            worker.info = await asyncio.wait_for(_awaitable(worker.actor.info.remote()), LOAD_TIMEOUT_S)
        except (RayActorError, TimeoutError) as error:
            self._drop(worker, error)
            return
        except RayTaskError as error:  # the worker loaded nothing: what the settings name does not fit (a style, the
            # weights on its host)
            self._drop(worker, error.cause if isinstance(error.cause, BaseException) else error)
            return
        worker.ready = True

    def _drop(self, worker: _Worker, error: BaseException) -> None:
        """Give up on an actor for good."""
        worker.ready = False
        self.failed_devices[worker.name] = error
        log.error("Ray worker %s is gone: %s", worker.name, error)
        ray.kill(worker.actor, no_restart=True)

    async def close(self) -> None:
        """Let handed-over work finish, then stop the actors (and the local Ray this executor started); an actor that
        Ray is still restarting is not waited for, and the work waiting for one stops (GenerationCancelled: it never
        started)."""
        if self._closed:
            return
        self._closed = True
        if self._joining is not None and not self._joining.done():  # start() waits up to CONNECT_TIMEOUT_S: end it
            self._joining.set_exception(RuntimeError("the bot is stopping"))
        for task in self._reviving:  # a restarting actor may take LOAD_TIMEOUT_S (or its host never come back): the
            task.cancel()  # stop must not wait for it past the supervisor's stop timeout
        while self._tasks:  # a worker that finishes takes the next work waiting in line: wait for that too
            await asyncio.wait(set(self._tasks))
        self._stop_waiting("the executor closed with no worker to take it")
        for worker in self._workers:
            ray.kill(worker.actor, no_restart=True)
        if self._owns_ray:
            await asyncio.to_thread(ray.shutdown)
        log.info("Ray executor stopped (%d workers)", len(self._workers))

    # --- the interface ----------------------------------------------------------------------------------------

    @property
    def workers(self) -> int:
        """Actors that loaded the pipeline and are answering (not restarting, not gone)."""
        return 0 if self._closed else sum(w.ready for w in self._workers)

    def served(self) -> dict[str, int]:
        """Jobs each worker has finished or failed (not counting ones it died with)."""
        return {w.name: w.served for w in self._workers}

    def busy_workers(self) -> list[str]:
        """Names of the workers running work now."""
        return [w.name for w in self._workers if w.busy]

    def worker_info(self) -> dict[str, dict[str, Any]]:
        """Where each loaded worker runs (pid, host, Ray node, device)."""
        return {w.name: dict(w.info) for w in self._workers if w.info}

    def submit(
        self,
        work: Work[T],
        on_progress: ProgressFn | None = None,
        should_cancel: CancelFn | None = None,
    ) -> asyncio.Future[T]:
        """Hand `work(models, progress, should_cancel)` to the next free actor; cancelling the future stops it."""
        future, abandoned, cancel_fn = self._new_future(should_cancel)
        item = _Item(next(self._keys), work, future, on_progress, cancel_fn)
        for token in (abandoned, should_cancel):
            if isinstance(token, CancelToken):
                token.when_cancelled(lambda: self._post(self._send_cancel, item))
        self._line.append(item)
        self._hand_out()
        return future

    # --- running work on actors ---------------------------------------------------------------------------------

    def _hand_out(self) -> None:
        """Give waiting work to free, ready actors, oldest (or retried) first; skip work whose caller gave up."""
        while self._line:
            worker = next((w for w in self._workers if w.ready and not w.busy), None)
            if worker is None:
                return
            item = self._line.popleft()
            if item.future.done():
                continue
            worker.busy = True
            self._spawn(self._drive(item, worker), f"ray-job-{item.key}")

    def _spawn(self, coroutine: Any, name: str) -> asyncio.Task[None]:
        """Run a task of this executor, kept until it ends (close waits for them)."""
        assert self._loop is not None
        task = self._loop.create_task(coroutine, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _drive(self, item: _Item, worker: _Worker) -> None:
        """Run one item on one actor: relay its progress and cancels, then settle it (or retry it elsewhere)."""
        item.worker, item.cancel_sent = worker, False
        call = worker.actor.run.remote(item.key, item.work)
        if item.should_cancel():
            self._send_cancel(item)
        relay = asyncio.ensure_future(self._relay(item, worker))
        try:
            result = await _awaitable(call)
        except RayTaskError as error:  # the work raised: hand over its own exception
            await _quietly(relay)
            cause = error.cause if isinstance(error.cause, BaseException) else error
            settle(item.future, None, cause)
            worker.served += 1
        except (RayActorError, ActorUnavailableError) as error:
            relay.cancel()
            await _quietly(relay)
            self._lost(worker, item, error)
            return
        except Exception as error:  # e.g. the result or the work's exception could not be unpickled here
            log.exception("job key %d: its result could not be brought back from Ray worker %s", item.key, worker.name)
            await _quietly(relay)
            settle(item.future, None, error)
        else:
            await _quietly(relay)  # progress first, then the result, as on the local executor
            settle(item.future, result, None)
            worker.served += 1
        worker.busy = False
        self._hand_out()

    async def _relay(self, item: _Item, worker: _Worker) -> None:
        """Long-poll the actor for the job's progress and replay it on the loop until the job finishes."""
        seen = 0
        while True:
            news, finished = await _awaitable(worker.actor.events.remote(item.key, seen))
            seen += len(news)
            if item.on_progress is not None:
                for step, total, *extra in news:
                    report(item.on_progress, step, total, *extra)
            if item.should_cancel():
                self._send_cancel(item)
            if finished:
                return

    def _send_cancel(self, item: _Item) -> None:
        """Tell the actor running the item to stop it (once per attempt); an item waiting in line stops at once (one
        on its way to an actor is checked when it gets there)."""
        worker = item.worker
        if worker is None:
            self._stop_waiting("it was cancelled while it waited for a worker", item)
            return
        if item.cancel_sent or not worker.ready:
            return
        item.cancel_sent = True
        worker.actor.cancel.remote(item.key)
        log.info("cancel of job key %d sent to Ray worker %s", item.key, worker.name)

    def _lost(self, worker: _Worker, item: _Item, error: BaseException) -> None:
        """The actor died under the item: retry the item first in line, and wait for Ray to restart the actor."""
        worker.ready = worker.busy = False
        item.losses += 1
        item.worker = None
        log.warning("Ray worker %s died running job key %d (%s)", worker.name, item.key, type(error).__name__)
        if item.should_cancel():  # asked to stop (a cancel, the bot's stop): stopped, not run again
            settle(item.future, None, GenerationCancelled(0, 0))
        elif item.losses >= MAX_LOSSES:
            settle(item.future, None, WorkerLost(f"its GPU worker died {item.losses} times"))
        elif not item.future.done():
            self._line.appendleft(item)
        if not self._closed:
            reviving = self._spawn(self._revive(worker), f"ray-revive-{worker.name}")
            self._reviving.add(reviving)
            reviving.add_done_callback(self._reviving.discard)
        self._hand_out()

    async def _revive(self, worker: _Worker) -> None:
        """Wait for Ray to restart the actor (it loads the pipeline again); then it takes work again."""
        answer = worker.actor.info.options(max_task_retries=-1).remote()  # retried until the restarted actor answers
        try:
            worker.info = await asyncio.wait_for(_awaitable(answer), LOAD_TIMEOUT_S)
        except (RayActorError, ActorUnavailableError, TimeoutError) as error:
            self._drop(worker, error)
            if not any(w.ready for w in self._workers) and self.load_error is None:
                self.load_error = RuntimeError(f"every Ray worker is gone (last: {error})")
                self._fail_waiting()
            return
        if self._closed:
            return
        worker.ready = True
        log.info("Ray worker %s is back (%s, pid %s)", worker.name, worker.info["host"], worker.info["pid"])
        self.on_capacity()
        self._hand_out()

    def _stop_waiting(self, why: str, *items: _Item) -> None:
        """Take these items (all when none are named) out of the line and settle each as GenerationCancelled (what
        its work raises when asked to stop before its first step): the caller records it as stopped, and a job
        stopped by the bot's stop is queued again for the next start."""
        for item in items or list(self._line):
            if item not in self._line:
                continue  # on its way to an actor, or settled
            self._line.remove(item)
            if not item.future.done():
                settle(item.future, None, GenerationCancelled(0, 0))
                log.info("job key %d stopped before it started: %s", item.key, why)

    def _fail_waiting(self) -> None:
        """No worker is left: fail the work still waiting in line."""
        while self._line:
            settle(self._line.popleft().future, None, ServiceUnavailable("every GPU worker is gone"))

    def _post(self, callback: Callable[..., None], *args: Any) -> None:
        """Run `callback(*args)` on the loop (a CancelToken may be cancelled from any thread)."""
        assert self._loop is not None
        if self._loop.is_closed():
            return
        self._loop.call_soon_threadsafe(callback, *args)


def _awaitable(ref: Any) -> asyncio.Future[Any]:
    """A Ray ObjectRef as an asyncio future of the running loop."""
    return asyncio.wrap_future(ref.future())


async def _quietly(task: asyncio.Future[None]) -> None:
    """Wait for a relay task, whatever became of it (its actor may be dead)."""
    try:
        await task
    except (asyncio.CancelledError, RayActorError, ActorUnavailableError):
        pass
    except Exception:
        log.exception("relaying progress from a Ray worker failed")
