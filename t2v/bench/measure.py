"""The benchmark's measurements: work sizes, timed runs of either pipeline, FLOP counts, the cold start.

Both pipelines hold the same random weights (ours → diffusers through t2v.weights.keys), start from the same noise and
prompt, and must end on the same latents (max error relative to max |latent|). Per work size: seconds (CUDA-
synchronised wall time of a warm run, prompt to uint8/np frames), peak GPU memory, FLOPs counted with
FlopCounterMode (one UNet call × steps + decode + text encoder) over seconds, and videos per GPU-hour.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from t2v.config import ModelConfig
from t2v.loader import assemble, load_pipeline
from t2v.request import GenerationRequest

log = logging.getLogger(__name__)
PROMPT = "A panda eating bamboo on a rock."
STAGES = ("encode_s", "denoise_s", "decode_s")  # the driver's stage times kept in our rows


@dataclass(frozen=True)
class Work:
    """One benchmark size: `batch` videos of `frames` × `width`×`height`."""

    name: str
    batch: int
    frames: int
    width: int
    height: int

    def requests(self, steps: int) -> list[GenerationRequest]:
        return [GenerationRequest(PROMPT, seed=i, steps=steps, frames=self.frames, width=self.width,
                                  height=self.height) for i in range(self.batch)]

    def noise(self, channels: int) -> torch.Tensor:
        shape = (self.batch, channels, self.frames, self.height // 8, self.width // 8)
        return torch.randn(shape, generator=torch.Generator().manual_seed(1234))


# batch2, batch8 and batch16 (BATCH_MAX's highest): the kernels issue's question whether another batch size than the
# bot's BATCH_MAX default of then, 4, gains throughput (it is 2 since); not in the default --configs
WORK = {"standard": Work("standard", 1, 16, 256, 256), "batch2": Work("batch2", 2, 16, 256, 256),
        "batch4": Work("batch4", 4, 16, 256, 256), "batch8": Work("batch8", 8, 16, 256, 256),
        "batch16": Work("batch16", 16, 16, 256, 256), "zeroscope": Work("zeroscope", 1, 24, 576, 320)}
DEFAULT_CONFIGS = ("standard", "batch4", "zeroscope")  # the work sizes unless --configs names others
# --tiny: CPU smoke-test sizes
TINY_WORK = {"standard": Work("standard", 1, 4, 64, 64), "batch2": Work("batch2", 2, 4, 64, 64),
             "batch4": Work("batch4", 4, 4, 64, 64), "batch8": Work("batch8", 8, 4, 64, 64),
             "batch16": Work("batch16", 16, 4, 64, 64), "zeroscope": Work("zeroscope", 1, 6, 128, 64)}


class Recorder:
    """Collects results and rewrites `bench.json` after each one, so a run cut short still leaves data."""

    def __init__(self, out: Path | None, info: dict):
        self.out, self.data = out, {"info": info, "rows": [], "extra": {}}

    def row(self, **row) -> None:
        self.data["rows"].append(row)
        print(json.dumps({k: v for k, v in row.items() if k != "latents"}, default=str), flush=True)
        self.save()

    def extra(self, key: str, value) -> None:
        self.data["extra"][key] = value
        print(f"{key}: {json.dumps(value, default=str)[:2000]}", flush=True)
        self.save()

    def save(self) -> None:
        if self.out is not None:
            rows = [{k: v for k, v in r.items() if k != "latents"} for r in self.data["rows"]]
            (self.out / "bench.json").write_text(json.dumps({**self.data, "rows": rows}, indent=1, default=str))


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn, device: torch.device, steps: int, repeats: int = 1, warm_steps: int = 2) -> tuple[float, dict, object]:
    """Median wall time of `repeats` runs of `fn(steps)` after a `fn(warm_steps)` warm-up (compiles, captures,
    picks kernels); the memory peaks cover the warm-up too."""
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    start = time.perf_counter()
    fn(warm_steps)
    sync(device)
    warmup = time.perf_counter() - start
    times, result = [], None
    for _ in range(repeats):
        sync(device)
        start = time.perf_counter()
        result = fn(steps)
        sync(device)
        times.append(time.perf_counter() - start)
    mem = {"warmup_s": warmup}
    if device.type == "cuda":
        mem |= {"peak_gib": torch.cuda.max_memory_allocated(device) / 2**30,
                "reserved_gib": torch.cuda.max_memory_reserved(device) / 2**30}
    return sorted(times)[len(times) // 2], mem, result


def rel_err(a: torch.Tensor, ref: torch.Tensor) -> float:
    """max |a − ref| / max |ref| (the measure of docs/benchmarks.md's precision check)."""
    a, ref = a.float().cpu(), ref.float().cpu()
    return float((a - ref).abs().max() / ref.abs().max())


def run_diffusers(pipe, work: Work, steps: int, device: torch.device, noise: torch.Tensor) -> tuple:
    """Time diffusers on `work`; returns (seconds, memory, final latents)."""
    final = {}

    def call(n: int):
        def keep(i, _t, latents):
            if i == n - 1:
                final["x"] = latents

        pipe(prompt=[PROMPT] * work.batch, num_frames=work.frames, height=work.height, width=work.width,
             num_inference_steps=n, guidance_scale=9.0, latents=noise.to(device, pipe.unet.dtype),
             output_type="np", callback=keep)
        return final["x"].float().cpu()

    return timed(call, device, steps)


def run_ours(pipe, work: Work, steps: int, device: torch.device, noise: torch.Tensor, repeats: int = 1) -> tuple:
    """Time our pipeline on `work` (one batch); returns (seconds, memory and the last run's stage times, final
    latents)."""
    stages: dict[str, float] = {}

    def call(n: int):
        results = pipe.generate_batch(work.requests(n), latents=noise)
        stages.update({k: v for k, v in results[0].timings.items() if k in STAGES})
        return torch.cat([r.latents for r in results])

    seconds, mem, latents = timed(call, device, steps, repeats)
    return seconds, {**mem, "stages": dict(stages)}, latents


@torch.no_grad()
def count_flops(pipe, work: Work, steps: int) -> dict[str, float]:
    """FLOPs of one guided UNet call (× steps), the VAE decode and the text encoder, counted by FlopCounterMode."""
    from torch.utils.flop_counter import FlopCounterMode

    cfg, dev, dt = pipe.config.unet, pipe.device, pipe.dtype
    x = torch.randn(2 * work.batch, cfg.in_dim, work.frames, work.height // 8, work.width // 8, device=dev, dtype=dt)
    t = torch.full((2 * work.batch,), 999, device=dev)
    context = torch.randn(2 * work.batch, 77, cfg.context_dim, device=dev, dtype=dt)
    counts = {}
    with FlopCounterMode(display=False) as fc:
        pipe.unet(x, t, context)
    counts["unet_call"] = fc.get_total_flops()
    counts["unet_by_op"] = {str(op): n for op, n in fc.get_flop_counts().get("Global", {}).items()}
    with FlopCounterMode(display=False) as fc:
        pipe.decode(x[:work.batch].float())
    counts["decode"] = fc.get_total_flops()
    with FlopCounterMode(display=False) as fc:
        pipe.encode_prompts([PROMPT] * work.batch, [""] * work.batch)
    counts["text"] = fc.get_total_flops()
    counts["total"] = counts["unet_call"] * steps + counts["decode"] + counts["text"]
    return counts


def matmul_ceiling(device: torch.device, dtype: torch.dtype) -> float:
    """Measured dense matrix-product rate (TFLOP/s) on random 8192³ operands: the floor's denominator."""
    a, b = (torch.randn(8192, 8192, device=device, dtype=dtype) for _ in range(2))
    for _ in range(3):
        a @ b
    sync(device)
    start = time.perf_counter()
    for _ in range(20):
        a @ b
    sync(device)
    return 20 * 2 * 8192**3 / (time.perf_counter() - start) / 1e12


def cold_start(folder: Path, device: str, backend: str = "inductor") -> dict:
    """Start a fresh process: import, load the export, one denoising step; then the compile warm-up there."""
    started = time.time()
    proc = subprocess.run([sys.executable, "-m", "t2v", "bench", "--cold-child", str(folder), "--device", device,
                           "--backend", backend], capture_output=True, text=True, timeout=400)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode or not lines:
        return {"error": proc.stderr[-1500:]}
    child = json.loads(lines[-1])
    child["spawn_to_first_step_s"] = child.pop("first_step_at") - started
    return child


def cold_child(folder: str, device: str, backend: str = "inductor") -> None:
    """The child of `cold_start`: prints its own timings as one JSON line. The warm-up compiles the export's own
    default shape with the parent's backend (a tiny export on the CPU: seconds, where the full size's shape and
    inductor took longer than `cold_start` waits)."""
    t0 = time.perf_counter()
    pipe = load_pipeline(folder, device=device)
    sync(pipe.device)
    loaded = time.perf_counter()
    pipe.generate(GenerationRequest(PROMPT, seed=0, steps=1))
    first = time.time()
    stepped = time.perf_counter()
    pipe.optimize(backend=backend)
    size = pipe.config
    warm = pipe.unet.warmup(1, size.frames, size.height, size.width) if hasattr(pipe.unet, "warmup") else 0.0
    print(json.dumps({"load_s": loaded - t0, "first_step_s": stepped - loaded, "first_step_at": first,
                      "compile_warmup_cached_s": warm}), flush=True)


def load_ours(config: ModelConfig, states: dict, device: torch.device, dtype: str | None = None, **fp8_options):
    """Our pipeline over the shared random weights (`fp8_options`: assemble's fp8_scaling, fp8_keep, fp8_convs)."""
    return assemble(config, states, {n: f"random:{n}" for n in states}, device, dtype, **fp8_options)
