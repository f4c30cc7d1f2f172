"""The benchmark's checks of t2v.kernels: correctness against the stock ops, then time, on the UNet's own shapes.

Temporal attention: the Triton kernel against SDPA at every frame count 1–64 (each packing, fp16 and bf16; "ok"
when its error against fp32 is within one output rounding of twice SDPA's own), then each (packing, rows) choice
and SDPA timed on the temporal attentions of one guided UNet call, summed over the call. fp8: each distinct
Linear shape of the UNet's transformers in fp16 and in fp8 (each scaling): error against the fp32
product, the GPU product against its fp32 reference arithmetic (Fp8Linear.reference), and time (the GEMM alone,
and with the activations' eager quantisation), summed over the call. Convolutions: each shape's cuDNN time beside a
GEMM of its size, and for the 3×3 ones fp8.Fp8Conv3x3 takes (t2v.kernels.conv3x3's kernel, calibrated on another
draw) its time on the layer's operands with the default fast fp8 accumulation and with partial sums promoted to fp32,
its error against the fp32 convolution and against its own operands' exact sums.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Iterable
from functools import partial

import torch
import torch.nn.functional as F
from torch import nn

from t2v.kernels import conv3x3, fp8
from t2v.kernels import temporal_attention as ta
from t2v.unet import CrossAttention, SpatialTransformer, TemporalTransformer

log = logging.getLogger(__name__)

ATTENTION_CHOICES = (("batched", 64), ("batched", 128), ("batched", 256), ("diagonal", 32), ("diagonal", 64),
                     ("diagonal", 128))  # (packing, rows per program) timed on the GPU
ROUNDING = {torch.float16: 1e-3, torch.bfloat16: 8e-3}  # one output rounding at |x| ≲ 2, as tests/t2v/kernels
AttentionShape = tuple[int, int, int, int]  # (pixels, heads, frames, head_dim) of one temporal attention call
LinearShape = tuple[int, int, int]  # (rows, in_features, out_features) of one Linear call
ConvShape = tuple  # (kind, n, c_in, h, w, c_out, kh, kw, stride, pad_h, pad_w) of one 2-D convolution call


@torch.no_grad()
def record_shapes(unet: nn.Module, inputs: tuple[torch.Tensor, ...]) -> tuple[Counter, Counter, Counter]:
    """(temporal attention shapes, transformer Linear shapes, convolution shapes as the fast path runs them) of one
    call of the plain (unfused) `unet`, counted."""
    attentions, linears, convs, hooks = Counter(), Counter(), Counter(), []
    for module in unet.modules():
        if isinstance(module, nn.Conv2d | nn.Conv3d):
            hooks.append(module.register_forward_hook(lambda m, args, out: convs.update([_conv_shape(m, args[0])])))
    for block in unet.modules():
        if not isinstance(block, SpatialTransformer | TemporalTransformer):
            continue
        for module in block.modules():
            if isinstance(module, nn.Linear):
                hooks.append(module.register_forward_hook(
                    lambda m, args, out: linears.update([(args[0].numel() // m.in_features, m.in_features,
                                                          m.out_features)])))
            elif isinstance(module, CrossAttention) and isinstance(block, TemporalTransformer):
                hooks.append(module.register_forward_hook(
                    lambda m, args, out: attentions.update([(args[0].shape[0], m.heads, args[0].shape[1],
                                                             m.to_q.out_features // m.heads)])))
    try:
        unet(*inputs)
    finally:
        for hook in hooks:
            hook.remove()
    return attentions, linears, convs


def _conv_shape(conv: nn.Conv2d | nn.Conv3d, x: torch.Tensor) -> ConvShape:
    """A convolution call as the fast path's 2-D convolution: the temporal 3×1×1 Conv3d on [b, c, f, h, w] is a
    3×1 Conv2d on [b, c, f, h·w] (t2v.fast.TemporalConv2dBlock)."""
    if isinstance(conv, nn.Conv3d):
        b, c, f, h, w = x.shape
        return ("temporal", b, c, f, h * w, conv.out_channels, 3, 1, 1, 1, 0)
    kind = "1x1" if conv.kernel_size == (1, 1) else "spatial"
    return (kind, *x.shape, conv.out_channels, *conv.kernel_size, conv.stride[0], *conv.padding)


def packed(shape: AttentionShape, dtype: torch.dtype, device: torch.device, seed: int = 0) -> tuple:
    """q, k, v of `shape` as the fused attention hands them over: strided views of one [z, f, 3, h, d] tensor."""
    z, heads, frames, dim = shape
    g = torch.Generator().manual_seed(seed)
    qkv = torch.randn(z, frames, 3, heads, dim, generator=g).to(device, dtype)
    return qkv.permute(2, 0, 3, 1, 4).unbind(0)


def within_rounding(out: torch.Tensor, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> dict:
    """The kernel's and SDPA's max errors against SDPA in fp32, and whether the kernel is within rounding."""
    exact = F.scaled_dot_product_attention(q.float(), k.float(), v.float())
    ours = float((out.float() - exact).abs().max())
    sdpa = float((F.scaled_dot_product_attention(q, k, v).float() - exact).abs().max())
    return {"error": ours, "sdpa_error": sdpa, "ok": ours <= 2 * sdpa + ROUNDING[q.dtype]}


def attention_correctness(device: torch.device, frames: Iterable[int] = range(1, ta.MAX_FRAMES + 1),
                          pixels: int = 96, heads: int = 5, dim: int = 64,
                          dtypes: tuple[torch.dtype, ...] = (torch.float16, torch.bfloat16)) -> dict:
    """Per dtype and packing: the worst errors over `frames`, and the frame counts not within rounding."""
    reason = ta.unavailable(device)
    if reason is not None:
        return {"skipped": reason}
    results = {}
    for dtype in dtypes:
        for packing in ta.PACKINGS:
            key = f"{str(dtype).removeprefix('torch.')} {packing}"
            try:
                checks = {}
                for f in frames:
                    q, k, v = packed((pixels, heads, f, dim), dtype, device, seed=f)
                    checks[f] = within_rounding(ta.temporal_attention(q, k, v, packing=packing), q, k, v)
            except Exception as exc:  # a kernel that does not compile here must not end the benchmark
                log.exception("the temporal-attention kernel failed (%s)", key)
                results[key] = {"error": repr(exc)[:500]}
                continue
            results[key] = {"worst_error": max(c["error"] for c in checks.values()),
                            "worst_sdpa_error": max(c["sdpa_error"] for c in checks.values()),
                            "frames_not_within_rounding": [f for f, c in checks.items() if not c["ok"]]}
    return results


def _time_ms(device: torch.device, fn: Callable, *args, repeats: int = 50, **kwargs) -> float:
    """Mean milliseconds of `fn(*args, **kwargs)` after warm-up runs (synchronised)."""
    for _ in range(3):
        fn(*args, **kwargs)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    for _ in range(repeats):
        fn(*args, **kwargs)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return 1e3 * (time.perf_counter() - start) / repeats


def attention_timing(shapes: Counter, device: torch.device, dtype: torch.dtype = torch.float16,
                     choices: Iterable[tuple[str, int]] = ATTENTION_CHOICES) -> dict:
    """Milliseconds per UNet call of its temporal attentions: SDPA and each (packing, rows) choice."""
    totals: dict[str, float] = {"sdpa": 0.0}
    per_shape = []
    for shape, count in sorted(shapes.items()):
        q, k, v = packed(shape, dtype, device)
        row = {"shape": shape, "calls": count, "sdpa_ms": _time_ms(device, F.scaled_dot_product_attention, q, k, v)}
        totals["sdpa"] += count * row["sdpa_ms"]
        for packing, rows in choices:
            name = f"{packing}/{rows}"
            try:
                ms = _time_ms(device, ta.temporal_attention, q, k, v, rows=rows, packing=packing)
            except Exception:  # one choice that does not compile leaves the others to compare
                log.exception("timing the temporal-attention kernel %s on %s failed", name, shape)
                ms = float("nan")
            row[f"{name}_ms"] = ms
            totals[name] = totals.get(name, 0.0) + count * ms
        per_shape.append(row)
    timed = {name: ms for name, ms in totals.items() if name != "sdpa" and ms == ms}
    return {"ms_per_unet_call": totals, "best": min(timed, key=timed.get) if timed else None,
            "per_shape": per_shape}


def _fp8_shape(shape: LinearShape, device: torch.device) -> dict:
    """One Linear shape: errors against the fp32 product and times, fp16 and fp8 (each scaling; the static one
    calibrated on this input)."""
    rows, n_in, n_out = shape
    g = torch.Generator().manual_seed(0)
    x = torch.randn(rows, n_in, generator=g).to(device)
    linear = nn.Linear(n_in, n_out, device=device)  # PyTorch's default initialisation, as the bench's weights
    exact = linear(x).detach()
    half = linear.half()
    xh = x.half()
    norm = float(exact.norm())
    out = {"fp16_error": float((half(xh).float() - exact).norm()) / norm,
           "fp16_ms": _time_ms(device, half, xh)}
    for scaling in fp8.SCALINGS:
        layer = fp8.Fp8Linear.from_linear(half, scaling)
        with fp8.observing(layer):  # on another draw: calibrated on `xh` itself its error would be a best case
            layer(torch.randn(rows, n_in, generator=g).to(device).half())
        got = layer(xh)
        values, x_scale = layer.quantize_input(xh)
        w_scale = layer.scale.t() if scaling == "row" else layer.scale
        dtype = fp8.ROWWISE_OUT if scaling == "row" else torch.float16
        out |= {f"fp8_{scaling}_error": float((got.float() - exact).norm()) / norm,
                f"fp8_{scaling}_vs_reference": float((got.float() - layer.reference(xh)).norm()) / norm,
                f"fp8_{scaling}_ms": _time_ms(device, layer, xh),
                f"fp8_{scaling}_gemm_ms": _time_ms(device, torch._scaled_mm, values, layer.weight.t(), x_scale,
                                                   w_scale, out_dtype=dtype)}
    return out


def fp8_checks(shapes: Counter, device: torch.device) -> dict:
    """Per transformer Linear shape of one UNet call, and summed over the call: fp16 against fp8."""
    reason = fp8.unavailable(device)
    if reason is not None:
        return {"skipped": reason}
    per_shape, totals, worst = [], Counter(), Counter()
    for shape, count in sorted(shapes.items()):
        try:
            row = _fp8_shape(shape, device)
        except Exception as exc:  # a product cuBLASLt refuses here: recorded, the others still measured
            log.exception("the fp8 check of Linear shape %s failed", shape)
            per_shape.append({"shape": shape, "calls": count, "error": repr(exc)[:500]})
            continue
        per_shape.append({"shape": shape, "calls": count, **row})
        totals.update({k: count * v for k, v in row.items() if k.endswith("_ms")})
        for key in (k for k in row if not k.endswith("_ms")):
            worst[key] = max(worst[key], row[key])
    return {"ms_per_unet_call": dict(totals), "worst_relative_error": dict(worst), "per_shape": per_shape}


def _conv_row(shape: ConvShape, device: torch.device, dtype: torch.dtype = torch.float16) -> dict:
    """One convolution shape, channels-last: cuDNN's time and rate, a GEMM of the same M×K×N (what an implicit
    GEMM could reach: the headroom of the convolution kernels on this shape)."""
    _, n, c_in, h, w, c_out, kh, kw, stride, pad_h, pad_w = shape
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, c_in, h, w, generator=g).to(device, dtype).contiguous(memory_format=torch.channels_last)
    weight = (torch.randn(c_out, c_in, kh, kw, generator=g) * (c_in * kh * kw) ** -0.5).to(device, dtype)
    weight = weight.contiguous(memory_format=torch.channels_last)
    bias = torch.randn(c_out, generator=g).to(device, dtype)
    args = (x, weight, bias, stride, (pad_h, pad_w))
    out = F.conv2d(*args)
    rows, depth = out.shape[0] * out.shape[2] * out.shape[3], c_in * kh * kw
    tflop = 2 * rows * depth * c_out / 1e12
    row = {"cudnn_ms": _time_ms(device, F.conv2d, *args)}
    a, b = torch.randn(rows, depth, device=device, dtype=dtype), torch.randn(depth, c_out, device=device, dtype=dtype)
    row["equal_gemm_ms"] = _time_ms(device, torch.mm, a, b)
    row["cudnn_tflops"] = tflop / row["cudnn_ms"] * 1e3
    row["equal_gemm_tflops"] = tflop / row["equal_gemm_ms"] * 1e3
    conv = nn.Conv2d(c_in, c_out, (kh, kw), stride, (pad_h, pad_w), device=device, dtype=dtype)
    if fp8_kernel_runs(device) and fp8.eligible_conv(conv):
        row |= _fp8_conv(conv, args, g)
    return row


def fp8_kernel_runs(device: torch.device) -> bool:
    """Whether fp8.Fp8Conv3x3 runs on `device`: a GPU with fp8 tensor cores, or the CPU in Triton's interpreter."""
    return fp8.unavailable(device) is None or (device.type == "cpu" and conv3x3.INTERPRETED)


def _fp8_conv(conv: nn.Conv2d, args: tuple, g: torch.Generator) -> dict:
    """The fp8 kernel on one 3×3 shape, on the operands fp8.Fp8Conv3x3 hands it (its input's cast is a pass of the
    producer's in the video, so not timed here): its time with the default fast accumulation and with each K step's
    partial sum promoted to fp32, each one's error against its own operands' exact sums, and the layer's error
    against the fp32 convolution of the fp16 operands (norm-relative, as the Linear's)."""
    x, weight, bias = args[:3]
    with torch.no_grad():
        conv.weight.copy_(weight)
        conv.bias.copy_(bias)
        layer = fp8.Fp8Conv3x3.from_conv(conv)
        with fp8.observing(layer):  # on another draw: calibrated on `x` itself its error would be a best case
            layer(torch.randn(x.shape, generator=g).to(x).contiguous(memory_format=torch.channels_last))
        exact = F.conv2d(x.float(), weight.float(), bias.float(), padding=1)
        own = layer.reference(x)
        norm = float(exact.norm())
        values = layer.quantize_input(x)[0].contiguous(memory_format=torch.channels_last)
        block_k = conv3x3.config_for(x.shape[0] * x.shape[2] * x.shape[3], x.shape[1])[2]
        row = {"fp8_kernel_error": float((layer(x).float() - exact).norm()) / norm}
        for name, promote in (("fp8_kernel", None), ("fp8_promoted", block_k)):
            run = partial(conv3x3.conv3x3, values, layer.weight, layer.product_scale, layer.bias, x.dtype,
                          promote=promote)
            row[f"{name}_ms"] = _time_ms(x.device, run)
            row[f"{name}_vs_reference"] = float((run().float() - own).norm()) / norm
        return row


def conv_timing(shapes: Counter, device: torch.device) -> dict:
    """Per convolution shape of one UNet call and summed by kind (spatial 3×3, temporal 3×1, 1×1) over the call:
    cuDNN and the equal-size GEMM; where it runs, the fp8 kernel on the shapes it takes (summed with cuDNN's time
    on the same shapes, `fp8_kernel_cudnn_ms`, and its worst errors)."""
    per_shape, totals, worst = [], Counter(), Counter()
    for shape, count in sorted(shapes.items()):
        try:
            row = _conv_row(shape, device)
        except Exception as exc:  # one shape that fails leaves the others measured
            log.exception("timing the convolution shape %s failed", shape)
            per_shape.append({"shape": shape, "calls": count, "error": repr(exc)[:500]})
            continue
        per_shape.append({"shape": shape, "calls": count, **row})
        totals.update({f"{shape[0]} {k}": count * v for k, v in row.items() if k.endswith("_ms")})
        if "fp8_kernel_ms" in row:
            totals[f"{shape[0]} fp8_kernel_cudnn_ms"] += count * row["cudnn_ms"]
            for key in ("fp8_kernel_error", "fp8_kernel_vs_reference", "fp8_promoted_vs_reference"):
                worst[key] = max(worst[key], row[key])
    return {"ms_per_unet_call": dict(totals), "worst_relative_error": dict(worst), "per_shape": per_shape}
