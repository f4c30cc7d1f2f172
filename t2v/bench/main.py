"""`python -m t2v bench`: random weights, the runs of t2v.bench.sections, then bench.json and bench.md."""

from __future__ import annotations

import os
import time
from pathlib import Path

import torch

from t2v.bench import report, sections, twin
from t2v.bench.measure import Recorder
from t2v.config import ModelConfig
from t2v.networks import random_state_dicts

# environment variables that change what a run measures (inductor's and Triton's settings, the project's own),
# kept in bench.json's info so that two runs' numbers are compared knowing what differed
SETTING_PREFIXES = ("TORCHINDUCTOR_", "TORCH_", "TRITON_", "T2V_", "CUDA_", "PYTORCH_")


def settings_from_environment() -> dict[str, str]:
    """The environment's settings (SETTING_PREFIXES) this process runs with, by name."""
    return {name: value for name, value in sorted(os.environ.items()) if name.startswith(SETTING_PREFIXES)}


def run(args) -> int:
    """Run the benchmark described by the parsed `bench` arguments (t2v.cli)."""
    device = torch.device(args.device)
    config = twin.TINY if args.tiny else ModelConfig()
    info = {"device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
            "torch": torch.__version__, "steps": args.steps, "date": time.strftime("%Y-%m-%d"),
            "config": config.name, "environment": settings_from_environment()}
    out = Path(args.out) if args.out else None
    if out:
        out.mkdir(parents=True, exist_ok=True)
        for name in ("bench.md", "bench.json"):  # --overwrite: the earlier run's both go now, so a run cut short
            (out / name).unlink(missing_ok=True)  # leaves its own bench.json alone, never beside an old bench.md
    rec = Recorder(out, info)
    started = args.started = time.perf_counter()
    states = random_state_dicts(config, seed=0, device=args.device)
    if device.type == "cuda":
        torch.cuda.empty_cache()
    rec.extra("random_weights_s", time.perf_counter() - started)
    if args.cold_start_only:
        sections.cold_section(config, states, args, rec)
    else:
        sections.run_all(args, config, states, device, rec)
    table = report.markdown(rec.data)
    print(table)
    if out:
        (out / "bench.md").write_text(table)
    return 0
