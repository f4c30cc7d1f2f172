"""What a style switch costs: fusing a LoRA into the weights and taking it out, switching between two, and the
per-UNet-call cost of unfused branches; and the round-off that restoring by subtraction would leave.

Random weights and random LoRAs (peft layout, diffusers' names) on every layer a LoRA may adapt ("all") or on the
attention projections only ("attention": to_q/k/v/out in every spatial and temporal transformer, q/k/v/out in the
text encoder — what most published LoRAs adapt). `--size real` is ModelScope's 1.7B network (weights neither read
nor initialised: filled with N(0, 0.02)); its branch overhead is timed as one evaluation of every parametrized
weight (each is used once per UNet call), as a whole UNet call at that size takes minutes on a CPU.

CPU:  python benchmarks/lora_switch.py --size tiny --out docs/bench/lora-tiny-cpu.json
      python benchmarks/lora_switch.py --size real --out docs/bench/lora-real-cpu.json
GPU:  python benchmarks/lora_switch.py --size real --device cuda --dtype float16 --out …
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # `python benchmarks/lora_switch.py` from a checkout that is not pip-installed
    sys.path.insert(0, str(ROOT))

import torch  # noqa: E402
from torch.nn.utils import parametrize  # noqa: E402

from t2v import load_pipeline  # noqa: E402
from t2v.compiled import example_inputs, video_shape  # noqa: E402
from t2v.config import ModelConfig  # noqa: E402
from t2v.lora import by_tensor, summed_delta  # noqa: E402
from t2v.networks import build_modules  # noqa: E402
from t2v.pipeline import VideoPipeline  # noqa: E402
from t2v.weights.lora import targets  # noqa: E402

ATTENTION = ("to_q", "to_k", "to_v", "to_out.0", "q_proj", "k_proj", "v_proj", "out_proj")


def random_lora(config: ModelConfig, rank: int, which: str, seed: int) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    state = {}
    for network, found in targets(config).items():
        for module, target in found.items():
            if which == "attention" and not module.endswith(ATTENTION):
                continue
            out, *rest = target.theirs
            state[f"{network}.{module}.lora_A.weight"] = 0.01 * torch.randn(rank, *rest, generator=generator)
            state[f"{network}.{module}.lora_B.weight"] = 0.01 * torch.randn(out, rank, *[1] * (len(rest) - 1),
                                                                            generator=generator)
    return state


def real_pipeline(device: str, dtype: torch.dtype) -> VideoPipeline:
    config = ModelConfig()
    modules = build_modules(config)
    with torch.no_grad():
        for name in ("unet", "text_encoder"):
            modules[name].to_empty(device=device)
            for tensor in modules[name].state_dict().values():
                tensor.normal_(std=0.02)
            modules[name].to(dtype).requires_grad_(False)
    return VideoPipeline(config, modules["unet"], modules["vae"], modules["text_encoder"], device, dtype)


def timed(fn, pipe, repeats: int, setup=lambda: None) -> float:
    """Median seconds of `fn()` over `repeats` runs, each after `setup()` (and one warm-up run)."""
    times = []
    for _ in range(repeats + 1):
        setup()
        pipe.synchronize()
        started = time.perf_counter()
        fn()
        pipe.synchronize()
        times.append(time.perf_counter() - started)
    return statistics.median(times[1:])


def roundoff(pipe: VideoPipeline) -> dict[str, dict[str, float]]:
    """Fuse A into every weight it touches, subtract it again (as unfusing by subtraction would), per weight dtype:
    the largest error over the weight's largest value, and the share of elements not given back bit for bit."""
    styles = pipe.styles
    out = {}
    for dtype in (torch.float32, torch.float16, torch.bfloat16):
        worst, changed, total = 0.0, 0, 0
        for (network, key), layers in by_tensor(styles.loaded["a"]).items():
            weight = styles.weights(network)[key].to(dtype)
            delta = summed_delta(layers, 1.0, weight)
            back = ((weight.float() + delta).to(dtype).float() - delta).to(dtype)
            diff = (back.float() - weight.float()).abs()
            worst = max(worst, float(diff.max() / weight.float().abs().max()))
            changed, total = changed + int((diff > 0).sum()), total + diff.numel()
        out[str(dtype).removeprefix("torch.")] = {"max_error_over_max_weight": worst,
                                                  "share_not_restored": changed / total}
    return out


def branch_overhead(pipe: VideoPipeline, repeats: int) -> float:
    """Seconds per UNet call that unfused branches add: every parametrized weight computed once."""
    modules = [(module, name) for module in pipe.unet.modules() if parametrize.is_parametrized(module)
               for name in module.parametrizations]
    return timed(lambda: [getattr(module, name) for module, name in modules], pipe, repeats)


def unet_call(pipe: VideoPipeline, repeats: int) -> float:
    inputs = example_inputs(video_shape(pipe.config.unet, 1, pipe.config.frames, pipe.config.height,
                                        pipe.config.width), next(pipe.unet.parameters()))
    with torch.no_grad():
        return timed(lambda: pipe.unet(*inputs), pipe, repeats)


def measure(args: argparse.Namespace) -> dict:
    dtype = getattr(torch, args.dtype)
    pipe = (load_pipeline("tiny-random", args.device, dtype) if args.size == "tiny"
            else real_pipeline(args.device, dtype))
    out = {"size": args.size, "device": args.device, "dtype": args.dtype, "rank": args.rank, "targets": args.targets,
           "torch": torch.__version__, "threads": torch.get_num_threads(), "load_average": os.getloadavg()}
    pipe.load_lora(random_lora(pipe.config, args.rank, args.targets, 0), "a")
    pipe.load_lora(random_lora(pipe.config, args.rank, args.targets, 1), "b")
    layers = pipe.styles.loaded["a"].layers
    weights = {(x.network, x.key) for x in layers}
    live = {network: pipe.styles.weights(network) for network in ("unet", "text_encoder")}
    out["layers"] = len(layers)
    out["lora_mib"] = sum(x.down.numel() + x.up.numel() for x in layers) * dtype.itemsize / 2**20
    out["saved_copy_mib"] = sum(live[n][k].numel() * live[n][k].element_size() for n, k in weights) / 2**20
    n = args.repeats
    out["fuse_s"] = timed(lambda: pipe.set_lora("a"), pipe, n, lambda: pipe.set_lora(None))
    out["unfuse_s"] = timed(lambda: pipe.set_lora(None), pipe, n, lambda: pipe.set_lora("a"))
    out["switch_a_to_b_s"] = timed(lambda: pipe.set_lora("b"), pipe, n, lambda: pipe.set_lora("a"))
    out["rescale_s"] = timed(lambda: pipe.set_lora("a", 0.5), pipe, n, lambda: pipe.set_lora("a"))
    pipe.set_lora(None)
    out["roundoff_subtracting"] = roundoff(pipe)
    out["attach_branches_s"] = timed(lambda: pipe.set_lora("a", fused=False), pipe, n, lambda: pipe.set_lora(None))
    out["detach_branches_s"] = timed(lambda: pipe.set_lora(None), pipe, n, lambda: pipe.set_lora("a", fused=False))
    pipe.set_lora("a", fused=False)
    out["branch_overhead_per_unet_call_s"] = branch_overhead(pipe, n)
    if args.size == "tiny":
        out["unet_call_branches_s"] = unet_call(pipe, args.repeats)
        pipe.set_lora("a")
        out["unet_call_fused_s"] = unet_call(pipe, args.repeats)
        pipe.set_lora(None)
        out["unet_call_plain_s"] = unet_call(pipe, args.repeats)
    pipe.set_lora(None)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=["tiny", "real"], default="tiny")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--rank", type=int, default=16)
    parser.add_argument("--targets", choices=["attention", "all"], default="attention")
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    text = json.dumps(measure(args), indent=2)
    print(text)
    if args.out is not None:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
