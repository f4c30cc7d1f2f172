"""What a mix of styles costs: the same standard /video jobs rendered all in one style, then in three styles, in the
order the bot's scheduler hands them out and switching styles as its GPU worker does.

The jobs: `--jobs` standard videos (the default /video: 16 frames at the model's size, 50 steps, DDIM, guidance 9)
of `--users` members, queued at once (a server with a backlog); in the mix, member i asks for style i mod 3 (so
three styles interleave in fair order), in the one-style run every member asks for the first style. The order is
the bot's own: bot.jobs.queue.FairQueue (round robin over members) and bot.jobs.batching.take_batch (up to
`--batch-max` jobs of one shape and style per unit, stepping over jobs of other styles within its window); each unit
is rendered by the bot's work functions (bot.gpu.work: batch_work / render_work), which apply a unit's style with
bot.gpu.styles.use_style — `pipe.set_lora` only when the style changes, fused into the weights. Each run starts with
no style applied. With `--unwindowed` the mix is also rendered as the scheduler would order it without the style
window (each job of another style than the one before starts a new unit: at most one job per unit here), which is
what the window avoids.

Weights: the real architecture (`--size real`, ModelScope's 1.7B UNet, its VAE and text encoder) over seeded random
weights, or tiny-random; LoRAs: random rank-`--rank` LoRAs in the peft layout (diffusers' names) on the attention
projections (benchmarks/lora_switch.py's), written as .safetensors files and loaded with bot.gpu.styles.load_styles.
On CUDA the pipeline takes t2v's fast path (`t2v.fast.optimize`: fused projections, channels-last, torch.compile,
CUDA graphs), as the bot's workers do; warm-up renders of each unit shape compile it before anything is timed.

GPU (H200, about 4 min with compiles):
    python benchmarks/style_mix.py --size real --device cuda --dtype float16 --unwindowed --out style-mix.json
CPU (seconds): python benchmarks/style_mix.py --size tiny --jobs 6 --users 3 --steps 2
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # `python benchmarks/style_mix.py` from a checkout that is not pip-installed
    sys.path.insert(0, str(ROOT))

import torch  # noqa: E402
from safetensors.torch import save_file  # noqa: E402

from benchmarks.lora_switch import random_lora  # noqa: E402
from bot.gpu.models import Models  # noqa: E402
from bot.gpu.styles import Style, load_styles  # noqa: E402
from bot.gpu.work import batch_work, render_work  # noqa: E402
from bot.jobs import batching  # noqa: E402
from bot.jobs.queue import FairQueue  # noqa: E402
from bot.jobs.spec import JobSpec, Queued  # noqa: E402
from t2v import TINY_RANDOM, GenerationRequest, load_pipeline, preflight  # noqa: E402
from t2v.config import ModelConfig  # noqa: E402
from t2v.loader import assemble, random_state_dicts  # noqa: E402

STYLE_NAMES = ("claymation", "watercolor", "anime")
PROMPTS = ["A panda eating bamboo on a rock.", "A red fox running through fresh snow.", "Waves crashing on a cliff.",
           "A hot air balloon over a desert at dawn.", "A cat playing piano in a jazz bar.",
           "A paper boat drifting down a rainy street."]
GOAL_PCT = 10.0  # the issue: a mix of styles costs at most 10% over one style
BATCH_MAX = 4  # bot.settings.BATCH_MAX's default when this was measured (2 since 2026-12-05; not imported: the GPU
#               machine's image has no pydantic)


def build_pipeline(args: argparse.Namespace) -> Any:
    """tiny-random, or the real architecture over seeded random weights; on CUDA the fast path (compiled unless
    --no-compile)."""
    if args.size == "tiny":
        pipe = load_pipeline(TINY_RANDOM, device=args.device, dtype=args.dtype)
    else:
        config = ModelConfig()
        states = random_state_dicts(config, seed=0, device=args.device)
        pipe = assemble(config, states, {name: f"random:{name}" for name in states}, args.device, args.dtype)
    if args.fast:
        from t2v import fast

        fast.optimize(pipe, backend=args.backend, compile=args.compile)
    return pipe


def write_styles(pipe: Any, folder: Path, rank: int) -> tuple[Style, ...]:
    """Three random LoRAs as .safetensors files, as the operator's styles (a prefix each, as styles have)."""
    styles = []
    for seed, name in enumerate(STYLE_NAMES):
        path = folder / f"{name}.safetensors"
        save_file(random_lora(pipe.config, rank, "attention", seed), str(path))
        styles.append(Style(name, path, 1.0, prefix=f"{name} style, "))
    return tuple(styles)


def jobs(args: argparse.Namespace, config: Any, mixed: bool) -> list[Queued]:
    """The backlog: `--jobs` standard videos of `--users` members, each member's style (one style unless mixed)."""
    queued = []
    for i in range(args.jobs):
        user = i % args.users
        request = GenerationRequest(PROMPTS[i % len(PROMPTS)], seed=i, steps=args.steps, frames=args.frames,
                                    width=config.width, height=config.height)
        style = STYLE_NAMES[user % len(STYLE_NAMES)] if mixed else STYLE_NAMES[0]
        queued.append(Queued(SimpleNamespace(id=i + 1, user_id=user + 1), JobSpec(request, style=style)))
    return queued


def units(backlog: list[Queued], batch_max: int, window: bool = True) -> list[list[Queued]]:
    """The units of work the bot's scheduler makes of the backlog, in the order it hands them out."""
    queue: FairQueue[Queued] = FairQueue(len(backlog), len(backlog))
    queue.restore(backlog)
    saved = batching.STYLE_WINDOW
    batching.STYLE_WINDOW = saved if window else 0
    try:
        order = []
        while batch := batching.take_batch(queue, batch_max):
            for job in batch:
                queue.finish(job.id)
            order.append(batch)
    finally:
        batching.STYLE_WINDOW = saved
    return order


def render(models: Models, plan: list[list[Queued]], switches: list[float]) -> dict[str, Any]:
    """Render the units as the worker does (from no style applied); the wall time and the style switches in it."""
    pipe = models.pipeline
    pipe.set_lora(None)
    pipe.synchronize()
    switches.clear()
    started = time.perf_counter()
    unit_s = []
    for batch in plan:
        requests, style = [job.spec.request for job in batch], batch[0].spec.style
        work = batch_work(requests, style) if len(batch) > 1 else render_work(requests[0], style)
        began = time.perf_counter()
        work(models, lambda *_: None, lambda: False)  # frames come back as numpy arrays: the GPU is done
        unit_s.append(time.perf_counter() - began)
    total = time.perf_counter() - started
    return {"total_s": total, "per_video_s": total / sum(len(b) for b in plan), "units": [len(b) for b in plan],
            "unit_styles": [b[0].spec.style for b in plan], "unit_s": unit_s, "switches": len(switches),
            "switch_s": sum(switches), "switch_each_s": list(switches)}


def timed_switches(pipe: Any, switches: list[float]) -> None:
    """Record the seconds of every set_lora call (synchronised), as the worker makes them."""
    set_lora = pipe.set_lora

    def timed(name: str | None, scale: float = 1.0, fused: bool = True) -> None:
        began = time.perf_counter()
        set_lora(name, scale, fused)
        pipe.synchronize()
        switches.append(time.perf_counter() - began)

    pipe.set_lora = timed


def warm_up(models: Models, plans: list[list[list[Queued]]]) -> float:
    """Render one unit of every size the plans use, in no style (compiles and captures each shape); seconds."""
    started = time.perf_counter()
    sizes = sorted({len(batch) for plan in plans for batch in plan})
    for size in sizes:
        batch = next(b for plan in plans for b in plan if len(b) == size)
        requests = [job.spec.request for job in batch]
        work = batch_work(requests) if size > 1 else render_work(requests[0])
        work(models, lambda *_: None, lambda: False)
    return time.perf_counter() - started


def measure(args: argparse.Namespace) -> dict[str, Any]:
    started = time.perf_counter()
    pipe = build_pipeline(args)
    out: dict[str, Any] = {"args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
                           "torch": torch.__version__, "load_average": os.getloadavg()}
    if torch.cuda.is_available() and args.device.startswith("cuda"):
        out["gpu"] = torch.cuda.get_device_name(args.device)
    with tempfile.TemporaryDirectory() as folder:
        styles = write_styles(pipe, Path(folder), args.rank)
        models = Models(pipe, styles=load_styles(pipe, styles))
    out["lora_layers"] = len(pipe.styles.loaded[STYLE_NAMES[0]].layers)
    plans = {"one_style": units(jobs(args, pipe.config, mixed=False), args.batch_max),
             "mix": units(jobs(args, pipe.config, mixed=True), args.batch_max)}
    if args.unwindowed:
        plans["mix_unwindowed"] = units(jobs(args, pipe.config, mixed=True), args.batch_max, window=False)
    out["setup_s"] = time.perf_counter() - started
    out["warm_up_s"] = warm_up(models, list(plans.values()))
    switches: list[float] = []
    timed_switches(pipe, switches)
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in plans}
    for _ in range(args.repeats):  # interleaved, so that drift hits every plan alike
        for name, plan in plans.items():
            runs[name].append(render(models, plan, switches))
    pipe.set_lora(None)
    out["runs"] = runs
    median = {name: statistics.median(run["total_s"] for run in done) for name, done in runs.items()}
    out["median_total_s"] = median
    out["median_per_video_s"] = {name: seconds / args.jobs for name, seconds in median.items()}
    out["overhead_pct"] = {name: 100 * (seconds / median["one_style"] - 1) for name, seconds in median.items()
                           if name != "one_style"}
    out["within_goal"] = out["overhead_pct"]["mix"] <= GOAL_PCT
    return out


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=["tiny", "real"], default="tiny")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default=None, help="float16, bfloat16, float32 (default: the device's)")
    parser.add_argument("--jobs", type=int, default=12)
    parser.add_argument("--users", type=int, default=6, help="members; member i asks for style i mod 3")
    parser.add_argument("--steps", type=int, default=None, help="default: 50 (real), 4 (tiny)")
    parser.add_argument("--frames", type=int, default=None, help="default: the model's (16 real)")
    parser.add_argument("--batch-max", type=int, default=BATCH_MAX)
    parser.add_argument("--rank", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--unwindowed", action="store_true", help="also the mix without the scheduler's style window")
    parser.add_argument("--no-compile", dest="compile", action="store_false",
                        help="on CUDA: the fast path without torch.compile (fused, channels-last, CUDA graphs)")
    parser.add_argument("--backend", default="inductor", help="torch.compile's backend on the fast path")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    problems = [f"--{name} {getattr(args, name)}: must be at least 1" for name in ("jobs", "users", "repeats",
                                                                                    "batch_max", "rank")
                if getattr(args, name) < 1]
    problems += filter(None, [preflight.compile_backend("--backend", args.backend)])
    if problems:
        parser.error("; ".join(problems))
    args.steps = args.steps or (50 if args.size == "real" else 4)
    args.frames = args.frames or (16 if args.size == "real" else 2)
    args.fast = args.device.startswith("cuda")
    return args


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse(argv)
    if args.device == "cpu":
        torch.set_num_threads(max(1, min(torch.get_num_threads(), 2)))
    result = measure(args)
    text = json.dumps(result, indent=2)
    print(text)
    if args.out is not None:
        args.out.write_text(text + "\n")
    mix = result["overhead_pct"]["mix"]
    print(f"one style {result['median_per_video_s']['one_style']:.3f} s/video, mix of 3 styles "
          f"{result['median_per_video_s']['mix']:.3f} s/video: {mix:+.1f}% (goal ≤ {GOAL_PCT:g}%)", file=sys.stderr)
    return result


if __name__ == "__main__":
    main()
