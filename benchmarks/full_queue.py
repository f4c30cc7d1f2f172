"""A full queue of default /video jobs through the bot's own code, at each BATCH_MAX: videos per hour as users get them.

The engine's benchmark times a batch of n videos as one `generate_batch` call (`python -m t2v bench --configs
batch2`); this times what a busy server does with them: the bot's VideoService (admission, the fair queue, the
dispatcher taking the same-shape jobs behind the next one as one unit of work), its GPU executor and worker on t2v's
fast path, live previews at the bot's interval, MP4s encoded on the CPU pool, every job recorded in SQLite.

One process loads the real-size network with seeded random weights (fp16, or `--dtype fp8`) once. For each BATCH_MAX
in turn (`--batch-max 2 4 1`), the bot's compile thread first compiles the default /video shape at that batch size,
and the run waits until it has nothing left to compile and the worker has captured the compiled shapes' CUDA graphs
while idle (bot.gpu.work.capture_while_idle; `--no-idle-capture`: the first unit captures its own) — the steady
state of a server whose compiles are done; then `--jobs` default /video jobs of `--users` users are queued (the
worker held meanwhile) and timed from then to the last MP4: the queue's wall time, videos per hour, each unit of
work's render time (its first job's start to its last job's end) and what the bot adds around the renders (the wall
time not covered by any render). The results are rewritten after each BATCH_MAX, so a run cut short keeps what it
measured.

GPU:  python benchmarks/full_queue.py --cache CACHE --out OUT/full-queue.json
CPU smoke test:  python benchmarks/full_queue.py --tiny --device cpu --backend eager --jobs 4 --cache /tmp/c
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # `python benchmarks/full_queue.py` from a checkout that is not pip-installed
    sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from benchmarks.served import (  # noqa: E402  # noqa: E402
    PROMPTS,
    STANDARD,
    Ask,
    Recorder,
    Seen,
    _machine,
    _quantile,
    _requester,
    _spec,
    check_service_args,
    prepare_run,
    random_pipeline,
)
from bot.gpu import compiles  # noqa: E402
from bot.gpu.compiles import label  # noqa: E402
from bot.gpu.executor import GPUExecutor  # noqa: E402
from bot.gpu.models import DEFAULT_ASPECT, Models, describe  # noqa: E402
from bot.gpu.source import ModelSource  # noqa: E402
from bot.gpu.work import capture_while_idle  # noqa: E402
from bot.jobs.queue import FairQueue  # noqa: E402
from bot.jobs.service import VideoService  # noqa: E402
from bot.moderation.policy import PolicyGate  # noqa: E402
from bot.settings import BATCH_MAX, RANGES  # noqa: E402
from storage import Repository, create_engine, migrate  # noqa: E402
from t2v import preflight  # noqa: E402
from t2v.compiled import video_shape  # noqa: E402

log = logging.getLogger("full_queue")


@dataclass(frozen=True)
class QueueSource(ModelSource):
    """The bot's ModelSource, warming the default /video shape at batch 1 and nothing else; each BATCH_MAX's batch
    shape is compiled before its own run (`compiled`), so no compile runs beside a timed queue."""

    def warm_shapes(self, models: Models) -> list[Any]:
        return [standard_shape(models, self, 1)]


def standard_shape(models: Models, source: ModelSource, batch: int) -> Any:
    """The UNet shape of `batch` default /video jobs rendered together."""
    info = describe(models)
    width, height = info.size(DEFAULT_ASPECT)
    frames = info.video_frames(source.default_frames, source.max_frames)
    return video_shape(models.pipeline.unet.cfg, batch, frames, height, width)


async def compiled(unet: Any, device: str, shape: Any, wait_s: float, idle_capture: bool) -> dict[str, Any]:
    """Queue `shape`'s compile unless it is compiled, then wait (at most `wait_s`) until it is and the compile thread
    is idle, its decoders included, and with `idle_capture` until the worker has no compiled shape left uncaptured;
    what the compile thread did, and how long the captures were waited for."""
    began = time.perf_counter()
    if not unet.compiled(shape):
        compiles.COMPILES.warm(unet, device, [shape])

    def idle() -> bool:
        status = compiles.COMPILES.status()
        return not (compiles.COMPILES.busy or status["waiting"] or status["decoders_waiting"])

    while not (unet.compiled(shape) and idle()) and time.perf_counter() - began < wait_s:
        await asyncio.sleep(1.0)
    waited = time.perf_counter()
    while idle_capture and unet.uncaptured() and time.perf_counter() - began < wait_s:
        await asyncio.sleep(0.2)
    return {"shape": label(shape), "compiled": unet.compiled(shape), "waited_s": time.perf_counter() - began,
            "capture_wait_s": time.perf_counter() - waited, "uncaptured": [label(s) for s in unet.uncaptured()],
            "compiles": compiles.COMPILES.status()}


async def run(args: argparse.Namespace) -> dict[str, Any]:
    """Load once; for each BATCH_MAX, compile its batch shape, then time the full queue."""
    clock = time.perf_counter
    started = clock()
    database = args.workdir / "full-queue.db"
    for stale in (database, *(database.with_name(database.name + end) for end in ("-wal", "-shm"))):
        stale.unlink(missing_ok=True)  # a run cut short left jobs queued: the start would render them in the timing
    engine = create_engine(f"sqlite+aiosqlite:///{database}")
    await migrate(engine)
    source = QueueSource("random", optimize="on", compile_cache=str(args.cache), backend=args.backend,
                         batch_max=1, max_frames=args.max_frames)
    holder: dict[str, Models] = {}

    def load(device: str) -> Models:
        holder["models"] = source.prepare(random_pipeline(args, args.dtype), device)
        return holder["models"]

    recorder = Recorder(clock)
    gate = PolicyGate(is_english=lambda prompt: True)
    executor = GPUExecutor([args.device], load, idle=None if args.no_idle_capture else capture_while_idle)
    service = VideoService(Repository(engine), gate, FairQueue(1000, 10_000), executor,
                           recorder, batch_max=1, max_frames=args.max_frames, job_time_limit_s=600)
    recorder.service = service
    await service.start()
    if service.warm_up is not None:
        await service.warm_up
    models = holder["models"]
    recorder.unet = unet = models.pipeline.unet
    found: dict[str, Any] = {"machine": _machine(args), "args": {k: str(v) for k, v in vars(args).items()},
                             "load_and_warm_up_s": clock() - started, "runs": []}
    for batch_max in args.batch_max:
        compile_wait = await compiled(unet, args.device, standard_shape(models, source, batch_max),
                                      args.compile_wait_s, not args.no_idle_capture)
        log.info("BATCH_MAX %d: its shape compiled after %.1f s: %s", batch_max, compile_wait["waited_s"],
                 compile_wait["compiled"])
        service.dispatcher.batch_max = batch_max
        found["runs"].append({**await full_queue(service, recorder, args, batch_max), "compile": compile_wait})
        _write(args.out, found)
    await service.stop()
    await engine.dispose()
    return found


async def full_queue(service: VideoService, recorder: Recorder, args: argparse.Namespace,
                     batch_max: int) -> dict[str, Any]:
    """`--jobs` default /video jobs, all queued before the first starts; timed from then to the last MP4."""
    recorder.jobs.clear()
    recorder.all_done.clear()
    width, height = service.model.size(STANDARD["aspect"])
    frames = service.model.default_frames(args.max_frames)
    busy = asyncio.get_running_loop().create_future()  # the worker counts as busy until every job is queued: a
    service.dispatcher.occupy(busy)  # full queue from the first unit on, as on a server with a backlog
    for i in range(args.jobs):
        ask = Ask(i % args.users + 1, PROMPTS[i % len(PROMPTS)], STANDARD["aspect"], frames, STANDARD["steps"], "ddim",
                  seed=batch_max * 10_000 + i)
        seen = Seen(ask, submitted=time.perf_counter())
        job = (await service.submit(_requester(ask.user, i), _spec(ask, service))).job
        seen.job_id = job.id
        recorder.jobs[job.id] = seen
    began = time.perf_counter()
    busy.set_result(None)
    await recorder.all_done.wait()
    jobs = list(recorder.jobs.values())
    done = [seen for seen in jobs if seen.outcome == "done"]
    wall = max(seen.finished for seen in jobs) - began
    units: dict[str, list[Seen]] = {}
    for seen in done:
        units.setdefault(seen.extra["unit"], []).append(seen)
    spans = sorted((min(s.started for s in members), max(s.finished for s in members), len(members))
                   for members in units.values())
    rendering = _covered([(start, end) for start, end, _ in spans])
    waits = [seen.finished - seen.submitted for seen in done]
    result = {
        "batch_max": batch_max, "jobs": args.jobs, "done": len(done), "failed": len(jobs) - len(done),
        "shape": label(video_shape(recorder.unet.cfg, 1, frames, height, width)), "wall_s": wall,
        "videos_per_hour": len(done) / wall * 3600, "seconds_per_video": wall / max(1, len(done)),
        "units": len(units), "unit_sizes": sorted(size for *_, size in spans),
        "unit_render_s_median": statistics.median(end - start for start, end, _ in spans) if spans else None,
        # each unit's start and last MP4 from the backlog's release, so the period between units' starts shows
        "unit_spans_s": [[round(start - began, 3), round(end - began, 3)] for start, end, _ in spans],
        "render_covered_s": rendering, "between_renders_s": wall - rendering,
        "first_video_s": min((seen.finished - began for seen in done), default=None),
        "job_wait_p50_s": _quantile(waits, 0.5), "job_wait_p95_s": _quantile(waits, 0.95),
        "mp4_bytes_median": statistics.median(seen.extra["mp4_bytes"] for seen in done) if done else None,
        **_phases(list(units.values())),
    }
    log.info("BATCH_MAX %d: %d videos in %.2f s (%.0f an hour), %d units, %.2f s between renders", batch_max,
             len(done), wall, result["videos_per_hour"], len(units), result["between_renders_s"])
    return result


def _phases(units: list[list[Seen]]) -> dict[str, Any]:
    """Each unit's render split at its steps, the medians over the units: from its start to the first progress report
    (the prompts' encoding, the noise), the steps (the first report to the last), and from the last report to its last
    MP4 (the decode, the MP4s). Progress reaches the loop a moment after the worker sends it, so the split is as
    exact as the loop is idle."""
    split = [(min(s.started for s in members), min(s.extra["first_step"] for s in members),
              max(s.extra["last_step"] for s in members), max(s.finished for s in members))
             for members in units if all("first_step" in s.extra for s in members)]
    names = ("unit_before_steps_s_median", "unit_steps_s_median", "unit_after_steps_s_median")
    medians = {name: statistics.median(times[i + 1] - times[i] for times in split) if split else None
               for i, name in enumerate(names)}
    # each unit's own split in the order they started: the first unit after a compile may differ from the rest
    return {**medians, "unit_phases_s": [[times[i + 1] - times[i] for i in range(3)] for times in sorted(split)]}


def _covered(spans: list[tuple[float, float]]) -> float:
    """Seconds covered by at least one of the (start, end) spans."""
    total, reached = 0.0, float("-inf")
    for start, end in sorted(spans):
        if end > reached:
            total += end - max(start, reached)
            reached = end
    return total


def _write(out: Path | None, found: dict[str, Any]) -> None:
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(found, indent=2, default=str))


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    low, high = (int(bound) for bound in RANGES["batch_max"])
    parser.add_argument("--batch-max", type=int, nargs="+", default=[1, BATCH_MAX, 4],
                        help=f"the BATCH_MAX values to time, in this order ({low}–{high})")
    parser.add_argument("--jobs", type=int, default=16, help="default /video jobs in the queue at each BATCH_MAX")
    parser.add_argument("--users", type=int, default=8, help="how many users the jobs come from (round robin)")
    parser.add_argument("--cache", type=Path, required=True, help="the compile cache (T2V_COMPILE_CACHE)")
    parser.add_argument("--device", default="cuda:0")
    parser.add_argument("--dtype", default=None, help="the networks' precision, as T2V_DTYPE (default: fp16 on a "
                        "GPU); fp8 on GPUs with fp8 tensor cores")
    parser.add_argument("--max-frames", type=int, default=32)
    parser.add_argument("--backend", default="inductor")
    parser.add_argument("--compile-wait-s", type=float, default=480.0, help="longest wait for the batch shapes")
    parser.add_argument("--no-idle-capture", action="store_true", help="the worker captures no CUDA graph while "
                        "idle (the bot's behaviour before 2026-12-07): each batch shape's first unit captures its own")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp"))
    parser.add_argument("--tiny", action="store_true")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    for value in args.batch_max:
        if not low <= value <= high:
            parser.error(f"--batch-max {value} is outside BATCH_MAX's range, {low}–{high}")
    if args.users < 1:
        parser.error(f"--users={args.users} must be at least 1")
    if not args.compile_wait_s >= 0:
        parser.error(f"--compile-wait-s={args.compile_wait_s:g} must be 0 or more seconds")
    check_service_args(parser, args)
    problem = preflight.dtype("--dtype", args.dtype, args.device)
    if problem is not None:
        parser.error(problem)
    return args


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    prepare_run(args)
    found = asyncio.run(run(args))
    _write(args.out, found)
    print(json.dumps(found["runs"], indent=2))
    if args.device.startswith("cuda"):
        print(f"peak allocated {torch.cuda.max_memory_allocated() / 2**30:.2f} GiB")
    compiles.COMPILES.stop()
    return found


if __name__ == "__main__":
    main()
