"""Real-size network, random weights: generate 16x256² in fp32 and in half precision from the same noise.

Reports the latents' max relative error of each half-precision run against fp32, wall time of a warm run and
peak GPU memory. Run on a GPU:  python benchmarks/precision.py --device cuda --dtypes bfloat16 float16
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from t2v import GenerationRequest
from t2v.config import ModelConfig
from t2v.loader import assemble
from t2v.networks import random_state_dicts

PROMPT = "A panda eating bamboo on a rock."


def run(states: dict, device: str, dtype: str, request: GenerationRequest, noise: torch.Tensor) -> dict:
    """Load one pipeline, warm it up, time one generation; free it afterwards."""
    sources = {name: f"random:{name}" for name in states}
    pipe = assemble(ModelConfig(), states, sources, device, dtype)
    pipe.generate(request, latents=noise)  # warm-up
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    result = pipe.generate(request, latents=noise)
    torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    peak = torch.cuda.max_memory_allocated() / 2**30
    del pipe
    torch.cuda.empty_cache()
    return {"dtype": dtype, "seconds": seconds, "peak_gib": peak, "latents": result.latents.float(),
            "timings": result.timings}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--dtypes", nargs="+", default=["bfloat16", "float16"])
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--out", type=Path, default=None, help="write the results as JSON here")
    args = parser.parse_args()
    states = random_state_dicts(ModelConfig(), seed=0)
    request = GenerationRequest(PROMPT, seed=0, steps=args.steps)
    noise = torch.randn(1, 4, 16, 32, 32, generator=torch.Generator().manual_seed(0))
    results = [run(states, args.device, dtype, request, noise) for dtype in ["float32", *args.dtypes]]
    ref = results[0]["latents"]
    rows = []
    for r in results:
        err = float((r["latents"] - ref).abs().max() / ref.abs().max())
        rows.append({"dtype": r["dtype"], "seconds": round(r["seconds"], 3), "peak_gib": round(r["peak_gib"], 2),
                     "rel_err_vs_fp32": err, "timings": {k: round(v, 3) for k, v in r["timings"].items()}})
        print(f"{r['dtype']:>9}: {r['seconds']:.2f} s, peak {r['peak_gib']:.2f} GiB, "
              f"latents rel. err vs fp32 {err:.2e}")
    info = {"gpu": torch.cuda.get_device_name(), "torch": torch.__version__, "steps": args.steps, "rows": rows}
    if args.out:
        args.out.write_text(json.dumps(info, indent=2))


if __name__ == "__main__":
    main()
