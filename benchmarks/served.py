"""What users get: a fixed-seed mix of /video jobs through the bot's own code, timed from the model loaded to each MP4.

The bot's VideoService (admission, fair queue, dispatcher, batching, the time limit), its GPU executor and workers
(`bot.gpu.models.ModelSource.prepare`: t2v's fast path, a shape with nothing compiled rendered eager at once while
`bot.gpu.compiles` compiles it in the background, the default shape and the aspects queued first) and its CPU MP4
encoder, on a SQLite file; the real-size network with seeded random weights (fp16). The gate is the shipped
denylist with the English check left out (the language models are not on the GPU machine).

One run is one fresh process: it starts the service, submits the whole mix at once (a server with a backlog) — as
soon as the service has started (users waiting at the bot's start: the worker's warm-up render, bot.gpu.source, runs
first), or with `--after-warm-up` once that render has ended (a server's later users) — and times from then; waits
for every job, then times the steady standard video (the default /video shape, compiled: median of 3). Run it twice
on one machine — `--run cold` with an empty `--cache`, then `--run warm` on the cache the first left — for the two
halves of the issue's measurement. The mix: 40 jobs of 12 users; each job's aspect uniform over the five, frames 16
(the default) half the time and uniform over 8–32 otherwise, steps uniform over 25–50, the sampler DDIM or
DPM-Solver++ 2M, and a third of the jobs in groups of 2–4 same-shape requests sent together (batched by the bot).

A job's steady compiled time is estimated from the measured steady standard video, scaled by the job's UNet FLOPs
(counted for its exact shape on the meta device) × steps; the UNet is 95% of a standard video (docs/perf-notes.md).
The FLOPs are counted before the service starts: FlopCounterMode hooks every module call of the process while it
counts, and a compile thread that traced the UNet meanwhile failed (served run 7: 9 shapes of its warm half).

GPU:  python benchmarks/served.py --run cold --cache CACHE --out OUT/cold.json
      python benchmarks/served.py --run warm --cache CACHE --out OUT/warm.json
CPU smoke test:  python benchmarks/served.py --tiny --device cpu --jobs 6 --backend eager --run cold --cache /tmp/c
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import random
import statistics
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # `python benchmarks/served.py` from a checkout that is not pip-installed
    sys.path.insert(0, str(ROOT))

import torch  # noqa: E402
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

from bot.gpu import compiles  # noqa: E402
from bot.gpu.compiles import label  # noqa: E402
from bot.gpu.executor import GPUExecutor  # noqa: E402
from bot.gpu.models import ASPECTS, ModelInfo, Models  # noqa: E402
from bot.gpu.source import ModelSource  # noqa: E402
from bot.gpu.work import capture_while_idle  # noqa: E402
from bot.jobs.events import Delivered  # noqa: E402
from bot.jobs.queue import FairQueue  # noqa: E402
from bot.jobs.service import VideoService  # noqa: E402
from bot.jobs.spec import JobSpec, Requester  # noqa: E402
from bot.moderation.policy import PolicyGate  # noqa: E402
from storage import JobRecord, Repository, create_engine, migrate  # noqa: E402
from t2v import TINY_RANDOM, load_pipeline, preflight  # noqa: E402
from t2v.compiled import example_inputs, video_shape  # noqa: E402
from t2v.config import ModelConfig, tiny_config  # noqa: E402
from t2v.loader import assemble, random_state_dicts  # noqa: E402
from t2v.presets import aspect_sizes  # noqa: E402
from t2v.request import SAMPLER_NAMES  # noqa: E402
from t2v.unet import UNet3D  # noqa: E402

log = logging.getLogger("served")

PROMPTS = ["A panda eating bamboo on a rock.", "A red fox running through fresh snow.", "Waves crashing on a cliff.",
           "A hot air balloon over a desert at dawn.", "A cat playing piano in a jazz bar.",
           "Time-lapse of clouds over a mountain lake.", "A paper boat drifting down a rainy street."]
STANDARD = {"frames": 16, "aspect": "1:1", "steps": 50}  # a /video without options
FIRST_VIDEO_GOAL_S, P95_GOAL, WARM_GOAL = 15.0, 2.0, 1.10


@dataclass
class Ask:
    """One /video of the mix."""

    user: int
    prompt: str
    aspect: str
    frames: int
    steps: int
    sampler: str
    seed: int
    group: int | None = None  # requests sent together with the same shape (the bot batches them)


def draw_mix(jobs: int, seed: int, max_frames: int) -> list[Ask]:
    """The fixed-seed mix (see the module docstring)."""
    rng = random.Random(seed)
    mix: list[Ask] = []
    group = 0
    while len(mix) < jobs:
        frames = 16 if rng.random() < 0.5 else rng.randint(min(8, max_frames), max_frames)
        shape = {"aspect": rng.choice(list(ASPECTS)), "frames": min(frames, max_frames),
                 "steps": rng.randint(25, 50), "sampler": rng.choice(SAMPLER_NAMES)}
        size = rng.randint(2, 4) if rng.random() < 0.15 else 1
        size = min(size, jobs - len(mix))
        group += size > 1
        for _ in range(size):
            mix.append(Ask(rng.randint(1, 12), rng.choice(PROMPTS), seed=rng.randrange(2**31),
                           group=group if size > 1 else None, **shape))
    return mix


@dataclass
class Seen:
    """What the benchmark records of one job through the service's events."""

    ask: Ask
    job_id: int = 0
    submitted: float = 0.0
    started: float | None = None
    finished: float | None = None
    outcome: str | None = None
    batch: int = 1  # videos in the unit of work it ran in
    compiled: bool = False  # its shape was compiled when it started
    shape: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


class Recorder:
    """The service's JobEvents: times every start and end on the benchmark's clock."""

    def __init__(self, clock: Any, raw: Path | None = None) -> None:
        self.clock = clock
        self.jobs: dict[int, Seen] = {}
        self.first_done: float | None = None
        self.all_done = asyncio.Event()
        self.service: VideoService | None = None
        self.unet: Any = None
        self.raw = raw  # the mix's raw timings, rewritten as each job ends: a run cut short keeps what it measured
        self.started = self.loaded = 0.0  # the clock at the start and when the model had loaded

    def write_raw(self) -> None:
        """The mix's timings so far to `raw` (if given): every job, ended or not, and the compiles."""
        if self.raw is None:
            return
        ends = [seen.finished for seen in self.jobs.values() if seen.finished is not None]
        raw = {"loaded_after_s": self.loaded - self.started, "mix_finished": self.all_done.is_set(),
               "mix_wall_s": max(ends, default=self.loaded) - self.loaded,
               "first_done_after_load_s": None if self.first_done is None else self.first_done - self.loaded,
               "compiles": compiles.COMPILES.status(), "jobs": [asdict(seen) for seen in self.jobs.values()]}
        self.raw.parent.mkdir(parents=True, exist_ok=True)
        self.raw.write_text(json.dumps(raw, indent=2, default=str))

    async def job_started(self, job: JobRecord) -> None:
        seen = self.jobs[job.id]
        seen.started = self.clock()
        assert self.service is not None
        entry = self.service.running.get(job.id)
        assert entry is not None
        seen.batch = sum(1 for other in self.service.running if other.task is entry.task)
        seen.extra["unit"] = entry.task.get_name() if entry.task else str(job.id)  # shared by a batch's members
        width, height = job.params["width"], job.params["height"]
        shape = video_shape(self.unet.cfg, seen.batch, job.params["frames"], height, width)
        seen.shape, seen.compiled = label(shape), self.unet.compiled(shape)

    async def job_progress(self, job: JobRecord, step: int, total: int, *preview: Any) -> None:
        """The clock at a job's first and latest progress report: its denoising steps' span, apart from what comes
        before them (the prompt's encoding) and after (the decode and the MP4)."""
        seen = self.jobs[job.id]
        now = self.clock()
        seen.extra.setdefault("first_step", now)
        seen.extra["last_step"] = now

    async def job_done(self, delivered: Delivered) -> None:
        self._end(delivered.job.id, "done")
        self.jobs[delivered.job.id].extra["mp4_bytes"] = len(delivered.video)

    async def job_failed(self, job: JobRecord, message: str) -> None:
        self._end(job.id, "failed")
        self.jobs[job.id].extra["message"] = message

    async def job_cancelled(self, job: JobRecord) -> None:
        self._end(job.id, "cancelled")

    def _end(self, job_id: int, outcome: str) -> None:
        seen = self.jobs[job_id]
        seen.finished, seen.outcome = self.clock(), outcome
        if outcome == "done" and self.first_done is None:
            self.first_done = seen.finished
        if all(s.outcome is not None for s in self.jobs.values()):
            self.all_done.set()
        self.write_raw()


def random_pipeline(args: argparse.Namespace, dtype: str | None = None) -> Any:
    """The real architecture over seeded random weights on `--device` (or tiny-random), in `dtype` (None: fp16 on a
    GPU; "fp8": quantised and calibrated at load, as T2V_DTYPE=fp8)."""
    if args.tiny:
        return load_pipeline(TINY_RANDOM, device=args.device, dtype=dtype)
    config = ModelConfig()
    states = random_state_dicts(config, seed=0, device=args.device)
    return assemble(config, states, {n: f"random:{n}" for n in states}, args.device, dtype)


async def run(args: argparse.Namespace) -> dict[str, Any]:
    """One run: start the service, submit the mix, wait for it, then time the steady standard video."""
    clock = time.perf_counter
    mix = draw_mix(args.jobs, args.seed, args.max_frames)
    flops = video_tflops(tiny_config() if args.tiny else ModelConfig(), mix, args.max_frames)  # before any compile
    started = clock()
    engine = create_engine(f"sqlite+aiosqlite:///{args.workdir / f'{args.run}.db'}")
    await migrate(engine)
    source = ModelSource("random", optimize="on", compile_cache=str(args.cache), backend=args.backend,
                         max_frames=args.max_frames)
    holder: dict[str, Any] = {}

    def load(device: str) -> Models:
        holder["models"] = source.prepare(random_pipeline(args), device)
        return holder["models"]

    recorder = Recorder(clock, args.out.with_suffix(".mix.json") if args.out else None)
    recorder.started = started
    gate = PolicyGate(is_english=lambda prompt: True)
    executor = GPUExecutor([args.device], load, idle=capture_while_idle)  # as the bot's (bot.app.build_executor)
    service = VideoService(Repository(engine), gate, FairQueue(100, 1000), executor,
                           recorder, batch_max=4, max_frames=args.max_frames, job_time_limit_s=600)
    recorder.service = service
    await service.start()
    service_started = clock()
    if service.warm_up is not None:  # GPU workers warm up
        service.warm_up.add_done_callback(lambda _: holder.setdefault("warmed", clock()))
        if args.after_warm_up:
            await service.warm_up
    loaded = recorder.loaded = clock()
    recorder.unet = holder["models"].pipeline.unet
    log.info("model loaded in %.1f s; submitting %d jobs%s", service_started - started, args.jobs,
             f" after the warm-up ({loaded - service_started:.1f} s)" if "warmed" in holder else "")
    for i, ask in enumerate(mix):
        seen = Seen(ask, submitted=clock())
        job = (await service.submit(_requester(ask.user, i), _spec(ask, service))).job
        seen.job_id = job.id
        recorder.jobs[job.id] = seen
    await recorder.all_done.wait()
    mix_end = clock()
    recorder.write_raw()  # the mix whole: a run cut short while waiting for the standard compile keeps it
    recorder.raw = None  # the steady standard's jobs are not the mix's
    steady = await steady_standard(service, recorder, args)
    await service.stop()
    await engine.dispose()
    found = report(args, recorder, loaded - started, loaded, mix_end, steady, flops)
    found["results"]["service_started_s"] = service_started - started
    found["results"]["warm_up_s"] = holder["warmed"] - service_started if "warmed" in holder else None
    return found


async def steady_standard(service: VideoService, recorder: Recorder, args: argparse.Namespace) -> dict[str, Any]:
    """The default /video shape once compiled (waiting for its compile if needed): the median of 3 jobs."""
    unet, info = recorder.unet, service.model
    width, height = info.size("1:1")
    frames = info.default_frames(args.max_frames)
    shape = video_shape(unet.cfg, 1, frames, height, width)
    waited = time.perf_counter()
    while not unet.compiled(shape) and time.perf_counter() - waited < args.steady_wait_s:
        await asyncio.sleep(1.0)
    times = []
    for i in range(3):
        recorder.all_done.clear()
        ask = Ask(1000 + i, PROMPTS[0], "1:1", frames, STANDARD["steps"], "ddim", seed=i)
        job = (await service.submit(_requester(ask.user, 1000 + i), _spec(ask, service))).job
        recorder.jobs[job.id] = Seen(ask, job_id=job.id, submitted=time.perf_counter())
        await recorder.all_done.wait()
        seen = recorder.jobs.pop(job.id)
        times.append(seen.finished - seen.started)
    return {"seconds": statistics.median(times), "runs_s": times, "compiled": unet.compiled(shape),
            "waited_for_compile_s": time.perf_counter() - waited - sum(times), "shape": label(shape)}


def unet_tflops(cfg: Any, batch: int, frames: int, width: int, height: int) -> float:
    """TFLOP of one guided UNet call at this shape (FlopCounterMode on the meta device: no memory, no compute)."""
    with torch.device("meta"):
        unet = UNet3D(cfg)
        inputs = example_inputs(video_shape(cfg, batch, frames, height, width), torch.empty((), device="meta"))
    with FlopCounterMode(display=False) as counter:
        unet(*inputs)
    return counter.get_total_flops() / 1e12


def video_tflops(config: ModelConfig, mix: list[Ask], max_frames: int) -> dict[tuple[int, str], float]:
    """TFLOP of one guided UNet call for one video of each (frames, aspect) of the mix and of the standard video, at
    the sizes the bot gives the model of `config` (a batch of n videos is n times as much: every layer works per
    video)."""
    info = ModelInfo(aspect_sizes(config), config.frames)
    wanted = {(ask.frames, ask.aspect) for ask in mix} | {(info.default_frames(max_frames), STANDARD["aspect"])}
    return {(frames, aspect): unet_tflops(config.unet, 1, frames, *info.size(aspect))
            for frames, aspect in sorted(wanted)}


def report(args: argparse.Namespace, recorder: Recorder, load_s: float, loaded: float, mix_end: float,
           steady: dict[str, Any], flops: dict[tuple[int, str], float]) -> dict[str, Any]:
    """The run's numbers, the goals and whether they hold; `flops` from video_tflops."""
    std_flops = STANDARD["steps"] * flops[steady_frames(steady), STANDARD["aspect"]]
    jobs = []
    for seen in sorted(recorder.jobs.values(), key=lambda s: s.job_id):
        job_flops = seen.batch * flops[seen.ask.frames, seen.ask.aspect]
        estimate = steady["seconds"] * seen.ask.steps * job_flops / std_flops
        latency = None if seen.started is None or seen.finished is None else seen.finished - seen.started
        jobs.append({**asdict(seen.ask), "job": seen.job_id, "outcome": seen.outcome, "batch": seen.batch,
                     "shape": seen.shape, "compiled_at_start": seen.compiled, "latency_s": latency,
                     "steady_compiled_estimate_s": estimate, "ratio": latency / estimate if latency else None,
                     **seen.extra})
    done = [j for j in jobs if j["outcome"] == "done"]
    latencies, ratios = [j["latency_s"] for j in done], [j["ratio"] for j in done]
    first = (recorder.first_done - loaded) if recorder.first_done is not None else None
    wall = mix_end - loaded
    estimate_sum = _unit_sum(jobs)
    status = compiles.COMPILES.status()
    results = {
        "load_s": load_s, "first_video_after_load_s": first, "mix_wall_s": wall,
        "videos_per_hour": len(done) / wall * 3600, "failures": len(jobs) - len(done),
        "latency_p50_s": _quantile(latencies, 0.5), "latency_p95_s": _quantile(latencies, 0.95),
        "ratio_p50": _quantile(ratios, 0.5), "ratio_p95": _quantile(ratios, 0.95),
        "jobs_compiled_at_start": sum(j["compiled_at_start"] for j in done), "distinct_shapes": len(
            {j["shape"] for j in done}), "units": len({j["unit"] for j in done}), "compile_s": status["compile_s"],
        "compiled_shapes": status["compiled"], "failed_shapes": status["failed"],
        "steady_standard": steady, "sum_steady_compiled_estimate_s": estimate_sum,
        "wall_over_steady_sum": wall / estimate_sum if estimate_sum else None,
        "peak_allocated_gib": _gib(torch.cuda.max_memory_allocated) if args.device.startswith("cuda") else None,
        "reserved_gib": _gib(torch.cuda.memory_reserved) if args.device.startswith("cuda") else None,
    }
    results["goals"] = {
        "no_failures": results["failures"] == 0,
        f"first_video_within_{FIRST_VIDEO_GOAL_S:g}_s": first is not None and first <= FIRST_VIDEO_GOAL_S,
        f"p95_ratio_within_{P95_GOAL:g}": results["ratio_p95"] is not None and results["ratio_p95"] <= P95_GOAL,
        f"warm_wall_within_{WARM_GOAL:g}_of_steady_sum": (results["wall_over_steady_sum"] or 99) <= WARM_GOAL,
    }
    return {"machine": _machine(args), "args": {k: str(v) for k, v in vars(args).items()}, "results": results,
            "jobs": jobs}


def steady_frames(steady: dict[str, Any]) -> int:
    return int(steady["shape"].split("×")[1])


def _unit_sum(jobs: list[dict[str, Any]]) -> float:
    """The steady compiled seconds of the mix's units of work (a batch counts once)."""
    units = {job["unit"]: job["steady_compiled_estimate_s"] for job in jobs if "unit" in job}
    return sum(units.values())


def _quantile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _gib(read: Any) -> float:
    return read() / 2**30


def _machine(args: argparse.Namespace) -> dict[str, Any]:
    gpu = torch.cuda.get_device_name(args.device) if args.device.startswith("cuda") else "cpu"
    return {"device": gpu, "torch": torch.__version__, "date": time.strftime("%Y-%m-%d %H:%M")}


def _requester(user: int, i: int) -> Requester:
    return Requester(user, f"user{user}", channel_id=1, guild_id=1, interaction_token=f"token-{i}", application_id=1)


def _spec(ask: Ask, service: VideoService) -> JobSpec:
    """The job /video makes of the ask, at the loaded model's size for its aspect."""
    return JobSpec.video(ask.prompt, aspect=ask.aspect, sizes=service.model.size, seed=ask.seed, steps=ask.steps,
                         frames=ask.frames, sampler=ask.sampler)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", choices=("cold", "warm"), required=True, help="names the run in the report")
    parser.add_argument("--cache", type=Path, required=True, help="the compile cache (T2V_COMPILE_CACHE)")
    parser.add_argument("--device", default="cuda:0")
    parser.add_argument("--jobs", type=int, default=40)
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--max-frames", type=int, default=32)
    parser.add_argument("--backend", default="inductor")
    parser.add_argument("--steady-wait-s", type=float, default=240.0, help="longest wait for the standard compile")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp"))
    parser.add_argument("--after-warm-up", action="store_true",
                        help="submit the mix once the worker's warm-up render has ended (a server's later users), "
                             "not as soon as the service started (users waiting at its start)")
    parser.add_argument("--tiny", action="store_true")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    if not args.steady_wait_s >= 0:
        parser.error(f"--steady-wait-s={args.steady_wait_s:g} must be 0 or more seconds")
    check_service_args(parser, args)
    return args


def check_service_args(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """The options this benchmark shares with full_queue.py, checked before any work (parser.error names the value)."""
    if args.jobs < 1:
        parser.error(f"--jobs={args.jobs} must be at least 1")
    if not 1 <= args.max_frames <= 64:
        parser.error(f"--max-frames={args.max_frames} is outside the frames a video may have, 1–64")
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        parser.error(f"--device {args.device} names a GPU but torch sees none")
    problem = preflight.compile_backend("--backend", args.backend)
    if problem is not None:
        parser.error(problem)


def prepare_run(args: argparse.Namespace) -> None:
    """What this benchmark and full_queue.py do before a run: INFO logs (the service's own quieter) and `--workdir`."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in ("storage", "bot.jobs", "bot.moderation.policy", "alembic"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    args.workdir.mkdir(parents=True, exist_ok=True)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    prepare_run(args)
    result = asyncio.run(run(args))
    summary = {k: v for k, v in result["results"].items() if k not in ("compiled_shapes",)}
    print(json.dumps(summary, indent=2, default=str))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2, default=str))
    compiles.COMPILES.stop()
    return result


if __name__ == "__main__":
    main()
    if compiles.COMPILES.busy:  # a compile under way when the interpreter finalises would abort it: leave at once
        logging.shutdown()
        import os

        os._exit(0)
