"""The UNet's two serving paths side by side, per shape: eager (fused, CUDA graph) and compiled (torch.compile, static
shapes, one isolated compile per shape); what a shape's compile costs (cold, and in a second process with inductor's
cache warm), what a guided UNet call costs on each path, and the GPU memory each kept shape's CUDA graph adds.

Real-size network with seeded random weights (fp16 on GPUs). A "call" is one guided UNet call (2 rows per video), timed
as the mean of `--calls` CUDA-graph replays after the capture; a standard video is 50 of them plus ~0.08 s.

GPU:  python benchmarks/compile_paths.py --phases eager,compiled,compiled-warm --out OUT/paths.json
CPU smoke test:  python benchmarks/compile_paths.py --tiny --device cpu --phases eager,compiled --backend eager
"""

from __future__ import annotations

import argparse
import json
import logging
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # `python benchmarks/compile_paths.py` from a checkout that is not pip-installed
    sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from t2v import TINY_RANDOM, load_pipeline, preflight  # noqa: E402
from t2v.compiled import FastUNet, JitCompiler, Shape, example_inputs, video_shape  # noqa: E402
from t2v.config import ModelConfig  # noqa: E402
from t2v.fast import channels_last, configure_inductor, fuse  # noqa: E402
from t2v.loader import assemble, random_state_dicts  # noqa: E402

log = logging.getLogger("compile_paths")

# (name, videos, frames, width, height): the /video default, a batch, the other aspects, longer clips
SHAPES = [("standard 1:1", 1, 16, 256, 256), ("batch 4", 4, 16, 256, 256), ("16:9", 1, 16, 448, 256),
          ("9:16 24f", 1, 24, 256, 448), ("4:3 32f", 1, 32, 320, 256), ("3:4 8f", 2, 8, 256, 320)]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--phases", default="eager,compiled,compiled-warm",
                        help="comma list of eager, compiled, compiled-warm (a second process, cache warm)")
    parser.add_argument("--cache", type=Path, default=Path("/tmp/t2v-compile-cache"), help="inductor's cache")
    parser.add_argument("--calls", type=int, default=20, help="timed replays per shape (default 20)")
    parser.add_argument("--shapes", type=int, default=len(SHAPES), help="how many of SHAPES to time")
    parser.add_argument("--backend", default="inductor")
    parser.add_argument("--tiny", action="store_true", help="tiny-random instead of the real size")
    parser.add_argument("--out", type=Path)
    parser.add_argument("--warm-child", action="store_true", help=argparse.SUPPRESS)  # compiled-warm's process
    args = parser.parse_args(argv)
    problem = preflight.compile_backend("--backend", args.backend)
    if problem is not None:
        parser.error(problem)
    return args


def build_unet(args: argparse.Namespace) -> torch.nn.Module:
    """The fused, channels-last UNet of the real architecture over random weights (or tiny-random's)."""
    if args.tiny:
        pipe = load_pipeline(TINY_RANDOM, device=args.device)
    else:
        config = ModelConfig()
        states = random_state_dicts(config, seed=0, device=args.device)
        pipe = assemble(config, states, {n: f"random:{n}" for n in states}, args.device)
    return channels_last(fuse(pipe.unet))


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize(device)


def per_call_ms(fast: FastUNet, shape: Shape, args: argparse.Namespace) -> dict[str, float]:
    """First call (capture included) and the mean of `--calls` later calls of `shape`, in ms; memory it added."""
    inputs = example_inputs(shape, next(fast.unet.parameters()))
    reserved = torch.cuda.memory_reserved(args.device) if args.device.startswith("cuda") else 0
    sync(args.device)
    started = time.perf_counter()
    fast(*inputs)
    sync(args.device)
    first = time.perf_counter() - started
    started = time.perf_counter()
    for _ in range(args.calls):
        fast(*inputs)
    sync(args.device)
    mean = (time.perf_counter() - started) / args.calls
    added = (torch.cuda.memory_reserved(args.device) - reserved) if args.device.startswith("cuda") else 0
    return {"first_ms": 1e3 * first, "call_ms": 1e3 * mean, "reserved_added_mib": added / 2**20}


def time_shapes(fast: FastUNet, args: argparse.Namespace, compile_each: bool) -> dict[str, Any]:
    """Per shape: compile it first (timed) when `compile_each`, then time its calls."""
    results = {}
    for name, videos, frames, width, height in SHAPES[:args.shapes]:
        shape = video_shape(fast.cfg, videos, frames, height, width)
        entry: dict[str, Any] = {"videos": videos, "frames": frames, "width": width, "height": height}
        if compile_each:
            started = time.perf_counter()
            entry["compiled"] = fast.compile_shape(shape)
            entry["compile_s"] = time.perf_counter() - started
        entry.update(per_call_ms(fast, shape, args))
        log.info("%s: %s", name, entry)
        results[name] = entry
    return results


def run_phase(name: str, unet: torch.nn.Module, args: argparse.Namespace) -> dict[str, Any]:
    graphs = args.device.startswith("cuda")
    if name == "eager":
        return {"shapes": time_shapes(FastUNet(unet, None, graphs), args, compile_each=False)}
    if name == "compiled":
        return {"shapes": time_shapes(FastUNet(unet, JitCompiler(args.backend), graphs), args, compile_each=True)}
    if name == "compiled-warm":  # a fresh process: weights, then the standard shape's compile, inductor's cache warm
        started = time.perf_counter()
        child = subprocess.run([sys.executable, __file__, "--warm-child", "--device", args.device, "--cache",
                                str(args.cache), "--backend", args.backend, *(["--tiny"] if args.tiny else [])],
                               capture_output=True, text=True, check=False)
        if child.returncode != 0:
            return {"error": child.stderr[-3000:]}
        return {**json.loads(child.stdout.strip().splitlines()[-1]), "process_s": time.perf_counter() - started}
    raise SystemExit(f"unknown phase {name!r}")


def warm_child(args: argparse.Namespace) -> None:
    """compiled-warm's process: build the weights, then time the standard shape's compile and its calls."""
    unet = build_unet(args)
    fast = FastUNet(unet, JitCompiler(args.backend), args.device.startswith("cuda"))
    _, videos, frames, width, height = SHAPES[0]
    shape = video_shape(fast.cfg, videos, frames, height, width)
    started = time.perf_counter()
    fast.compile_shape(shape)
    print(json.dumps({"compile_s": time.perf_counter() - started, **per_call_ms(fast, shape, args)}))


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    configure_inductor(args.cache)
    if args.warm_child:
        warm_child(args)
        return {}
    unet = build_unet(args)
    report: dict[str, Any] = {"machine": {"device": torch.cuda.get_device_name(args.device)
                                          if args.device.startswith("cuda") else "cpu",
                                          "torch": torch.__version__, "date": time.strftime("%Y-%m-%d %H:%M")},
                              "args": {k: str(v) for k, v in vars(args).items()}, "phases": {}}
    for name in args.phases.split(","):
        started = time.perf_counter()
        report["phases"][name] = {**run_phase(name, unet, args), "phase_s": time.perf_counter() - started}
        if args.out:  # written after every phase: a run cut short keeps what it measured
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    main()
