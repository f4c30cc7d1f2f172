"""The bot tests' shared fakes (the clocks the tests move are in tests/clocks.py): a timer the test fires, JobEvents
that record, pipelines that stand in for t2v's, the request values the service tests use, and the environment of a
`python -m bot` child (`child_env`). Fixtures built on them are in conftest.py.

Nothing here sleeps: fakes wait on events the test sets, and a wait that should be instant fails after WAIT.
"""

from __future__ import annotations

import asyncio
import functools
import io
import logging
import os
import re
import subprocess
import sys
import threading
import time
import types
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from types import SimpleNamespace
from typing import Any, TypeVar

import av
import numpy as np

from bot.gpu.models import Models
from bot.gpu.styles import Style
from bot.jobs.events import Delivered
from bot.jobs.spec import JobSpec, Requester
from bot.settings import Settings
from storage import JobRecord, JobState
from t2v import encode_mp4
from t2v.errors import GenerationCancelled
from t2v.preview import preview_due
from t2v.request import GenerationResult
from tests.clocks import NOW
from tests.fakediscord import (
    DEFAULT_ATTACHMENT_LIMIT,
    FakeChannel,
    FakeDiscord,
    FakeMessage,
    FakeRole,
    FakeUser,
    InteractionHandle,
)
from tests.fakediscord.interactions import command_data, interaction_payload

T = TypeVar("T")
ROOT = Path(__file__).resolve().parents[2]
WAIT = 10.0  # seconds before a wait that should be instant fails the test instead of hanging it
START_S = 120.0  # for a `python -m bot` child to start: it imports torch and loads the model, slow on 2 busy cores
SETTING_NAMES = frozenset(name.upper() for name in Settings.model_fields)  # the environment variables the bot reads
PROMPTS = [
    "A panda eating bamboo on a rock.",
    "A red fox running through fresh snow at dawn.",
    "A sailboat crossing a calm bay at sunset.",
    "A hot air balloon drifting over green hills.",
    "An old steam train crossing a stone bridge.",
    "A hummingbird drinking from a purple flower.",
    "Waves crashing against a lighthouse in a storm.",
]


# --- timers ----------------------------------------------------------------------------------------------------


class Timers:
    """The service's time-limit timer: each `sleep(s)` waits until the test fires it (`fire()`: the oldest)."""

    def __init__(self) -> None:
        self.waiting: list[tuple[float, asyncio.Event]] = []
        self._armed = asyncio.Condition()

    async def sleep(self, seconds: float) -> None:
        event = asyncio.Event()
        async with self._armed:
            self.waiting.append((seconds, event))
            self._armed.notify_all()
        await event.wait()

    async def armed(self) -> float:
        """Wait for a timer to be armed; the oldest one's seconds (it goes on waiting)."""
        async with self._armed:
            await asyncio.wait_for(self._armed.wait_for(lambda: self.waiting), WAIT)
            return self.waiting[0][0]

    async def fire(self) -> float:
        """Wait for a timer to be armed, then let the oldest one run out; its seconds."""
        seconds = await self.armed()
        async with self._armed:
            _, event = self.waiting.pop(0)
        event.set()
        return seconds


# --- what the service is asked and what it says ---------------------------------------------------------------------


def requester(user_id: int = 1, **fields: Any) -> Requester:
    """A user in channel 500 of guild 600, answering through an interaction token."""
    values = {"channel_id": 500, "guild_id": 600, "interaction_token": f"token-{user_id}", "application_id": 700}
    return Requester(user_id, f"user{user_id}", **{**values, **fields})


def job_row(job_id: int, **fields: Any) -> JobRecord:
    """A queued job's row as the repository gives it (user 1 in channel 500 of guild 600), without a database."""
    values: dict[str, Any] = {
        "user_id": 1, "user_name": "user1", "guild_id": 600, "channel_id": 500, "prompt": f"prompt {job_id}",
        "negative_prompt": "", "params": {}, "seed": None, "state": JobState.QUEUED, "refusal_reason": None,
        "error": None, "created_at": NOW, "started_at": None, "finished_at": None, "queue_wait_s": None,
        "gpu_s": None, "output_bytes": None, "attempts": 0, "cancel_requested": False, "interaction_token": None,
        "application_id": None, "status_message_id": None, "result_message_id": None}
    return JobRecord(job_id, **{**values, **fields})


def spec(prompt: str = PROMPTS[0], **fields: Any) -> JobSpec:
    """A /video of 3 steps and 2 frames unless told otherwise (`aspect`, `private` and the request's fields)."""
    return JobSpec.video(prompt, **{"steps": 3, "frames": 2, **fields})


class Events:
    """A JobEvents that records every call and lets the test wait for a given one ("started", "progress", "done",
    "failed", "cancelled", or "ended": whichever outcome)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, int]] = []
        self.payloads: dict[tuple[str, int], Any] = {}
        self._arrived: defaultdict[tuple[str, int], asyncio.Event] = defaultdict(asyncio.Event)

    def record(self, name: str, job_id: int, payload: Any) -> None:
        self.calls.append((name, job_id))
        self.payloads[name, job_id] = payload
        self._arrived[name, job_id].set()
        if name in ("done", "failed", "cancelled", "cancelled by a moderator", "cancelled by a block",
                    "cancelled by the server's removal"):
            self._arrived["ended", job_id].set()

    async def wait(self, name: str, job_id: int) -> Any:
        await asyncio.wait_for(self._arrived[name, job_id].wait(), WAIT)
        return self.payloads.get((name, job_id))

    def of(self, job_id: int) -> list[str]:
        """A job's events in order, a run of progress events shown once."""
        names = [name for name, job in self.calls if job == job_id]
        return [name for i, name in enumerate(names) if name != "progress" or i == 0 or names[i - 1] != "progress"]

    def started(self) -> list[int]:
        return [job for name, job in self.calls if name == "started"]

    async def job_started(self, job: JobRecord) -> None:
        self.record("started", job.id, job)

    async def job_progress(self, job: JobRecord, step: int, total: int, *preview: Any) -> None:
        self.record("progress", job.id, (step, total))

    async def job_done(self, delivered: Delivered) -> None:
        self.record("done", delivered.job.id, delivered)

    async def job_failed(self, job: JobRecord, message: str) -> None:
        self.record("failed", job.id, message)

    async def job_cancelled(self, job: JobRecord) -> None:
        self.record("cancelled", job.id, job)

    async def job_cancelled_by_moderator(self, job: JobRecord) -> None:
        self.record("cancelled by a moderator", job.id, job)

    async def job_cancelled_by_block(self, job: JobRecord) -> None:
        self.record("cancelled by a block", job.id, job)

    async def job_cancelled_by_server_removal(self, job: JobRecord) -> None:
        self.record("cancelled by the server's removal", job.id, job)


class BrokenEvents(Events):
    """Events whose every Discord call fails after being recorded, like a Discord outage."""

    def record(self, name: str, job_id: int, payload: Any) -> None:
        super().record(name, job_id, payload)
        raise ConnectionError("Discord is down")


async def soon(awaitable: Awaitable[T]) -> T:
    """Await what should be instant, failing the test after WAIT instead of hanging it."""
    return await asyncio.wait_for(awaitable, WAIT)


def recording_removals(fake: FakeDiscord, monkeypatch: Any, owner: type, method: str) -> list[int]:
    """The ids `owner.method(repo, id, *, guild_id)` (a repository's removal) is called with from now on, in order;
    each call wakes `fake`'s waiters, so a test can wait for a removal the bot makes of its own accord."""
    removed: list[int] = []
    remove = getattr(owner, method)

    async def removing(repo: Any, key: int, *, guild_id: int) -> bool:
        found = await remove(repo, key, guild_id=guild_id)
        removed.append(key)
        fake.notify()
        return found

    monkeypatch.setattr(owner, method, removing)
    return removed


class HeldWrite:
    """One of a repository's job writes (`mark_running`, ...) held for one job, as a database slow to take it: each
    call for that job is made (`reached`), then waits until the test sets `release`; other jobs' calls go through."""

    def __init__(self, repo: Any, method: str, job_id: int) -> None:
        self.release = asyncio.Event()
        self.calls = 0
        self._called = asyncio.Condition()
        write = getattr(repo, method)

        async def held(called_for: int, *args: Any, **kwargs: Any) -> Any:
            if called_for == job_id:
                async with self._called:
                    self.calls += 1
                    self._called.notify_all()
                await self.release.wait()
            return await write(called_for, *args, **kwargs)

        setattr(repo, method, held)

    async def reached(self, calls: int = 1) -> None:
        """Until the write was called `calls` times for the job (each waiting for the release)."""
        async with self._called:
            await asyncio.wait_for(self._called.wait_for(lambda: self.calls >= calls), WAIT)


def crossing(monkeypatch: Any, owner: Any, method: str, calls: int = 2) -> None:
    """`owner.method` (a repository's, say) held at each call until `calls` calls have been made: presses that meet
    there have all looked at the database before any of them writes, as two presses at the same moment do."""
    arrived, all_in = [0], asyncio.Event()
    call = getattr(owner, method)

    async def crossed(*args: Any, **kwargs: Any) -> Any:
        arrived[0] += 1
        if arrived[0] >= calls:
            all_in.set()
        await asyncio.wait_for(all_in.wait(), WAIT)
        return await call(*args, **kwargs)

    monkeypatch.setattr(owner, method, crossed)


def fake_torch(gpus: int) -> types.ModuleType:
    """A stand-in torch for sys.modules whose CUDA has `gpus` devices in use, device i with 1000·(i + 1) bytes
    allocated and 4000·(i + 1) reserved."""
    torch = types.ModuleType("torch")
    torch.cuda = SimpleNamespace(  # type: ignore[attr-defined]
        is_available=lambda: gpus > 0, is_initialized=lambda: gpus > 0, device_count=lambda: gpus,
        memory_allocated=lambda i: 1000 * (i + 1), memory_reserved=lambda i: 4000 * (i + 1))
    return torch


# --- pipelines ----------------------------------------------------------------------------------------------------


def held(pipeline: Any) -> Models:
    """What a worker holds when its model is `pipeline` (a Models is taken as it is)."""
    return pipeline if isinstance(pipeline, Models) else Models(pipeline)


class FakePipeline:
    """Stands in for t2v.VideoPipeline: black 64x64 frames; after each step it holds while `hold` is clear (a cancel
    is seen without the release, like at a real step boundary, unless `deaf_while_held`: then only the release lets
    the step end, for a test that looks at a cancelled job before its worker can end it); prompts in `fail` raise at
    step 1."""

    def __init__(self) -> None:
        self.hold = threading.Event()
        self.hold.set()
        self.deaf_while_held = False
        self.fail: set[str] = set()
        self.steps_run: dict[str, int] = {}  # prompt -> the last step reported

    def generate(self, request: Any, on_step: Any = None, should_cancel: Any = None, on_preview: Any = None) -> Any:
        for step in range(1, request.steps + 1):
            if should_cancel():
                raise GenerationCancelled(step - 1, request.steps)
            if request.prompt in self.fail:
                raise RuntimeError("CUDA error: device-side assert triggered")
            on_step(step, request.steps)
            self.steps_run[request.prompt] = step
            while not self.hold.wait(0.005):
                if should_cancel() and not self.deaf_while_held:
                    break
        frames = np.zeros((request.frames, 64, 64, 3), np.uint8)
        return GenerationResult(frames, request.seed, {"total_s": 0.25}, is_noise=True)  # a note, as tiny-random's


class ScriptedPipeline:
    """Stands in for t2v.VideoPipeline: records which prompts start, in order; gated prompts run step by step.

    A prompt given a gate waits before each step until the test releases a permit (`gate.release(n)`), or until the
    test opens its gate (`open`: it runs to its end); while waiting it still honours cancellation, like the real
    pipeline between steps. With `previews`, it hands `on_preview` made-up frames on the steps the preview cadence
    asks for, like t2v.
    """

    def __init__(self) -> None:
        self.started: list[str] = []
        self.previews = False
        self.steps_done: dict[str, int] = {}
        self._gates: dict[str, threading.Semaphore] = {}
        self._stepped = threading.Condition()

    def gate(self, prompt: str, permits: int = 0) -> threading.Semaphore:
        self._gates[prompt] = threading.Semaphore(permits)
        return self._gates[prompt]

    def open(self, *prompts: str) -> None:
        """Take these prompts' gates away: one waiting goes on, and each runs to its end."""
        for prompt in prompts:
            self._gates.pop(prompt).release()

    def generate(self, request: Any, latents: Any = None, on_step: Any = None, should_cancel: Any = None,
                 on_preview: Any = None) -> Any:
        self.started.append(request.prompt)
        self._finished(request.prompt, 0)  # step 0: it reached the model (finished_step(prompt, 0) waits for this)
        for step in range(1, request.steps + 1):
            self._hold(request.prompt, should_cancel, step)
            if on_step is not None:
                on_step(step, request.steps)
            if on_preview is not None and self.previews and preview_due(on_preview, step, request.steps):
                grey = (np.arange(request.frames) * 40 + step).astype(np.uint8)  # frame i of step s: 40·i + s
                on_preview(step, request.steps, np.broadcast_to(grey[:, None, None, None], (request.frames, 8, 64, 3)))
            self._finished(request.prompt, step)
        frames = np.zeros((request.frames, request.height, request.width, 3), np.uint8)
        return GenerationResult(frames, request.seed or 0, {"total_s": 0.01})

    async def finished_step(self, prompt: str, step: int) -> None:
        """Until the job with this prompt has finished `step` (waited for on a thread, not the event loop); step 0:
        until it has reached the model (a gated one waits there for its first step)."""

        def wait() -> bool:
            with self._stepped:
                return self._stepped.wait_for(lambda: self.steps_done.get(prompt, -1) >= step, timeout=WAIT)

        assert await asyncio.to_thread(wait), f"{prompt!r} never finished step {step}"

    def _hold(self, prompt: str, should_cancel: Any, step: int) -> None:
        """Before `step`: wait for a permit while the prompt is gated."""
        gate = self._gates.get(prompt)
        while gate is not None and not gate.acquire(timeout=0.01):
            if should_cancel is not None and should_cancel():
                raise GenerationCancelled(step - 1, step)

    def _finished(self, prompt: str, step: int) -> None:
        with self._stepped:
            self.steps_done[prompt] = step
            self._stepped.notify_all()


class InstantPipeline:
    """Records each prompt it renders and answers at once, after reporting every step, with one black frame."""

    def __init__(self) -> None:
        self.prompts: list[str] = []

    def generate(self, request: Any, on_step: Any = None, should_cancel: Any = None, **_: Any) -> GenerationResult:
        self.prompts.append(request.prompt)
        if on_step is not None:
            for step in range(1, request.steps + 1):
                on_step(step, request.steps)
        return GenerationResult(np.zeros((1, 64, 64, 3), np.uint8), request.seed or 0, {"total_s": 0.0})


class StyledPipeline(ScriptedPipeline):
    """A ScriptedPipeline with styles, as t2v's: `set_lora` records each switch (`switches`) and sets
    `styles.active`; `started` records the prompts the model was given (a style's prefix and suffix included)."""

    def __init__(self) -> None:
        super().__init__()
        self.styles = SimpleNamespace(active=None)
        self.switches: list[tuple[str | None, float]] = []
        self.batches: list[tuple[str, ...]] = []

    def set_lora(self, name: str | None, scale: float = 1.0) -> None:
        self.switches.append((name, scale))
        self.styles.active = None if name is None else SimpleNamespace(name=name, scale=scale)

    def generate_batch(self, requests: list[Any], on_step: Any = None, should_cancel: Any = None,
                       on_preview: Any = None) -> list[Any]:
        """A batch, recorded in `batches` (its prompts as the model is given them), rendered one member at a time."""
        self.batches.append(tuple(request.prompt for request in requests))
        return [self.generate(request, on_step=on_step, should_cancel=should_cancel) for request in requests]


STYLES = {  # what a worker holds once STYLES_FILE's styles are loaded (bot.gpu.styles)
    "claymation": Style("claymation", Path("/styles/claymation.safetensors"), 0.8, "claymation style, ",
                        ", stop motion", "Clay figures, stop-motion look"),
    "watercolor": Style("watercolor", Path("/styles/watercolor.safetensors"), 1.0, "", ", watercolor painting",
                        "Soft washes of paint"),
}


def styled_models(pipeline: Any) -> Models:
    """What a worker holds with STYLES loaded into `pipeline`."""
    return Models(pipeline, styles=STYLES)


def write_lora(path: Path, config: Any, seed: int = 0, rank: int = 2) -> Path:
    """A random LoRA in the peft layout (diffusers' names) on the attention projections of the model of `config`,
    written as a safetensors file."""
    import torch  # lazily: only the tests that write LoRA files load torch here
    from safetensors.torch import save_file

    from t2v.weights.lora import targets

    generator = torch.Generator().manual_seed(seed)
    state = {}
    for network, found in targets(config).items():
        for module, target in found.items():
            if not module.endswith(("to_q", "to_v", "q_proj", "v_proj")):
                continue
            out, *rest = target.theirs
            state[f"{network}.{module}.lora_A.weight"] = 0.01 * torch.randn(rank, *rest, generator=generator)
            state[f"{network}.{module}.lora_B.weight"] = 0.01 * torch.randn(out, rank, *[1] * (len(rest) - 1),
                                                                            generator=generator)
    save_file(state, str(path))
    return path


# --- through the fake Discord --------------------------------------------------------------------------------------


async def video(fake: FakeDiscord, prompt: str, user: FakeUser | None = None, **options: object) -> InteractionHandle:
    """Run /video as `user` with the 64×64 test aspect."""
    return await fake.slash("video", {"prompt": prompt, "aspect": "tiny", **options}, user=user)


async def video_answer(fake: FakeDiscord, prompt: str, user: FakeUser,
                       channel: FakeChannel | None = None) -> FakeMessage:
    """Run /video and return its answer once it says more than "thinking" (queued, refused, or a video)."""
    handle = await fake.slash("video", {"prompt": prompt, "aspect": "tiny"}, user=user, channel=channel)
    return await handle.wait_answer(lambda m: not m.loading and m.content != "")


async def command(fake: FakeDiscord, path: str, actor: FakeUser, /, **options: object) -> FakeMessage:
    """Run a slash command as `actor` and return its (private) answer."""
    handle: InteractionHandle = await fake.slash(path, options, user=actor)
    return await handle.wait_answer()


def plain(text: str) -> str:
    """Text as Discord shows it: escapes removed."""
    return re.sub(r"\\(.)", r"\1", text)


def people(fake: FakeDiscord) -> tuple[FakeUser, FakeUser]:
    """A moderator (the server's moderator role) and a member, bob."""
    return fake.make_user(name="mod", roles=[fake.moderator_role]), fake.make_user(name="bob")


async def audit_actions(stack: Any) -> list[tuple[str, bool]]:
    """The server's latest audit rows (a tests.bot.conftest Stack's), newest first: (action, allowed)."""
    return [(row.action, row.allowed) for row in await stack.moderation.repo.latest_audit(25,
                                                                                         guild_id=stack.fake.guild.id)]


async def autocomplete(fake: FakeDiscord, path: str, user: FakeUser, focused: str, **options: object) -> list[str]:
    """The choices the bot offers while `user` types the option `focused` of the command at `path`."""
    data = command_data(fake, path, options, fake.guild)
    leaf = data
    while leaf.get("options") and leaf["options"][0]["type"] in (1, 2):
        leaf = leaf["options"][0]
    for option in leaf["options"]:
        option["focused"] = option["name"] == focused
    payload = interaction_payload(fake, 4, data, user=user, channel=fake.channel, roles=None, permissions=None,
                                  locale="en-US", attachment_size_limit=DEFAULT_ATTACHMENT_LIMIT)
    handle = await fake._send(payload, path, user, DEFAULT_ATTACHMENT_LIMIT)
    callback = await handle.wait_callback()
    assert callback["type"] == 8
    return [choice["value"] for choice in callback["data"]["choices"]]


async def rendering_past_its_token(fake: FakeDiscord, prompt: str) -> tuple[InteractionHandle, FakeUser]:
    """Bob's /video started, and its interaction token refused from then on (as 15 minutes after the command: 401
    Invalid Webhook Token)."""
    bob = fake.make_user(name="bob")
    handle = await video(fake, prompt, user=bob)
    await handle.wait_original(lambda m: m.content.startswith("Starting"))
    fake.expire_token(handle)
    return handle, bob


class LogWaker(logging.Handler):
    """Wakes the fake's waiters on every log record, so a test waits for a log line without polling."""

    def __init__(self, fake: FakeDiscord) -> None:
        super().__init__()
        self.fake = fake

    def emit(self, record: logging.LogRecord) -> None:
        self.fake.notify()


@contextmanager
def woken_by_logs(fake: FakeDiscord, logger: str = "") -> Iterator[None]:
    """While it lasts, each record of `logger` (and of its children; "" for every logger) wakes the fake's waiters,
    so a test waits for a log line without polling."""
    handler = LogWaker(fake)
    logging.getLogger(logger).addHandler(handler)
    try:
        yield
    finally:
        logging.getLogger(logger).removeHandler(handler)


def has_video(message: FakeMessage) -> bool:
    """The message carries the MP4 (not just a live preview)."""
    return any(a.filename.endswith(".mp4") for a in message.attachments)


async def delete_result(fake: FakeDiscord, result: FakeMessage, job_id: int, user: FakeUser, *,
                        confirm: bool = True) -> FakeMessage:
    """🗑 on `result`, then "Delete for good" (or, unless `confirm`, "Keep it") in the private confirmation; what the
    presser is left with: the confirmation's last state, the private result itself, or the refusal."""
    pressed = await fake.click(result, f"video:delete:{job_id}", user=user)
    await pressed.wait_callback()
    asked = pressed.answer
    choice = f"video:delete-{'yes' if confirm else 'no'}:{job_id}:{0 if result.ephemeral else result.id}"
    if asked is None or choice not in asked.custom_ids():
        return await pressed.wait_answer()  # refused: nothing to confirm
    chosen = await fake.click(asked, choice, user=user)
    await chosen.wait_callback()
    return await chosen.wait_answer()


def contents(message: FakeMessage) -> list[str]:
    """Every content the message has shown, oldest first, ending with the current one."""
    return [h["content"] for h in message.history] + [message.content]


def decoded_frames(data: bytes) -> list[tuple[int, int]]:
    with av.open(io.BytesIO(data)) as container:
        return [(frame.width, frame.height) for frame in container.decode(video=0)]


@functools.cache
def tiny_mp4(width: int = 64) -> bytes:
    """Two seconds of a colour sweep, `width`×64 at 8 fps: a real H.264 MP4 as the bot delivers it. Frame t has red
    255·t/15, green rising from left to right, blue 128 (never black)."""
    t = np.linspace(0, 1, 16, dtype=np.float32)[:, None, None, None]
    x = np.linspace(0, 1, width, dtype=np.float32)[None, None, :, None]
    frames = np.concatenate([255 * t * np.ones_like(x), 255 * x * np.ones_like(t), 128 + 0 * t * x], axis=-1)
    return encode_mp4(np.broadcast_to(frames, (16, 64, width, 3)).astype(np.uint8), 8)


class LagMeter:
    """A callback every `period` seconds on the event loop, recording how late each one ran (`lags`, wall seconds)
    and how much CPU the loop's thread spent since the previous one (`busy`, seconds): work done on the loop shows in
    both, the OS descheduling the thread on a shared machine only in `lags`."""

    def __init__(self, period: float = 0.005) -> None:
        self.loop = asyncio.get_running_loop()
        self.period = period
        self.lags: list[float] = []
        self.busy: list[float] = []
        self._cpu = 0.0
        self._handle: asyncio.TimerHandle | None = None

    def start(self) -> None:
        self._cpu = time.thread_time()
        self._schedule()

    def _schedule(self) -> None:
        due = self.loop.time() + self.period
        self._handle = self.loop.call_at(due, self._tick, due)

    def _tick(self, due: float) -> None:
        self.lags.append(self.loop.time() - due)
        cpu = time.thread_time()
        self.busy.append(cpu - self._cpu)
        self._cpu = cpu
        self._schedule()

    def stop(self) -> None:
        assert self._handle is not None
        self._handle.cancel()


def subcommands(definition: dict[str, Any]) -> list[tuple[str, list[dict[str, Any]]]]:
    """Every runnable path under a synced command ("videomod showcase approve"), with its options."""

    def walk(path: str, options: list[dict[str, Any]]) -> list[tuple[str, list[dict[str, Any]]]]:
        groups = [option for option in options if option["type"] in (1, 2)]
        if not groups:
            return [(path, options)]
        return [leaf for group in groups for leaf in walk(f"{path} {group['name']}", group.get("options", []))]

    return walk(definition["name"], definition.get("options", []))


def required(fake: FakeDiscord, options: list[dict[str, Any]], target: FakeUser, *, channel: FakeChannel | None = None,
             role: FakeRole | None = None) -> dict[str, Any]:
    """A valid value for each required option, as the Discord client would send it (users: `target`; channels and
    roles: the given ones, else the default guild's)."""
    values: dict[str, Any] = {}
    for option in (o for o in options if o.get("required")):
        if option.get("choices"):
            values[option["name"]] = option["choices"][0]["value"]
            continue
        values[option["name"]] = {
            3: "x" * max(option.get("min_length", 1), 5), 4: max(option.get("min_value", 1), 1), 5: True,
            6: target, 7: channel or fake.channel, 8: role or fake.moderator_role,
            10: float(option.get("min_value", 1.0)),
        }[option["type"]]
    return values


def this_tree(env: dict[str, str]) -> dict[str, str]:
    """`env` for a `python -m bot` child that imports this checkout's packages, wherever its working directory."""
    return {**env, "PYTHONPATH": os.pathsep.join([str(ROOT), *filter(None, [env.get("PYTHONPATH")])])}


def child_env(**settings: str | None) -> dict[str, str]:
    """The environment of a `python -m bot` child: this process's without any of the bot's settings (SETTING_NAMES),
    then `settings` (NAME=value; None leaves NAME out), importing this checkout's packages (`this_tree`)."""
    env: dict[str, str | None] = {key: value for key, value in os.environ.items() if key.upper() not in SETTING_NAMES}
    env.update(settings)
    return this_tree({key: value for key, value in env.items() if value is not None})


CTRL_C_WHILE_IMPORTING = """
import runpy, signal, sys

class CtrlC:
    def find_spec(self, name, path=None, target=None):
        if name == {module!r}:
            signal.raise_signal(signal.SIGINT)

sys.meta_path.insert(0, CtrlC())
sys.argv = {argv!r}
runpy.run_module({argv[0]!r}, run_name="__main__", alter_sys=True)
"""


def interrupted_while_importing(argv: list[str], module: str, cwd: Path,
                                env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """`python -m ARGV[0] ARGV[1:]` in a child that presses Ctrl-C itself (signal.raise_signal) as `module` is looked
    for, so nothing depends on timing; its exit status and output."""
    code = CTRL_C_WHILE_IMPORTING.format(module=module, argv=argv)
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=START_S)


def sparse_file(path: Path, gib: float, used: float | None = None) -> Path:
    """A compile-cache file of `gib` GiB (sparse: nothing on disk), last used at `used` (seconds since the epoch;
    None: now), its folders made."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as file:
        file.truncate(int(gib * 2**30))
    if used is not None:
        os.utime(path, (used, used))
    return path


@asynccontextmanager
async def bot_child(cwd: Path, env: dict[str, str]) -> AsyncIterator[asyncio.subprocess.Process]:
    """`python -m bot` in `cwd` with `env`, its log on a pipe (`stderr`), for the block; killed if it still runs at
    the block's end (a failed assertion, a timeout), and waited for."""
    child = await asyncio.create_subprocess_exec(sys.executable, "-m", "bot", cwd=cwd, env=env,
                                                 stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
                                                 stderr=asyncio.subprocess.PIPE)
    try:
        yield child
    finally:
        if child.returncode is None:
            child.kill()
        await child.wait()
