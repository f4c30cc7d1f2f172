"""A compiled video's time while the compile thread compiles another shape, with and without live previews.

Served run 11 (docs/benchmarks.md, "Served speed") timed the steady standard video at 1.56–2.06 s and once at 3.94 s
while the compile thread worked on the next shape. Every compiled video a server renders in its first minutes, and
whenever a new shape compiles later, runs beside such a compile; this asks how much slower it gets, and what of it:
the 50 graph replays and the sampler's small ops (a few dozen GIL hand-overs a step), or the live previews (their
frames copied off the GPU; until perf-notes row 64 also made GIFs on the GPU thread: bot.gpu.previews). Both kinds
of video are timed alone, then alternately while another thread compiles the UNet for the 4-video batch at the
bot's GIL switch interval (as bot.gpu.compiles does), then alone again; each video's longest wait between two steps
is kept as well.

The real-size pipeline over seeded random fp16 weights on t2v's fast path, the default shape (16×256², 50 DDIM
steps) compiled first in this process.

GPU:  python benchmarks/compiled_beside.py --out OUT/compiled_beside.json
CPU smoke test:  python benchmarks/compiled_beside.py --tiny --device cpu --backend eager --beside-max-s 5
"""

from __future__ import annotations

import logging
import math
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # `python benchmarks/compiled_beside.py` from a checkout that is not pip-installed
    sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from benchmarks import probes  # noqa: E402
from bot.gpu.compiles import COMPILE_SWITCH_INTERVAL_S  # noqa: E402
from bot.gpu.previews import previews  # noqa: E402
from t2v import fast, preflight  # noqa: E402
from t2v.compiled import video_shape  # noqa: E402
from t2v.config import ModelConfig, tiny_config  # noqa: E402
from t2v.loader import assemble, random_state_dicts  # noqa: E402
from t2v.request import GenerationRequest  # noqa: E402

log = logging.getLogger("compiled_beside")
KINDS = ("plain", "previews")
ALONE = 3  # videos of each kind before and after the compile
BESIDE_MAX_S = 240.0  # the longest the videos beside the compile go on


def video(pipe: Any, kind: str, seed: int) -> dict[str, float]:
    """One standard video (the model's default size and frames, 50 steps): its seconds and its longest wait between
    two steps."""
    steps: list[float] = []
    request = GenerationRequest("a red fox running through fresh snow", seed=seed, steps=50)
    extra = previews(lambda *_: None, request.fps) if kind == "previews" else {}
    started = time.perf_counter()
    pipe.generate(request, on_step=lambda step, total: steps.append(time.perf_counter()), **extra)
    if pipe.device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - started
    gaps = [b - a for a, b in zip([started, *steps], steps, strict=False)]
    return {"kind": kind, "seconds": round(seconds, 3), "longest_step_gap_s": round(max(gaps), 3)}


def phase(pipe: Any, name: str, count: int, seed: int, keep_going: Any = None) -> list[dict[str, Any]]:
    """`count` videos of each kind, alternating (or, with `keep_going`, while it says so)."""
    rows, n = [], 0
    while (n < 2 * count) if keep_going is None else keep_going():
        row = {"phase": name, **video(pipe, KINDS[n % 2], seed + n)}
        log.info("%s: %s", name, row)
        rows.append(row)
        n += 1
    return rows


def summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in dict.fromkeys(row["phase"] for row in rows):
        for kind in KINDS:
            times = [row["seconds"] for row in rows if row["phase"] == name and row["kind"] == kind]
            gaps = [row["longest_step_gap_s"] for row in rows if row["phase"] == name and row["kind"] == kind]
            if times:
                out[f"{name} {kind}"] = {"videos": len(times), "median_s": round(statistics.median(times), 3),
                                         "max_s": max(times), "longest_step_gap_s": max(gaps)}
    return out


def beside_problem(seconds: float) -> str | None:
    """Why --beside-max-s cannot bound the videos beside the compile, or None."""
    if not math.isfinite(seconds) or seconds <= 0:
        return f"--beside-max-s={seconds:g} must be a number of seconds above 0 (default {BESIDE_MAX_S:g})"
    return None


def main() -> None:
    made = probes.parser(__doc__)
    made.add_argument("--device", default="cuda")
    made.add_argument("--backend", default="inductor")
    made.add_argument("--tiny", action="store_true", help="tiny-random (a CPU check of the probe itself)")
    made.add_argument("--beside-max-s", type=float, default=BESIDE_MAX_S)
    args = probes.parse(made, lambda a: [preflight.device("--device", a.device),
                                         preflight.compile_backend("--backend", a.backend),
                                         beside_problem(a.beside_max_s)])
    config = tiny_config() if args.tiny else ModelConfig()
    sources = {name: f"random:{name}" for name in ("unet", "vae", "text_encoder")}
    pipe = assemble(config, random_state_dicts(config, seed=0, device=args.device), sources, args.device)
    # request_compile: only the compiles this probe starts, in a thread of their own (compile_in_background)
    fast.optimize(pipe, backend=args.backend, gpu_lock=threading.RLock(), request_compile=lambda shape: None)
    default = video_shape(config.unet, 1, config.frames, config.height, config.width)
    started = time.perf_counter()
    assert pipe.unet.compile_shape(default), "the default shape did not compile"
    first_compile_s = time.perf_counter() - started
    rows = phase(pipe, "alone before", ALONE, 0)
    seconds: list[float] = []

    def compile_batch() -> None:
        sys.setswitchinterval(COMPILE_SWITCH_INTERVAL_S)  # as bot.gpu.compiles does while a compile runs
        began = time.perf_counter()
        pipe.unet.compile_shape(video_shape(config.unet, 4, config.frames, config.height, config.width), decoder=False)
        seconds.append(time.perf_counter() - began)

    compiler = threading.Thread(target=compile_batch, daemon=True)
    began = time.perf_counter()
    compiler.start()
    rows += phase(pipe, "beside the compile", 0, 100,
                  keep_going=lambda: compiler.is_alive() and time.perf_counter() - began < args.beside_max_s)
    compiler.join(args.beside_max_s)
    sys.setswitchinterval(0.005)
    rows += phase(pipe, "alone after", ALONE, 200)
    probes.report({"device": torch.cuda.get_device_name() if pipe.device.type == "cuda" else "cpu",
                   "torch": torch.__version__,
                   "default_compile_s": round(first_compile_s, 1),
                   "batch_compile_s": round(seconds[0], 1) if seconds else None,
                   "switch_interval_us": 1e6 * COMPILE_SWITCH_INTERVAL_S, "summary": summary(rows)}, args.out,
                  {"videos": rows})


if __name__ == "__main__":
    main()
