"""The Ray executor on a local Ray cluster on the CPU: two "GPU" workers (a custom resource), the tiny-random model.

The cluster starts once for the module. A `Gate` actor holds jobs whose prompt starts with "Hold" before their first
step until the test opens it, so the tests can fill the queue or kill a worker while a job is known to be running.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import ray

from bot.app import build_executor
from bot.errors import ServiceUnavailable, SettingsError, WorkerLost
from bot.gpu.executor import CancelToken
from bot.gpu.models import Models
from bot.gpu.ray_executor import PipelineWorker, RayExecutor
from bot.gpu.source import ModelSource
from bot.jobs.queue import FairQueue
from bot.jobs.service import VideoService
from bot.jobs.spec import Requester
from bot.moderation.policy import PolicyGate
from bot.settings import load_settings
from storage import JobState, Repository, create_engine, migrate
from t2v import TINY_RANDOM, GenerationCancelled, GenerationRequest
from t2v.errors import WeightsError
from tests.bot.helpers import ROOT, WAIT, Events, FakePipeline, spec

RESOURCE = "fake_gpu"
HOLD = "Hold on: "  # prompts starting so wait at the gate
PROMPTS = ["A panda eating bamboo on a rock.", "A red fox running through fresh snow at dawn.",
           "A sailboat crossing a calm bay at sunset.", "A hot air balloon drifting over green hills.",
           "An old steam train crossing a stone bridge.", "A hummingbird drinking from a purple flower."]

ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the workers cannot import this test module


@ray.remote(num_cpus=0)
class Gate:
    """A gate the workers wait at until the test opens it."""

    def __init__(self) -> None:
        self.opened = asyncio.Event()

    async def wait(self, timeout: float) -> bool:
        try:
            await asyncio.wait_for(self.opened.wait(), timeout)
        except TimeoutError:
            return False
        return True

    def open(self) -> None:
        self.opened.set()


class GatedPipeline:
    """The tiny-random pipeline; "Hold" prompts wait at the gate first (still honouring cancellation), and every
    result notes the worker's process id."""

    def __init__(self, pipeline: Any, gate: Any) -> None:
        self.pipeline, self.gate, self.config = pipeline, gate, pipeline.config

    def generate(self, request: Any, on_step: Any = None, should_cancel: Any = None, on_preview: Any = None) -> Any:
        if request.prompt.startswith(HOLD):
            while not ray.get(self.gate.wait.remote(0.05)):
                if should_cancel():
                    raise GenerationCancelled(0, request.steps)
        result = self.pipeline.generate(request, on_step=on_step, should_cancel=should_cancel)
        return SimpleNamespace(frames=result.frames, seed=result.seed, timings=result.timings,
                               notes=[*result.notes, f"pid {os.getpid()}"])


class GatedSource:
    """What each worker loads: the tiny-random model behind the gate."""

    def __init__(self, gate: Any) -> None:
        self.gate = gate

    def __call__(self, device: str) -> Models:
        return Models(GatedPipeline(ModelSource(TINY_RANDOM)(device).pipeline, self.gate))


@pytest.fixture(scope="module")
def cluster() -> Iterator[None]:
    """A local Ray with two units of the custom resource (the "GPUs") for the whole module."""
    ray.init(num_cpus=4, resources={RESOURCE: 2}, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"PYTHONPATH": str(ROOT)}})  # the workers import this checkout's bot
    yield
    ray.shutdown()


@pytest.fixture
async def gate(cluster: None) -> AsyncIterator[Any]:
    gate = Gate.remote()
    yield gate
    gate.open.remote()  # nothing may stay held when the test ends



@dataclass
class Service:
    """A video service on the Ray executor, with its events and a signal for a worker coming back."""

    service: VideoService
    executor: RayExecutor
    events: Events
    repo: Repository
    capacity: asyncio.Event

    async def submit(self, user_id: int, prompt: str, **options: Any) -> int:
        requester = Requester(user_id, f"user{user_id}", channel_id=1, guild_id=1, interaction_token="t",
                              application_id=1, upload_limit=10 * 2**20)
        asked = spec(prompt, **{"steps": 2, "sizes": self.service.model.size, **options})  # the tiny model's 64²
        submitted = await self.service.submit(requester, asked)
        return submitted.job.id

    def pid(self, job_id: int) -> int:
        """The worker process that rendered a delivered job (GatedPipeline notes it)."""
        notes = self.events.payloads["done", job_id].notes
        return int(next(note for note in notes if note.startswith("pid ")).split()[1])


@asynccontextmanager
async def serving(source: Any, gate: Any, path: Path, *, workers: int = 2, **options: Any) -> AsyncIterator[Service]:
    """A video service on `workers` Ray workers loading `source`, its database at `path`; stopped at the end."""
    engine = create_engine(f"sqlite+aiosqlite:///{path / 'videobot.db'}")
    await migrate(engine)
    executor = RayExecutor(source, workers=workers, resource=RESOURCE, device="cpu")
    events, repo = Events(), Repository(engine)
    service = VideoService(repo, PolicyGate(), FairQueue(3, 100), executor, events, **options)
    await asyncio.wait_for(service.start(), 6 * WAIT)
    capacity = asyncio.Event()
    executor.on_capacity = lambda: (capacity.set(), service.dispatcher.wake())  # the service's hook, observed too
    try:
        yield Service(service, executor, events, repo, capacity)
    finally:
        gate.open.remote()
        await asyncio.wait_for(service.stop(), 6 * WAIT)
        await engine.dispose()


@pytest.fixture
async def ray_service(gate: Any, tmp_path: Path) -> AsyncIterator[Service]:
    async with serving(GatedSource(gate), gate, tmp_path) as service:
        yield service


async def test_jobs_of_several_users_are_spread_over_both_workers_in_fair_order(ray_service, gate):
    s = ray_service
    held = [await s.submit(8, HOLD + PROMPTS[0]), await s.submit(9, HOLD + PROMPTS[1])]
    for job_id in held:
        await s.events.wait("started", job_id)  # both workers are busy now
    a = [await s.submit(1, prompt) for prompt in PROMPTS[:3]]
    b = [await s.submit(2, prompt) for prompt in PROMPTS[3:5]]
    c = [await s.submit(3, PROMPTS[5])]
    await gate.open.remote()
    for job_id in held + a + b + c:
        await s.events.wait("done", job_id)
    started = s.events.started()
    assert set(started[:2]) == set(held)  # the two held ones start together, in either order
    fair = [a[0], b[0], c[0], a[1], b[1], a[2]]
    # each free worker takes the next job in fair order, but two units dispatched together announce their start
    # after their own database write, in either order: a job starts at most one place from its fair one
    assert sorted(started[2:]) == sorted(fair)
    assert all(abs(started[2:].index(job_id) - place) <= 1 for place, job_id in enumerate(fair)), started
    workers = {info["pid"] for info in s.executor.worker_info().values()}
    assert len(workers) == 2
    assert {s.pid(job_id) for job_id in held} == workers  # one held job per worker
    assert {s.pid(job_id) for job_id in a + b + c} == workers  # and the queue was served by both
    assert sum(s.executor.served().values()) == 8 + 1  # and the service's question at start: which model is loaded
    assert s.events.payloads["progress", c[0]] == (2, 2)  # steps reported from the worker process, up to the last
    delivered = s.events.payloads["done", c[0]]
    assert delivered.video[4:8] == b"ftyp"  # the MP4 came back from the worker process


async def test_killing_a_worker_mid_job_retries_the_job_on_the_other(ray_service, gate):
    s = ray_service
    job_id = await s.submit(1, HOLD + PROMPTS[0])
    await s.events.wait("started", job_id)
    [busy] = s.executor.busy_workers()
    victim = s.executor.worker_info()[busy]["pid"]
    os.kill(victim, signal.SIGKILL)
    await asyncio.wait_for(s.capacity.wait(), 6 * WAIT)  # Ray restarted the dead actor and it loaded again
    assert s.executor.workers == 2
    await gate.open.remote()
    delivered = await s.events.wait("done", job_id)
    assert s.pid(job_id) != victim and delivered.video[4:8] == b"ftyp"
    assert s.events.started() == [job_id]  # retried inside the executor: one start, one delivery, no failure
    assert (await s.repo.get_job(job_id)).state == JobState.DONE


async def test_cancellation_reaches_a_running_remote_job(ray_service, gate):
    s = ray_service
    job_id = await s.submit(1, HOLD + PROMPTS[0])
    await s.events.wait("started", job_id)
    await s.service.cancel(1, job_id)
    cancelled = await s.events.wait("cancelled", job_id)  # the gate is still shut: only the cancel ended it
    assert cancelled.state == JobState.CANCELLED
    after = await s.submit(1, PROMPTS[1])  # the worker is free again
    await s.events.wait("done", after)


async def test_a_model_that_fails_to_load_on_every_worker_refuses_work(cluster):
    executor = RayExecutor(ModelSource("/nonexistent/model"), workers=2, resource=RESOURCE, device="cpu")
    await asyncio.wait_for(executor.start(), 6 * WAIT)
    try:
        assert executor.workers == 0 and "nonexistent" in str(executor.load_error)
        assert isinstance(executor.load_error, WeightsError)  # the operator's, as its one line: the start stops
        with pytest.raises(ServiceUnavailable, match="failed to load"):
            executor.submit(lambda pipeline, progress, cancel: None)
    finally:
        await executor.close()


class MisfitStyleSource:
    """A worker's load that finds a required style that does not fit the model (bot.gpu.styles.load_styles)."""

    LINES = ("STYLES_FILE [clay] file /styles/clay.safetensors does not fit the model: unet.no_such_block.to_q",)

    def __call__(self, device: str) -> Models:
        raise SettingsError(list(self.LINES))


async def test_a_required_style_that_does_not_fit_reaches_the_bot_as_its_one_line(cluster):
    executor = RayExecutor(MisfitStyleSource(), workers=2, resource=RESOURCE, device="cpu")
    await asyncio.wait_for(executor.start(), 6 * WAIT)
    try:
        assert executor.workers == 0 and isinstance(executor.load_error, SettingsError)
        assert executor.load_error.lines == list(MisfitStyleSource.LINES)  # not Ray's traceback text: the start's line
    finally:
        await executor.close()


async def test_asking_for_more_workers_than_the_cluster_has_is_a_clear_error(cluster):
    executor = RayExecutor(ModelSource(TINY_RANDOM), workers=3, resource=RESOURCE, device="cpu")
    await executor.start()
    assert executor.workers == 0
    assert str(executor.load_error) == (f"the Ray cluster has 2 {RESOURCE} but 3 workers were asked for "
                                        "(RAY_WORKERS=3)")
    await executor.close()


@pytest.mark.parametrize(("address", "line"), [
    ("10.0.0.5:6379", "the Ray cluster at 10.0.0.5:6379 has no tpu_slice for the workers (RAY_WORKER_RESOURCE="
                      "tpu_slice): start a Ray node on each GPU host with `ray start --address=10.0.0.5:6379 "
                      "--resources='{\"tpu_slice\": 1}'`, then restart the bot; `ray status` lists what the cluster "
                      "has"),
    (None, "the Ray the bot started on this host has no tpu_slice for the workers (RAY_WORKER_RESOURCE=tpu_slice): set "
           "RAY_ADDRESS to the head of a cluster whose GPU hosts have joined it (docs/scale-out.md), or "
           "T2V_EXECUTOR=local"),
    ("local", "the Ray the bot started on this host has no tpu_slice"),  # ray.init's word for a Ray of its own
    ("auto", "the Ray cluster at auto has no tpu_slice for the workers (RAY_WORKER_RESOURCE=tpu_slice): start a Ray "
             "node on each GPU host with `ray start --address=HEAD:6379 "),  # not --address=auto: that finds no head
])
async def test_a_cluster_without_the_resource_says_how_to_give_it_some(cluster, address, line):
    # RAY_WORKERS=0: one per unit; Ray is up already (the module's cluster), so the address is not joined
    executor = RayExecutor(ModelSource(TINY_RANDOM), address=address, resource="tpu_slice", device="cpu")
    await executor.start()
    assert executor.workers == 0 and str(executor.load_error).startswith(line)
    await executor.close()


def test_the_settings_pick_the_ray_executor_without_sending_the_token():
    settings = load_settings({"DISCORD_TOKEN": "a.secret-token.x", "T2V_MODEL": "tiny-random", "T2V_ALLOW_TINY": "1",
                              "T2V_EXECUTOR": "ray", "RAY_WORKER_RESOURCE": RESOURCE, "RAY_WORKERS": "2",
                              "T2V_DEVICE": "cpu", "STATUS_EDIT_INTERVAL_S": "10"}, env_file=None)
    executor = build_executor(settings)
    assert isinstance(executor, RayExecutor)
    assert executor._factory == ModelSource.of(settings) and "secret-token" not in repr(vars(executor))
    assert executor._factory.preview_interval_s == 10.0  # the actors' previews as throttled as the status edits
    assert (executor._count, executor._resource, executor._device) == (2, RESOURCE, "cpu")


async def test_a_ray_cluster_that_cannot_be_joined_leaves_generation_off_with_the_reason(monkeypatch):
    import bot.gpu.ray_executor

    never = threading.Event()
    monkeypatch.setattr(bot.gpu.ray_executor, "CONNECT_TIMEOUT_S", 0.05)
    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray, "init", lambda **kwargs: never.wait())  # what Ray does where nothing answers
    executor = RayExecutor(ModelSource(TINY_RANDOM), address="10.0.0.9:6379")
    await executor.start()
    assert str(executor.load_error) == ("could not start or join the Ray cluster at 10.0.0.9:6379 (RAY_ADDRESS): "
                                        "nothing answered within 0.05 s")
    never.set()
    refusing = RayExecutor(ModelSource(TINY_RANDOM), address="ray://nowhere:10001")
    monkeypatch.setattr(ray, "init", lambda **kwargs: (_ for _ in ()).throw(ConnectionError("refused")))
    await refusing.start()
    assert "the Ray cluster at ray://nowhere:10001 (RAY_ADDRESS): refused" in str(refusing.load_error)
    with pytest.raises(ServiceUnavailable, match="could not start or join"):
        refusing.submit(lambda models, progress, cancel: None)


async def test_a_stop_while_ray_has_not_answered_ends_the_wait_at_once(monkeypatch):
    """SIGTERM during the join (CONNECT_TIMEOUT_S, two minutes) stops the bot now, not when the wait ends."""
    loop, joining, never = asyncio.get_running_loop(), asyncio.Event(), threading.Event()

    def init(**kwargs: Any) -> None:  # on start()'s joining thread, once start() waits on Ray's answer
        loop.call_soon_threadsafe(joining.set)
        never.wait()

    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray, "init", init)
    executor = RayExecutor(ModelSource(TINY_RANDOM), address="10.0.0.9:6379")
    starting = asyncio.create_task(executor.start())
    await asyncio.wait_for(joining.wait(), WAIT)  # until start() waits on Ray's answer
    await executor.close()
    await asyncio.wait_for(starting, 5)  # the join's own limit is 120 s
    assert executor.load_error is None and executor.workers == 0
    never.set()


@pytest.mark.parametrize("restarted", [False, True], ids=["first-start", "restarted"])
def test_a_restarted_worker_warms_up_before_it_answers_and_a_first_one_leaves_that_to_the_bot(monkeypatch, restarted):
    pipeline = FakePipeline()
    warm_up = GenerationRequest(prompt="A warm-up render.", steps=1, frames=2, width=64, height=64, seed=1)
    context = SimpleNamespace(was_current_actor_reconstructed=restarted)
    monkeypatch.setattr("bot.gpu.ray_executor.ray.get_runtime_context", lambda: context)

    PipelineWorker(lambda device: Models(pipeline, warm_up=warm_up), "cuda:0")

    assert pipeline.steps_run == ({"A warm-up render.": 1} if restarted else {})


class SlowToRestartSource(GatedSource):
    """The gated model at once; once Ray has restarted the worker, only after the gate opens (a host reloading 15 GB
    of weights for minutes, or one that never comes back)."""

    def __call__(self, device: str) -> Models:
        while ray.get_runtime_context().was_current_actor_reconstructed and not ray.get(self.gate.wait.remote(1.0)):
            pass
        return super().__call__(device)


def _exit_worker(models: Any, progress: Any, should_cancel: Any) -> None:
    """Work that kills the worker process running it."""
    os._exit(1)


def _no_work(models: Any, progress: Any, should_cancel: Any) -> None:
    """Work that does nothing."""


def lined(executor: RayExecutor) -> asyncio.Event:
    """Set once a worker has died under its work, which is back in the executor's line (or failed)."""
    event, lost = asyncio.Event(), executor._lost

    def losing(*args: Any) -> None:
        lost(*args)
        event.set()

    executor._lost = losing  # type: ignore[method-assign]
    return event


async def test_a_stop_while_ray_restarts_a_dead_worker_does_not_wait_for_it(gate):
    """SIGTERM while a worker loads again after a crash: the stop ends within the supervisor's stop timeout, not after
    LOAD_TIMEOUT_S (30 min), when systemd or Docker would have killed the bot mid-stop."""
    executor = RayExecutor(SlowToRestartSource(gate), workers=2, resource=RESOURCE, device="cpu")
    await asyncio.wait_for(executor.start(), 6 * WAIT)
    try:
        with pytest.raises(WorkerLost):  # it killed both workers: both are restarting now, held at the gate
            await asyncio.wait_for(executor.submit(_exit_worker), 6 * WAIT)
        assert executor.workers == 0
    finally:
        await asyncio.wait_for(executor.close(), 2 * WAIT)


async def test_work_waiting_for_a_restarting_worker_stops_when_asked_and_at_close(gate):
    """Work whose worker died waits in the executor's line while Ray restarts it (minutes for a host reloading its
    weights): a cancel stops it there at once, as it would stop before its first step, and the close stops what is
    still waiting, so no caller waits on work nothing will run."""
    executor = RayExecutor(SlowToRestartSource(gate), workers=1, resource=RESOURCE, device="cpu")
    await asyncio.wait_for(executor.start(), 6 * WAIT)
    back_in_line, token = lined(executor), CancelToken()
    try:
        dying = executor.submit(_exit_worker, should_cancel=token)
        await asyncio.wait_for(back_in_line.wait(), 6 * WAIT)
        assert executor.workers == 0 and not dying.done()  # its only worker is restarting, held at the gate
        behind = executor.submit(_no_work)
        token.cancel()
        with pytest.raises(GenerationCancelled):
            await asyncio.wait_for(dying, WAIT)
        assert not behind.done()
    finally:
        await asyncio.wait_for(executor.close(), 2 * WAIT)
    with pytest.raises(GenerationCancelled):
        behind.result()


async def test_a_stop_queues_a_running_remote_job_again_for_the_next_start(ray_service, gate):
    s = ray_service
    s.service.shutdown_grace_s = 0  # no time to finish: it stops at its next check
    job_id = await s.submit(1, HOLD + PROMPTS[0])
    await s.events.wait("started", job_id)
    await asyncio.wait_for(s.service.stop(), 2 * WAIT)
    job = await s.repo.get_job(job_id)
    assert (job.state, job.attempts) == (JobState.QUEUED, 1)  # the next start restores it, and runs it
    assert s.events.of(job_id) == ["started"]  # nothing said to its user, as on the local executor


async def test_a_stop_queues_again_the_job_waiting_in_line_for_a_restarting_worker(gate, tmp_path, monkeypatch):
    """A stop while a job's worker is being restarted by Ray queues the job again at once, as it does a running one:
    not left `running` for the next start to count as a crash (a second one fails it "interrupted twice"), and the
    stop not held for its grace by work no worker will take."""
    monkeypatch.setattr("bot.jobs.service.CHECKPOINT_S", 3600.0)  # a job that is not settled holds the stop past WAIT
    async with serving(SlowToRestartSource(gate), gate, tmp_path, workers=1, shutdown_grace_s=0) as s:
        back_in_line = lined(s.executor)
        job_id = await s.submit(1, HOLD + PROMPTS[0])
        await s.events.wait("started", job_id)
        os.kill(s.executor.worker_info()["ray-0"]["pid"], signal.SIGKILL)
        await asyncio.wait_for(back_in_line.wait(), 6 * WAIT)
        assert s.executor.workers == 0  # Ray restarts it, held at the gate; the job waits in the executor's line
        await asyncio.wait_for(s.service.stop(), 2 * WAIT)
        job = await s.repo.get_job(job_id)
        assert (job.state, job.attempts) == (JobState.QUEUED, 1)
        assert s.events.of(job_id) == ["started"]


def test_a_worker_captures_while_idle_and_its_next_job_stops_that_and_waits_for_the_gpu(monkeypatch):
    monkeypatch.setattr("bot.gpu.ray_executor.ray.get_runtime_context",
                        lambda: SimpleNamespace(was_current_actor_reconstructed=False))
    monkeypatch.setattr("bot.gpu.ray_executor.IDLE_CHECK_S", 0.001)
    idling, go, told = threading.Event(), threading.Event(), []

    def idle(models: Any, should_stop: Any) -> None:
        if idling.is_set():
            return
        idling.set()
        assert go.wait(WAIT)
        told.append(should_stop())

    pipeline = FakePipeline()
    worker = PipelineWorker(lambda device: Models(pipeline), "cuda:0", idle)
    try:
        assert idling.wait(WAIT)
        ran: list[Any] = []
        job = threading.Thread(target=lambda: ran.append(worker.run(1, lambda models, progress, cancel: models)))
        job.start()
        with worker._changed:
            assert worker._changed.wait_for(lambda: worker._asked == 1, timeout=WAIT)  # it waits for the GPU
        assert not ran
        go.set()
        job.join(WAIT)
        assert told == [True] and ran[0].pipeline is pipeline
    finally:
        worker._stopped.set()
