"""What a new shape's first video costs on the eager path, with cuDNN's algorithm search on (as the fast path sets it)
and off: the UNet's CUDA graph capture (its warm-up calls included) and then each replay.

In the served runs (docs/benchmarks.md, "Served speed") a cold server renders most jobs on the eager path while the
compile thread works, and each new shape's first call paid 2–8 s to capture its graph: most of the first video's
15–20 s, and a large part of p95. The fast path turns `torch.backends.cudnn.benchmark` on, so each new shape's first
calls time every convolution algorithm for each of its ≈ 20 convolution shapes before the capture; with the search
off cuDNN picks by heuristics, at once, perhaps slower kernels. This measures both, each in a fresh process (cuDNN's
choices are kept per process), on the real-size UNet with random fp16 weights, fused and channels-last as served,
for five shapes of the served mix: the first call's seconds and the replay's milliseconds per UNet call. A 50-step
video replays 50 times, so the search pays off only if it saves (first-call seconds) / 50 a call.

GPU:  python benchmarks/capture_cost.py --out OUT/capture_cost.json
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # `python benchmarks/capture_cost.py` from a checkout that is not pip-installed
    sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from benchmarks import probes  # noqa: E402

log = logging.getLogger("capture_cost")
SHAPES = ((16, 320, 256), (25, 256, 320), (16, 448, 256), (10, 320, 256), (21, 320, 256))  # (frames, h, w) pixels
REPLAYS = 5


def measure(search: bool, device: str = "cuda:0") -> dict[str, Any]:
    """In this process: the first call's seconds and the median replay's milliseconds for each of SHAPES."""
    from t2v.compiled import FastUNet, example_inputs, video_shape
    from t2v.config import ModelConfig
    from t2v.fast import channels_last, fuse
    from t2v.unet import UNet3D

    torch.backends.cudnn.benchmark = search
    cfg = ModelConfig().unet
    torch.manual_seed(0)
    with torch.device(device):
        unet = UNet3D(cfg).half().eval()
    fast = FastUNet(channels_last(fuse(unet)), None, cuda_graphs=True)
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
        log.info("search %s, %d×%d×%d: first call %.2f s, replay %.2f ms", search, frames, height, width, first,
                 rows[-1]["replay_ms"])
    return {"cudnn_benchmark": search, "shapes": rows}


def compare(on: dict[str, Any], off: dict[str, Any], steps: int = 50) -> dict[str, Any]:
    """Per shape and summed: the seconds a `steps`-step video's UNet calls take, first call included, each way."""
    rows = []
    for with_search, without in zip(on["shapes"], off["shapes"], strict=True):
        video = {name: run["first_call_s"] + (steps - 1) * run["replay_ms"] / 1e3
                 for name, run in (("search", with_search), ("heuristics", without))}
        rows.append({key: with_search[key] for key in ("frames", "height", "width")} |
                    {"first_call_s": {"search": with_search["first_call_s"], "heuristics": without["first_call_s"]},
                     "replay_ms": {"search": with_search["replay_ms"], "heuristics": without["replay_ms"]},
                     f"video_unet_s_{steps}_steps": {name: round(value, 3) for name, value in video.items()}})
    totals = {name: round(sum(row[f"video_unet_s_{steps}_steps"][name] for row in rows), 3)
              for name in ("search", "heuristics")}
    return {"shapes": rows, f"total_video_unet_s_{steps}_steps": totals,
            "faster_first_videos": min(totals, key=totals.get)}


def child(search: bool) -> dict[str, Any]:
    """`measure(search)` in a fresh process (cuDNN's algorithm choices are kept for a process's life)."""
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "found.json"
        subprocess.run([sys.executable, __file__, "--child", "on" if search else "off", "--out", str(out)],
                       check=True)
        return json.loads(out.read_text())


def main() -> None:
    made = probes.parser(__doc__)
    made.add_argument("--child", choices=("on", "off"), help=argparse.SUPPRESS)  # one mode, in a fresh process
    args = probes.parse(made, lambda args: [
        None if torch.cuda.is_available() else "needs a CUDA GPU: it times CUDA graph captures and cuDNN's search"])
    if args.child is not None:
        probes.report(measure(args.child == "on"), args.out)
        return
    on, off = child(True), child(False)
    probes.report(compare(on, off), args.out, {"search_on": on, "search_off": off,
                                               "device": torch.cuda.get_device_name(), "torch": torch.__version__})


if __name__ == "__main__":
    main()
