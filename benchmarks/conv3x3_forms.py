"""The UNet's 3×3 convolutions timed alone in each form that could run them: cuDNN in fp16 (what the video runs),
t2v.kernels.conv3x3's implicit-GEMM Triton kernel in fp16 and in fp8 (e4m3, one scale per tensor; and in fp8 with
each K step's partial sum promoted to fp32, `promote`), and cuDNN's own
fp8 convolution through the cuDNN frontend's Python graph API where that package is installed and the engine exists.

The shapes are the standard video's (16×256², guidance: 32 images a call), found by running the real-size UNet on
the meta device with a hook on each Conv2d: stride-1 3×3 convolutions with ≥ 64 input channels, each with its count a
call. Each form is timed as 20 launches replayed from a CUDA graph (no launch gaps, as in the video; the L2 cache
warm as a replay leaves it), per shape the best of the kernel's configs that fit it; the sums are a call's worth.
Errors: each fp8 form against the fp32 convolution of its own quantised operands (the kernel's arithmetic) and
against the fp32 convolution of the fp16 operands (what quantising costs). This is the filter before a video is
timed (perf-notes row 49: a kernel's time in the video's own profile decides).

GPU:  python benchmarks/conv3x3_forms.py --out OUT/conv3x3.json
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

from t2v.config import UNetConfig  # noqa: E402
from t2v.errors import InvalidRequest  # noqa: E402
from t2v.kernels import conv3x3, fp8  # noqa: E402
from t2v.request import check_value  # noqa: E402
from t2v.unet import UNet3D  # noqa: E402

LAUNCHES = 20


def video_shapes(frames: int, height: int, width: int) -> collections.Counter:
    """(N, C_in, H, W, C_out) → count a guided UNet call, for the stride-1 3×3 convolutions."""
    with torch.device("meta"):
        unet = UNet3D(UNetConfig())
    seen: collections.Counter = collections.Counter()

    def hook(module, inputs, _out):
        n, c, h, w = inputs[0].shape
        if module.kernel_size == (3, 3) and module.stride == (1, 1) and c >= 64:
            seen[(n, c, h, w, module.out_channels)] += 1

    for m in unet.modules():
        if isinstance(m, torch.nn.Conv2d):
            m.register_forward_hook(hook)
    cfg = UNetConfig()
    x = torch.empty(2, cfg.in_dim, frames, height // 8, width // 8, device="meta")
    unet(x, torch.zeros(2, dtype=torch.long, device="meta"), torch.empty(2, 77, cfg.context_dim, device="meta"))
    return seen


def graphed_ms(fn) -> float:
    """Milliseconds a launch of `fn`, from LAUNCHES launches replayed in one CUDA graph (best of 5 replays)."""
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        for _ in range(3):
            fn()
    torch.cuda.current_stream().wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        for _ in range(LAUNCHES):
            fn()
    graph.replay()
    torch.cuda.synchronize()
    best = float("inf")
    for _ in range(5):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        graph.replay()
        end.record()
        end.synchronize()
        best = min(best, start.elapsed_time(end) / LAUNCHES)
    return best


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.float() - b.float()).abs().max() / b.float().abs().max())


def cudnn_fp8(x_q, w_q, scale, bias, out):
    """A callable running cuDNN's fp8 convolution into `out`, or a one-line reason it cannot."""
    try:
        import cudnn
    except ImportError as exc:
        return f"no cudnn frontend ({exc})"
    try:
        handle = cudnn.create_handle()
        cudnn.set_stream(handle=handle, stream=torch.cuda.current_stream().cuda_stream)
        graph = cudnn.pygraph(io_data_type=cudnn.data_type.FP8_E4M3, intermediate_data_type=cudnn.data_type.FLOAT,
                              compute_data_type=cudnn.data_type.FLOAT, handle=handle)
        gx = graph.tensor_like(x_q, name="x")
        gw = graph.tensor_like(w_q, name="w")
        gs = graph.tensor(name="s", dim=[1, 1, 1, 1], stride=[1, 1, 1, 1], data_type=cudnn.data_type.FLOAT)
        gb = graph.tensor(name="b", dim=[1, out.shape[1], 1, 1], stride=[out.shape[1], 1, 1, 1],
                          data_type=cudnn.data_type.HALF)
        y = graph.conv_fprop(gx, gw, padding=[1, 1], stride=[1, 1], dilation=[1, 1], name="conv")
        y.set_data_type(cudnn.data_type.FLOAT)
        z = graph.add(graph.mul(y, gs, name="scale"), gb, name="bias")
        z.set_output(True).set_data_type(cudnn.data_type.HALF).set_dim(list(out.shape)).set_stride(list(out.stride()))
        graph.build([cudnn.heur_mode.A, cudnn.heur_mode.FALLBACK])
        workspace = torch.empty(max(graph.get_workspace_size(), 1), dtype=torch.uint8, device="cuda")
        s = scale.reshape(1, 1, 1, 1)
        b = bias.half().reshape(1, -1, 1, 1)

        def run():
            cudnn.set_stream(handle=handle, stream=torch.cuda.current_stream().cuda_stream)
            graph.execute({gx: x_q, gw: w_q, gs: s, gb: b, z: out}, workspace, handle=handle)
        run()
        torch.cuda.synchronize()
        return run
    except Exception as exc:  # a probe: any failure is the answer
        return f"cuDNN fp8 convolution not built: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}"


def measure(shape, count, configs) -> dict:
    n, c_in, h, w, c_out = shape
    g = torch.Generator(device="cuda").manual_seed(0)
    x = torch.randn(n, c_in, h, w, device="cuda", generator=g).half().contiguous(memory_format=torch.channels_last)
    weight = (torch.randn(c_out, c_in, 3, 3, device="cuda", generator=g) / (3 * c_in ** 0.5)).half()
    weight = weight.contiguous(memory_format=torch.channels_last)
    bias = torch.randn(c_out, device="cuda", generator=g).half()
    flop = 2 * n * h * w * c_out * c_in * 9
    row = {"shape": list(shape), "count": count, "gflop": flop / 1e9}
    exact = F.conv2d(x.float(), weight.float(), bias.float(), padding=1)

    row["cudnn_fp16_ms"] = graphed_ms(lambda: F.conv2d(x, weight, bias, padding=1))
    row["cudnn_fp16_err"] = rel_err(F.conv2d(x, weight, bias, padding=1), exact)

    w16 = conv3x3.weight_rows(weight)
    one = torch.ones((), device="cuda")
    x_q, x_scale = fp8.quantize(x.permute(0, 2, 3, 1), "tensor")  # NHWC values, channels-last as NCHW below
    x_q = x_q.permute(0, 3, 1, 2)
    w_q, w_scale = fp8.quantize(w16, "tensor")
    scale = (x_scale * w_scale).float().reshape(())
    row["cast_ms"] = graphed_ms(lambda: fp8.cast(x, x_scale))  # a pass of its own; fused into GroupNorm+SiLU in
    #                                                            the compiled graph
    forms = {"triton_fp16": (x, w16, one), "triton_fp8": (x_q, w_q, scale), "triton_fp8_promoted": (x_q, w_q, scale)}
    for form, (xx, ww, ss) in forms.items():
        best = (float("inf"), None)
        for cfg in configs:
            if not conv3x3.fits(c_in, cfg[2]) or (form == "triton_fp16" and cfg[2] > 64):
                continue
            promote = cfg[2] if form == "triton_fp8_promoted" else None  # each K step's partial sum added in fp32
            try:
                t = graphed_ms(partial(conv3x3.conv3x3, xx, ww, ss, bias, torch.float16, cfg, promote))
            except Exception as exc:  # a config that does not compile (shared memory) is skipped
                row.setdefault("failed", []).append(f"{form} {cfg}: {type(exc).__name__}")
                continue
            best = min(best, (t, cfg))
        row[f"{form}_ms"], row[f"{form}_config"] = best
        out = conv3x3.conv3x3(xx, ww, ss, bias, torch.float16, best[1], promote)
        row[f"{form}_err"] = rel_err(out, exact)
        row[f"{form}_err_own"] = rel_err(out, conv3x3.reference(xx, ww, ss, bias))
    out = torch.empty(n, c_out, h, w, device="cuda", dtype=torch.float16, memory_format=torch.channels_last)
    w_q4 = w_q.reshape(c_out, 3, 3, c_in).permute(0, 3, 1, 2)  # [C_out, C_in, 3, 3] with channels-last strides
    run = cudnn_fp8(x_q, w_q4, scale, bias, out)
    if isinstance(run, str):
        row["cudnn_fp8"] = run
    else:
        row["cudnn_fp8_ms"] = graphed_ms(run)
        row["cudnn_fp8_err"] = rel_err(out, exact)
    for form in ("cudnn_fp16", "triton_fp16", "triton_fp8", "triton_fp8_promoted", "cudnn_fp8"):
        if f"{form}_ms" in row:
            row[f"{form}_tflops"] = flop / row[f"{form}_ms"] / 1e9
    return row


def video_options(parser: argparse.ArgumentParser, argv: list[str] | None) -> argparse.Namespace:
    """`parser` with --frames, --size and --out, its command line parsed, each value checked as a /video request's
    would be, and a CUDA GPU, before any work (what the kernel-forms benchmarks share)."""
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--size", type=int, nargs=2, default=(256, 256), metavar=("H", "W"))
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    try:
        for name, value in (("frames", args.frames), ("height", args.size[0]), ("width", args.size[1])):
            check_value(name, value, f"--{'frames' if name == 'frames' else 'size'} {value}")
    except InvalidRequest as exc:
        parser.error(str(exc))
    if not torch.cuda.is_available():
        parser.error("it times kernels on a CUDA GPU, and torch sees none here")
    return args


def options(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line (`video_options`)."""
    return video_options(argparse.ArgumentParser(description=__doc__.split("\n\n")[0]), argv)


def main(argv: list[str] | None = None) -> None:
    args = options(argv)
    torch.backends.cudnn.benchmark = True
    shapes = video_shapes(args.frames, *args.size)
    started = time.time()
    rows = []
    for shape, count in sorted(shapes.items(), key=lambda kv: -kv[1] * kv[0][1] * kv[0][4] * kv[0][2] * kv[0][3]):
        rows.append(measure(shape, count, conv3x3.CONFIGS))
        r = rows[-1]
        print(f"{shape} ×{count}: cuDNN fp16 {r['cudnn_fp16_ms']:.4f} ms ({r['cudnn_fp16_tflops']:.0f} TFLOP/s), "
              f"Triton fp16 {r['triton_fp16_ms']:.4f} {r['triton_fp16_config']}, "
              f"Triton fp8 {r['triton_fp8_ms']:.4f} ({r['triton_fp8_tflops']:.0f}) {r['triton_fp8_config']}, "
              f"promoted {r['triton_fp8_promoted_ms']:.4f} {r['triton_fp8_promoted_config']}, "
              f"cuDNN fp8 {r.get('cudnn_fp8_ms', r.get('cudnn_fp8'))}, cast {r['cast_ms']:.4f}; "
              f"fp8 err {r['triton_fp8_err']:.2e} (own {r['triton_fp8_err_own']:.1e}, promoted "
              f"{r['triton_fp8_promoted_err_own']:.1e})", flush=True)
    totals = {form: sum(r[f"{form}_ms"] * r["count"] for r in rows)
              for form in ("cudnn_fp16", "triton_fp16", "triton_fp8", "triton_fp8_promoted", "cudnn_fp8", "cast")
              if all(f"{form}_ms" in r for r in rows)}
    best_mix = sum(min(r["cudnn_fp16_ms"], r["triton_fp8_ms"]) * r["count"] for r in rows)
    report = {"device": torch.cuda.get_device_name(), "torch": torch.__version__,
              "cudnn": torch.backends.cudnn.version(),
              "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(started)), "frames": args.frames,
              "size": list(args.size), "shapes": rows, "per_call_ms": totals, "per_call_best_of_fp16_fp8_ms": best_mix,
              "seconds": time.time() - started}
    print(json.dumps({k: v for k, v in report.items() if k != "shapes"}, indent=1))
    if args.out:
        args.out.write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
