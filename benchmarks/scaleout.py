"""Scale-out of the bot's local executor: a batch of standard videos on 1 device, then on N devices of one host.

Real-size network with seeded random weights (drawn once, loaded on every device; fp16 on GPUs), the bot's own
`GPUExecutor` and per-job work (`bot.gpu.work.render_work`: 16×256² frames, 50 DDIM steps, guidance 9; then the
H.264 MP4 on the bot's CPU encoder pool). Every pipeline is built and warmed up once; the 1-device phase and the
N-device phase time the same pipelines. Throughput is videos / wall time from the first submit to the last result;
each phase is timed `--repeats` times and the median is reported; per GPU divides by the workers (one per GPU; a
repeated device in the CPU smoke test counts each time). The issue's target: N=2 serves ≥ 1.8× the 1-device throughput.

GPU:  python benchmarks/scaleout.py --devices cuda:0,cuda:1 --videos 8 --repeats 3 --out OUT/scaleout.json -v
CPU smoke test (two workers on one CPU, tiny model):  python benchmarks/scaleout.py --tiny --devices cpu,cpu
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import statistics
import sys
import time
from collections import deque
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # `python benchmarks/scaleout.py` from a checkout that is not pip-installed
    sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from bot.gpu.executor import GPUExecutor, devices_for  # noqa: E402
from bot.gpu.models import Models  # noqa: E402
from bot.gpu.work import render_work  # noqa: E402
from bot.jobs.encoder import Encoder, Rendered  # noqa: E402
from t2v import TINY_RANDOM, GenerationRequest, VideoPipeline, load_pipeline  # noqa: E402
from t2v.config import ModelConfig  # noqa: E402
from t2v.fast import optimize  # noqa: E402
from t2v.loader import assemble, random_state_dicts  # noqa: E402

log = logging.getLogger("scaleout")

PROMPT = "A panda eating bamboo on a rock."
MAX_BYTES = 10 * 2**20 - 16 * 1024  # the MP4 size bot.jobs.units allows on an unboosted server (10 MiB upload
# limit less its margin); not imported: bot.jobs.units needs SQLAlchemy, which the GPU machine lacks
WARMUP_STEPS = 8  # enough to capture the graphs and to make the bot's live previews (they start at 8 steps)
TARGET_SPEEDUP = 1.8  # the acceptance bar for 2 GPUs


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line; devices may repeat (`cpu,cpu`: two workers on one device, for the smoke test)."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--devices", default="cuda", help="comma list, one worker each ('cuda': every GPU); the "
                        "first alone is the 1-device phase (default %(default)s)")
    parser.add_argument("--videos", type=int, default=8, help="jobs submitted at once per phase (default 8)")
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--size", type=int, default=256, help="width and height in pixels (default 256)")
    parser.add_argument("--repeats", type=int, default=1, help="timed runs per phase; the median is reported")
    parser.add_argument("--optimize", choices=("none", "graphs", "compile"), default="graphs",
                        help="none: eager; graphs: fused + channels-last + CUDA graphs; compile: torch.compile too")
    parser.add_argument("--tiny", action="store_true", help="the tiny-random model instead of the real size")
    parser.add_argument("--out", type=Path, help="write the results as JSON here")
    parser.add_argument("--save-videos", type=Path, help="write each phase's MP4s of its last run into this folder")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress")
    args = parser.parse_args(argv)
    parts = [d.strip().lower() for d in args.devices.split(",") if d.strip()]
    try:  # the bot's own parsing ('cuda' = every GPU), except that the smoke test repeats a device on purpose
        args.devices = parts if len(set(parts)) < len(parts) else devices_for(args.devices)
    except (ValueError, RuntimeError) as exc:
        parser.error(str(exc))
    if args.videos < 1 or args.repeats < 1:
        parser.error(f"--videos ({args.videos}) and --repeats ({args.repeats}) must be at least 1")
    try:  # --steps, --frames and --size within the engine's limits, named as t2v names them
        request(args, seed=0)
    except ValueError as exc:
        parser.error(str(exc))
    if any(d.startswith("cuda") for d in args.devices) and not torch.cuda.is_available():
        parser.error(f"--devices {','.join(args.devices)} names a GPU but torch sees none")
    return args


def request(args: argparse.Namespace, seed: int, steps: int | None = None) -> GenerationRequest:
    """One standard job at the benchmark's shape (guidance 9, DDIM: the request's defaults)."""
    return GenerationRequest(PROMPT, seed=seed, steps=steps or args.steps, frames=args.frames, width=args.size,
                             height=args.size)


def on_device(device: str) -> Any:
    """Make `device` the thread's current GPU (CUDA graphs capture on the current device's streams)."""
    return torch.cuda.device(device) if device.startswith("cuda") else nullcontext()


def loader(args: argparse.Namespace) -> Callable[[str], VideoPipeline]:
    """Loads the model on a device: tiny-random, or the real architecture over random weights drawn once."""
    if args.tiny:
        return lambda device: load_pipeline(TINY_RANDOM, device=device)
    config, started = ModelConfig(), time.perf_counter()
    draw_on = next((d for d in args.devices if d.startswith("cuda")), "cpu")  # a GPU draws 1.8B weights in seconds
    states = random_state_dicts(config, seed=0, device=draw_on)
    log.info("drew random weights on %s in %.1f s", draw_on, time.perf_counter() - started)
    return lambda device: assemble(config, states, {n: f"random:{n}" for n in states}, device)


def build_pipelines(args: argparse.Namespace) -> tuple[list[VideoPipeline], dict[str, float]]:
    """One warmed-up pipeline per entry of `--devices`, over the same random weights; (pipelines, timings)."""
    started = time.perf_counter()
    load = loader(args)
    pipes, timings = [], {"weights_s": time.perf_counter() - started}
    for i, device in enumerate(args.devices):
        started = time.perf_counter()
        with on_device(device):
            pipe = load(device)
            if args.optimize != "none":
                optimize(pipe, compile=args.optimize == "compile")
            warmup = render_work(request(args, seed=0, steps=min(args.steps, WARMUP_STEPS)))
            warmup(Models(pipe), lambda *_: None, lambda: False)
        timings[f"build_and_warmup_s[{i}]"] = time.perf_counter() - started
        log.info("worker %d on %s: built and warmed up (optimize=%s) in %.1f s", i, device, args.optimize,
                 timings[f"build_and_warmup_s[{i}]"])
        pipes.append(pipe)
    return pipes, timings


def prebuilt(devices: list[str], pipes: list[VideoPipeline]) -> Callable[[str], Models]:
    """An executor factory handing each worker thread the next prebuilt pipeline of its device."""
    ready = {d: deque(p for dev, p in zip(devices, pipes, strict=True) if dev == d) for d in devices}

    def factory(device: str) -> Models:  # GPUExecutor has made `device` the thread's current GPU
        return Models(ready[device].popleft())

    return factory


async def timed_batch(executor: GPUExecutor, args: argparse.Namespace) -> tuple[float, list[Rendered]]:
    """Submit `--videos` jobs at once; seconds from the first submit until every MP4 is encoded (on a CPU pool, as
    the bot does, while the GPU threads go on)."""
    started = time.perf_counter()
    encoder = Encoder()

    async def one(seed: int) -> Rendered:
        frames = await executor.submit(render_work(request(args, seed=seed)), lambda *_: None)
        return await encoder.encode(frames, MAX_BYTES)

    results = await asyncio.gather(*(one(i) for i in range(args.videos)))
    encoder.close()
    return time.perf_counter() - started, results


async def phase(args: argparse.Namespace, workers: int, pipes: list[VideoPipeline]) -> dict[str, Any]:
    """Time the batch `--repeats` times on an executor over the first `workers` pipelines."""
    devices = args.devices[:workers]
    gpus = sorted({d for d in devices if d.startswith("cuda")})
    for gpu in gpus:
        torch.cuda.reset_peak_memory_stats(gpu)
    executor = GPUExecutor(devices, prebuilt(devices, pipes[:workers]))
    await executor.start()
    try:
        if executor.workers != workers:
            raise RuntimeError(f"only {executor.workers} of {workers} workers started: {executor.failed_devices}")
        warm = argparse.Namespace(**{**vars(args), "videos": workers})
        first_round_s, _ = await timed_batch(executor, warm)  # a thread's first job pays a one-time start (~1-2 s)
        log.info("%d worker(s): untimed first round (one job each) in %.1f s", workers, first_round_s)
        runs = [await timed_batch(executor, args) for _ in range(args.repeats)]
    finally:
        await executor.close()
    seconds = statistics.median(s for s, _ in runs)
    videos = runs[-1][1]
    if args.save_videos:
        args.save_videos.mkdir(parents=True, exist_ok=True)
        for i, rendered in enumerate(videos):
            (args.save_videos / f"{workers}workers-{i}.mp4").write_bytes(rendered.video)
    per_hour = args.videos / seconds * 3600
    log.info("%d worker(s): %d videos in %.1f s (median of %d)", workers, args.videos, seconds, len(runs))
    return {"workers": workers, "devices": devices, "videos": len(videos), "seconds": seconds,
            "runs_s": [s for s, _ in runs], "first_round_s": first_round_s, "videos_per_hour": per_hour,
            "videos_per_gpu_hour": per_hour / workers,
            "job_gpu_s_median": statistics.median(r.gpu_s for r in videos),
            "video_bytes": [len(r.video) for r in videos],
            "peak_gib": {gpu: torch.cuda.max_memory_allocated(gpu) / 2**30 for gpu in gpus}}


def table(phases: list[dict[str, Any]], speedup: float) -> str:
    """The results as a markdown table."""
    lines = ["| workers | devices | videos | seconds (median) | videos/h | videos/h per GPU | peak GiB | speed-up |",
             "|---|---|---|---|---|---|---|---|"]
    for p in phases:
        peak = ", ".join(f"{g}: {v:.1f}" for g, v in p["peak_gib"].items()) or "–"
        ratio = p["videos_per_hour"] / phases[0]["videos_per_hour"]
        lines.append(f"| {p['workers']} | {','.join(p['devices'])} | {p['videos']} | {p['seconds']:.1f} | "
                     f"{p['videos_per_hour']:.0f} | {p['videos_per_gpu_hour']:.0f} | {peak} | {ratio:.2f}× |")
    if len(phases) > 1:
        verdict = "meets" if speedup >= TARGET_SPEEDUP else "misses"
        lines.append(f"\nspeed-up {speedup:.2f}× with {phases[-1]['workers']} workers: {verdict} the "
                     f"{TARGET_SPEEDUP}× target")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run both phases, print the table, write the JSON report to `--out`; returns the report."""
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    pipes, timings = build_pipelines(args)
    phases = [asyncio.run(phase(args, workers, pipes)) for workers in sorted({1, len(args.devices)})]
    speedup = phases[-1]["videos_per_hour"] / phases[0]["videos_per_hour"]
    gpus = sorted({d for d in args.devices if d.startswith("cuda")})
    report = {
        "machine": {"devices": {g: torch.cuda.get_device_name(g) for g in gpus} or {"cpu": "cpu"},
                    "torch": torch.__version__, "dtype": str(pipes[0].dtype), "date": time.strftime("%Y-%m-%d %H:%M")},
        "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "results": {"statistic": "median", "phases": phases, "speedup": speedup, "target_speedup": TARGET_SPEEDUP,
                    "meets_target": speedup >= TARGET_SPEEDUP if len(phases) > 1 else None, "setup": timings},
    }
    print(table(phases, speedup))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    main()
