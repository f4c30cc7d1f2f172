"""The feed-forward's first GEMM and its GEGLU gate timed alone in each form: cuBLAS's GEMM then inductor's fused
gate pass (what the video runs: the pair compiled by torch.compile as the fast path's graph compiles it), against
t2v.kernels.geglu's one Triton GEMM that gates in its epilogue; in fp16, and in fp8 (e4m3 operands with static
scales, the gated output cast to e4m3 for the next fp8 GEMM, as `--dtype fp8` runs the feed-forward).

The shapes are a video's, found by running the real-size UNet on the meta device with a hook on each GEGLU (the
spatial and temporal transformers' feed-forwards), each with its count a guided call (`--batch` videos: 2·batch
rows of latents). Each form is timed as 20 launches replayed from a CUDA graph (best of 5 replays), the kernel with
the best of its configs that fit; sums are a call's worth. Errors: each form against the same operands' products
summed exactly in fp32 (`geglu.reference`). This is the filter before the video is timed (perf-notes "Next" item 7).

GPU:  python benchmarks/geglu_forms.py --batch 1 16 --out OUT/geglu.json
"""

from __future__ import annotations

import argparse
import collections
import json
import sys
import time
from functools import partial
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.conv3x3_forms import graphed_ms, rel_err, video_options  # noqa: E402
from t2v.config import UNetConfig  # noqa: E402
from t2v.kernels import fp8, geglu  # noqa: E402
from t2v.unet import GEGLU, UNet3D  # noqa: E402


def video_shapes(batch: int, frames: int, height: int, width: int) -> collections.Counter:
    """(M tokens, K in, H hidden) → count a guided UNet call of `batch` videos, for the feed-forwards' GEGLUs."""
    with torch.device("meta"):
        unet = UNet3D(UNetConfig())
    seen: collections.Counter = collections.Counter()

    def hook(module, inputs, _out):
        x = inputs[0]
        seen[(x.numel() // x.shape[-1], x.shape[-1], module.proj.out_features // 2)] += 1

    for m in unet.modules():
        if isinstance(m, GEGLU):
            m.register_forward_hook(hook)
    cfg = UNetConfig()
    rows = 2 * batch
    x = torch.empty(rows, cfg.in_dim, frames, height // 8, width // 8, device="meta")
    unet(x, torch.zeros(rows, dtype=torch.long, device="meta"),
         torch.empty(rows, 77, cfg.context_dim, device="meta"))
    return seen


def best_config(run, configs, k: int, one_byte: bool) -> tuple[float, tuple | None, list[str]]:
    """(ms, config) of the fastest config of `run(config)` that fits K, and the configs that failed to build."""
    best, failed = (float("inf"), None), []
    for cfg in configs:
        if not geglu.fits(k, cfg[2]) or (not one_byte and cfg[2] > 64):
            continue
        try:
            best = min(best, (graphed_ms(partial(run, cfg)), cfg))
        except Exception as exc:  # a config that does not build (shared memory, registers) is skipped
            failed.append(f"{cfg}: {type(exc).__name__}")
    return best[0], best[1], failed


def measure(shape, count) -> dict:
    m, k, hidden = shape
    g = torch.Generator(device="cuda").manual_seed(0)
    x = torch.randn(m, k, device="cuda", generator=g).half()
    w = (torch.randn(2 * hidden, k, device="cuda", generator=g) / k ** 0.5).half()
    bias = (torch.randn(2 * hidden, device="cuda", generator=g) * 0.1).half()
    flop = 2 * m * k * 2 * hidden
    row = {"shape": list(shape), "count": count, "gflop": flop / 1e9}
    one = torch.ones((), device="cuda")

    plain = torch.compile(lambda a: geglu.gelu_gate(F.linear(a, w, bias)), dynamic=False)
    row["cublas_pass_fp16_ms"] = graphed_ms(partial(plain, x))
    row["cublas_pass_fp16_err"] = rel_err(plain(x), geglu.reference(x, w, one, one, bias))
    row["triton_fp16_ms"], cfg, row["triton_fp16_failed"] = best_config(
        lambda c: geglu.geglu(x, w, one, one, bias, torch.float16, None, c), geglu.CONFIGS, k, False)
    row["triton_fp16_config"] = cfg
    row["triton_fp16_default"] = geglu.config_for(m, k, hidden, 2)
    row["triton_fp16_default_ms"] = graphed_ms(
        partial(geglu.geglu, x, w, one, one, bias, torch.float16, None, row["triton_fp16_default"]))
    row["triton_fp16_err"] = rel_err(geglu.geglu(x, w, one, one, bias, torch.float16, None, cfg),
                                     geglu.reference(x, w, one, one, bias))

    x_q, x_scale = fp8.quantize(x, "tensor")
    w_q, w_scale = fp8.quantize(w, "tensor")
    x_scale, w_scale = x_scale.reshape(()), w_scale.reshape(())
    exact = geglu.reference(x_q, w_q, x_scale, w_scale, bias)
    out_scale = (exact.abs().amax() * fp8.HEADROOM / fp8.E4M3_MAX).reshape(())  # a calibrated next-layer scale

    def scaled(a):
        product = torch._scaled_mm(a, w_q.t(), scale_a=x_scale, scale_b=w_scale, bias=bias, out_dtype=torch.float16)
        return (geglu.gelu_gate(product) / out_scale).clamp(-fp8.E4M3_MAX, fp8.E4M3_MAX).to(fp8.E4M3)

    plain8 = torch.compile(scaled, dynamic=False)
    exact8 = geglu.reference(x_q, w_q, x_scale, w_scale, bias, out_scale)
    row["cublas_pass_fp8_ms"] = graphed_ms(partial(plain8, x_q))
    row["cublas_pass_fp8_err"] = rel_err(plain8(x_q), exact8)
    row["triton_fp8_ms"], cfg, row["triton_fp8_failed"] = best_config(
        lambda c: geglu.geglu(x_q, w_q, x_scale, w_scale, bias, fp8.E4M3, out_scale, c), geglu.CONFIGS, k, True)
    row["triton_fp8_config"] = cfg
    row["triton_fp8_default"] = geglu.config_for(m, k, hidden, 1)
    row["triton_fp8_default_ms"] = graphed_ms(
        partial(geglu.geglu, x_q, w_q, x_scale, w_scale, bias, fp8.E4M3, out_scale, row["triton_fp8_default"]))
    row["triton_fp8_err"] = rel_err(geglu.geglu(x_q, w_q, x_scale, w_scale, bias, fp8.E4M3, out_scale, cfg), exact8)
    for form in ("cublas_pass_fp16", "triton_fp16", "cublas_pass_fp8", "triton_fp8"):
        row[f"{form}_tflops"] = flop / row[f"{form}_ms"] / 1e9
    return row


def _batch(text: str) -> int:
    """A --batch value: videos a call, 1–64."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if not 1 <= value <= 64:
        raise argparse.ArgumentTypeError(f"{text!r}: videos a call, a whole number 1–64")
    return value


def options(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line (conv3x3_forms.video_options, and --batch)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=_batch, nargs="+", default=[1], help="videos a call (each guided: 2 rows)")
    return video_options(parser, argv)


def main(argv: list[str] | None = None) -> None:
    args = options(argv)
    started = time.time()
    sizes = []
    forms = ("cublas_pass_fp16", "triton_fp16", "cublas_pass_fp8", "triton_fp8")
    for batch in args.batch:
        rows = []
        for shape, count in sorted(video_shapes(batch, args.frames, *args.size).items(), key=lambda kv: -kv[0][0]):
            rows.append(measure(shape, count))
            r = rows[-1]
            print(f"batch {batch} {shape} ×{count}: " + ", ".join(
                f"{form} {r[f'{form}_ms']:.4f} ms ({r[f'{form}_tflops']:.0f})" for form in forms)
                + f"; configs {r['triton_fp16_config']} {r['triton_fp8_config']}; defaults "
                f"{r['triton_fp16_default']} {r['triton_fp16_default_ms']:.4f} {r['triton_fp8_default']} "
                f"{r['triton_fp8_default_ms']:.4f}; err fp16 "
                f"{r['triton_fp16_err']:.1e} / {r['cublas_pass_fp16_err']:.1e}, fp8 {r['triton_fp8_err']:.1e} / "
                f"{r['cublas_pass_fp8_err']:.1e}", flush=True)
        totals = {form: sum(r[f"{form}_ms"] * r["count"] for r in rows) for form in forms}
        print(f"batch {batch}: a call's feed-forward GEMM+gate: {json.dumps(totals)}", flush=True)
        sizes.append({"batch": batch, "shapes": rows, "per_call_ms": totals})
    report = {"device": torch.cuda.get_device_name(), "torch": torch.__version__,
              "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(started)), "frames": args.frames,
              "size": list(args.size), "sizes": sizes, "seconds": time.time() - started}
    if args.out:
        args.out.write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
