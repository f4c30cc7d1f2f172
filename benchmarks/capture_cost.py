"""What a new shape's first video costs on the eager path, with cuDNN's algorithm search on (as the fast path sets it),
on over every algorithm cuDNN lists, and off: the UNet's CUDA graph capture (its warm-up calls included) and then each
replay.

In the served runs (docs/benchmarks.md, "Served speed") a cold server renders most jobs on the eager path while the
compile thread works, and each new shape's first call paid 2–8 s to capture its graph: most of the first video's
15–20 s, and a large part of p95. The fast path turns `torch.backends.cudnn.benchmark` on, so each new shape's first
calls time up to 10 convolution algorithms (torch's `cudnn.benchmark_limit`) for each of its ≈ 20 convolution shapes
before the capture; with the limit at 0 it times every algorithm cuDNN lists (a longer first call, perhaps faster
convolutions for every replay, the compiled path's included); with the search off cuDNN picks by heuristics, at once,
perhaps slower kernels. A fourth mode keeps the search as shipped while another thread compiles the UNet for another
shape, as the bot's compile thread does in a cold server's first minutes (its GIL switch interval, the GPU lock that
captures and first compiled runs share). This measures each mode in a fresh process (cuDNN's choices are kept per
process), on the real-size UNet with random fp16 weights, fused and channels-last as served, for five shapes of the
served mix: the first call's seconds and the replay's milliseconds per UNet call. A 50-step video replays 50 times,
so the search pays off only if it saves (first-call seconds) / 50 a call. Measured on 2026-12-03: docs/perf-notes.md
rows 51, 52 and 54. `--switch-us` runs the fourth mode once per GIL switch interval given (each compile from an empty
inductor cache, as a cold server's), and says how long each compile took beside the captures (perf-notes row 55).

GPU:  python benchmarks/capture_cost.py --out OUT/capture_cost.json
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # `python benchmarks/capture_cost.py` from a checkout that is not pip-installed
    sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from benchmarks import probes  # noqa: E402
from bot.gpu.compiles import COMPILE_SWITCH_INTERVAL_S  # noqa: E402

log = logging.getLogger("capture_cost")
SHAPES = ((16, 320, 256), (25, 256, 320), (16, 448, 256), (10, 320, 256), (21, 320, 256))  # (frames, h, w) pixels
REPLAYS = 5
# mode → (cudnn.benchmark, its limit, whether another thread compiles the UNet meanwhile, as the bot's does)
MODES = {"search": (True, 10, False), "search-all": (True, 0, False), "heuristics": (False, 10, False),
         "beside-compile": (True, 10, True)}
COMPILED = (16, 256, 256)  # the shape the compile thread works on in "beside-compile" (none of SHAPES)


MAX_SWITCH_US = 1e5  # CPython's own default is 5,000 µs
COMPILE_WAIT_S = 200.0  # after the last shape, how long "beside-compile" waits for its compile to end


def measure(mode: str, switch_s: float, device: str = "cuda:0") -> dict[str, Any]:
    """In this process: the first call's seconds and the median replay's milliseconds for each of SHAPES; in
    "beside-compile", with the compile thread at GIL switch interval `switch_s`, and the compile's seconds."""
    from t2v.compiled import FastUNet, JitCompiler, compile_in_background, example_inputs, video_shape
    from t2v.config import ModelConfig
    from t2v.fast import channels_last, fuse
    from t2v.unet import UNet3D

    torch.backends.cudnn.benchmark, torch.backends.cudnn.benchmark_limit, compiling = MODES[mode]
    cfg = ModelConfig().unet
    torch.manual_seed(0)
    with torch.device(device):
        unet = UNet3D(cfg).half().eval()
    lock = threading.RLock()  # captures and compiled first runs take turns, as the bot's worker and compile thread
    fast = FastUNet(channels_last(fuse(unet)), JitCompiler("inductor", None, lock) if compiling else None,
                    cuda_graphs=True, request_compile=lambda shape: None, gpu_lock=lock)
    compiler, compile_s = None, []
    if compiling:
        compile_in_background()
        compiler = threading.Thread(target=_compile, args=(fast, video_shape(cfg, 1, *COMPILED), switch_s, compile_s),
                                    daemon=True)
        compiler.start()
    rows = []
    for frames, height, width in SHAPES:
        inputs = example_inputs(video_shape(cfg, 1, frames, height, width), next(unet.parameters()))
        torch.cuda.synchronize(device)
        started = time.perf_counter()
        fast(*inputs)
        torch.cuda.synchronize(device)
        first = time.perf_counter() - started
        replays = []
        for _ in range(REPLAYS):
            started = time.perf_counter()
            fast(*inputs)
            torch.cuda.synchronize(device)
            replays.append(1e3 * (time.perf_counter() - started))
        rows.append({"frames": frames, "height": height, "width": width, "first_call_s": round(first, 3),
                     "replay_ms": round(statistics.median(replays), 3)})
        log.info("%s, %d×%d×%d: first call %.2f s, replay %.2f ms", mode, frames, height, width, first,
                 rows[-1]["replay_ms"])
    if compiler is not None:
        running = compiler.is_alive()  # else the compile ended before the last shape: say so
        log.info("the compile was %s when the last shape was timed", "still running" if running else "over")
        compiler.join(COMPILE_WAIT_S)
        return {"mode": mode, "switch_us": 1e6 * switch_s, "shapes": rows, "compile_running_throughout": running,
                "compile_s": round(compile_s[0], 1) if compile_s else None}
    return {"mode": mode, "shapes": rows}


def _compile(fast: Any, shape: Any, switch_s: float, seconds: list[float]) -> None:
    """The bot's compile thread's work (bot.gpu.compiles): one UNet shape at GIL switch interval `switch_s`; its
    seconds appended to `seconds` when it ends."""
    sys.setswitchinterval(switch_s)  # the process's: the bot sets it while a compile runs
    started = time.perf_counter()
    fast.compile_shape(shape, decoder=False)
    seconds.append(time.perf_counter() - started)


def compare(runs: dict[str, dict[str, Any]], steps: int = 50) -> dict[str, Any]:
    """Per shape and summed, for each mode of `runs`: the seconds a `steps`-step video's UNet calls take, its first
    call included; the mode with the fastest first videos, and the one with the fastest replays."""
    key = f"video_unet_s_{steps}_steps"
    rows = []
    for same_shape in zip(*(run["shapes"] for run in runs.values()), strict=True):
        by_mode = dict(zip(runs, same_shape, strict=True))
        rows.append({name: same_shape[0][name] for name in ("frames", "height", "width")} |
                    {"first_call_s": {mode: row["first_call_s"] for mode, row in by_mode.items()},
                     "replay_ms": {mode: row["replay_ms"] for mode, row in by_mode.items()},
                     key: {mode: round(row["first_call_s"] + (steps - 1) * row["replay_ms"] / 1e3, 3)
                           for mode, row in by_mode.items()}})
    totals = {mode: round(sum(row[key][mode] for row in rows), 3) for mode in runs}
    replays = {mode: round(sum(row["replay_ms"][mode] for row in rows), 3) for mode in runs}
    return {"shapes": rows, f"total_{key}": totals, "total_replay_ms": replays,
            "faster_first_videos": min(totals, key=totals.get), "faster_replays": min(replays, key=replays.get)}


def child(mode: str, switch_us: float) -> dict[str, Any]:
    """`measure(mode)` in a fresh process (cuDNN's algorithm choices are kept for a process's life), compiling
    into an inductor cache of its own, empty."""
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "found.json"
        env = os.environ | {"TORCHINDUCTOR_CACHE_DIR": str(Path(folder) / "inductor")}
        subprocess.run([sys.executable, __file__, "--child", mode, "--switch-us", str(switch_us), "--out", str(out)],
                       check=True, env=env)
        return json.loads(out.read_text())


def runs_of(modes: list[str], switch_us: list[float]) -> list[tuple[str, str, float]]:
    """(name, mode, switch interval in µs) for each run: "beside-compile" once per interval, named by it when
    several are asked for."""
    found = []
    for mode in modes:
        intervals = switch_us if MODES[mode][2] else switch_us[:1]
        found += [(f"{mode}@{us:g}us" if MODES[mode][2] and len(intervals) > 1 else mode, mode, us)
                  for us in intervals]
    return found


def main() -> None:
    made = probes.parser(__doc__)
    made.add_argument("--child", choices=MODES, help=argparse.SUPPRESS)  # one mode, in a fresh process
    made.add_argument("--modes", nargs="+", choices=MODES, default=list(MODES), help="the modes to measure (all)")
    made.add_argument("--switch-us", nargs="+", type=float, default=[1e6 * COMPILE_SWITCH_INTERVAL_S],
                      metavar="US", help="the compile thread's GIL switch interval(s) for beside-compile, in "
                      f"microseconds (the bot's: {1e6 * COMPILE_SWITCH_INTERVAL_S:g})")
    args = probes.parse(made, lambda args: [
        *(f"--switch-us {us:g}: give an interval from 1 to {MAX_SWITCH_US:g} microseconds" for us in args.switch_us
          if not 1 <= us <= MAX_SWITCH_US),
        None if torch.cuda.is_available() else "needs a CUDA GPU: it times CUDA graph captures and cuDNN's search"])
    if args.child is not None:
        probes.report(measure(args.child, args.switch_us[0] / 1e6), args.out)
        os._exit(0)  # a compile thread still inside torch's compiler would abort the interpreter's shutdown
    runs = {name: child(mode, us) for name, mode, us in runs_of(args.modes, args.switch_us)}
    probes.report(compare(runs), args.out, {"runs": runs, "device": torch.cuda.get_device_name(),
                                            "torch": torch.__version__, "cudnn": torch.backends.cudnn.version()})


if __name__ == "__main__":
    main()
