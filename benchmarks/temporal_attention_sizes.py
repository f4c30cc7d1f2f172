"""The temporal attention's kernel against SDPA on every video shape the bot and the CLI serve, timed alone.

The fast path sends a temporal attention to t2v.kernels.temporal_attention's Triton kernel or to SDPA by its count
of (problem, head) pairs (`temporal_attention.MIN_PAIRS` and up; until perf-notes row 73 also at most 65,536), a
rule measured on 16-frame shapes of single videos and batches of 4. This times both on each temporal attention
shape of one guided UNet call for the sizes that rule was never measured on — batches of 8 and 16 (BATCH_MAX's
range), 1 to 64 frames, 576×320 and 1024×576 — and reports per shape the pairs, both times, the choice the rule
makes and the faster one, and per video size the milliseconds a call each way and the rule's loss against always
choosing the faster.

The shapes come from the real-size UNet run on the meta device (no weights); each is timed from fresh random
q, k, v as `t2v.bench.kernel_checks.attention_timing` times them (eager launches, the best of several).

GPU:  python benchmarks/temporal_attention_sizes.py --out OUT/temporal_attention_sizes.json
"""

from __future__ import annotations

import logging
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # `python benchmarks/temporal_attention_sizes.py` from a checkout not pip-installed
    sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from benchmarks import probes  # noqa: E402
from t2v.bench import kernel_checks  # noqa: E402
from t2v.config import UNetConfig  # noqa: E402
from t2v.kernels import temporal_attention as ta  # noqa: E402
from t2v.unet import UNet3D  # noqa: E402

log = logging.getLogger("temporal_attention_sizes")
# (batch, frames, width, height): the standard video, BATCH_MAX's batches, the frame range, the wide sizes
SIZES = ((1, 16, 256, 256), (2, 16, 256, 256), (4, 16, 256, 256), (8, 16, 256, 256), (16, 16, 256, 256),
         (1, 1, 256, 256), (1, 8, 256, 256), (1, 24, 256, 256), (1, 32, 256, 256), (1, 64, 256, 256),
         (4, 64, 256, 256), (1, 24, 576, 320), (1, 16, 1024, 576), (1, 64, 1024, 576))


def attention_shapes(batch: int, frames: int, width: int, height: int) -> Counter:
    """(problems, heads, frames, head_dim) → count in one guided call of `batch` videos (2 rows each)."""
    with torch.device("meta"):
        unet = UNet3D(UNetConfig())
    cfg = UNetConfig()
    inputs = (torch.empty(2 * batch, cfg.in_dim, frames, height // 8, width // 8, device="meta"),
              torch.zeros(2 * batch, dtype=torch.long, device="meta"),
              torch.empty(2 * batch, 77, cfg.context_dim, device="meta"))
    return kernel_checks.record_shapes(unet, inputs)[0]


def label(size: tuple[int, int, int, int]) -> str:
    batch, frames, width, height = size
    return f"{batch}×{frames}×{width}×{height}"


def rule_uses_kernel(shape: tuple[int, int, int, int]) -> bool:
    """What the fast path's "auto" choice does with this shape on a GPU (where the tensors' own checks pass)."""
    return ta.shape_problem(shape) is None and ta.enough_pairs(shape, ta.MIN_PAIRS)


def measure(size: tuple[int, int, int, int], device: torch.device) -> dict:
    """Both ways on each shape of one call of `size`; the rule's milliseconds a call beside the best choice's."""
    timing = kernel_checks.attention_timing(attention_shapes(*size), device, choices=((ta.PACKING, ta.ROWS),))
    kernel = f"{ta.PACKING}/{ta.ROWS}_ms"
    rows, rule_ms, best_ms = [], 0.0, 0.0
    for row in timing["per_shape"]:
        shape, calls = tuple(row["shape"]), row["calls"]
        sdpa, ours = row["sdpa_ms"], row[kernel]
        chosen = ours if rule_uses_kernel(shape) else sdpa
        rule_ms += calls * chosen
        best_ms += calls * min(sdpa, ours)
        rows.append({"shape": list(shape), "calls": calls, "pairs": shape[0] * shape[1], "sdpa_ms": sdpa,
                     "kernel_ms": ours, "rule": "kernel" if rule_uses_kernel(shape) else "sdpa",
                     "faster": "kernel" if ours < sdpa else "sdpa"})
    return {"size": label(size), "sdpa_ms_per_call": timing["ms_per_unet_call"]["sdpa"],
            "kernel_ms_per_call": timing["ms_per_unet_call"][kernel.removesuffix("_ms")],
            "rule_ms_per_call": rule_ms, "best_ms_per_call": best_ms, "shapes": rows}


def main() -> None:
    made = probes.parser(__doc__)
    args = probes.parse(made, lambda args: [
        None if torch.cuda.is_available() else "it times kernels on a CUDA GPU, and torch sees none here"])
    device = torch.device("cuda")
    started = time.perf_counter()
    found = {"device": torch.cuda.get_device_name(), "torch": torch.__version__,
             "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "rule_min_pairs": ta.MIN_PAIRS,
             "kernel": f"{ta.PACKING}/{ta.ROWS}", "sizes": []}
    for size in SIZES:
        row = measure(size, device)
        found["sizes"].append(row)
        log.info("%s: SDPA %.3f, kernel %.3f, the rule %.3f, the faster of each %.3f ms a call", row["size"],
                 row["sdpa_ms_per_call"], row["kernel_ms_per_call"], row["rule_ms_per_call"], row["best_ms_per_call"])
    found["seconds"] = time.perf_counter() - started
    probes.report({k: v for k, v in found.items() if k != "sizes"}, args.out, {"sizes": found["sizes"]})


if __name__ == "__main__":
    main()
