"""The temporal 3×1 convolution over frames as a Triton implicit GEMM that reads the three frames in its K loop.

The fast path runs each TemporalConvBlock convolution (88 per guided UNet call) as a 3×1 Conv2d on [b, c, f, p]
(p = pixels per frame), channels-last: the rows of frame f are one block of p rows of c channels. cuDNN computes
these at 85–325 TFLOP/s, where a GEMM of the same M×K×N reaches 165–670 (H200, docs/perf-notes.md row 25: 6.26 ms a
call against 2.79). Writing the three frames side by side for cuBLAS lost that gain to the extra passes (row 27).
This kernel writes nothing extra: each program computes a BLOCK_M × BLOCK_N tile of the output rows [b·f·p, o] and
loops over the three taps and the input channels, reading frame f ± 1 of its rows (zero outside the clip) through
the input's strides (channels-last input, as the fast path's, gives contiguous K). fp32 accumulation, the bias in
the epilogue, the output channels-last like cuDNN's.

It reads the Conv2d's own weight [o, c, 3, 1] through its strides (channels-last weights, as t2v.fast stores them,
give contiguous K), so styles that write into the weights (t2v.lora) need nothing more. `temporal_conv(x, w, b)`
equals `F.conv2d(x, w, b, padding=(1, 0))` within fp16 rounding (tests/t2v/kernels/test_temporal_conv.py, Triton's
interpreter) and is that call wherever the kernel does not apply (`why_not`). The kernel is the custom op
`torch.ops.t2v.temporal_conv`: opaque to torch.compile and captured by CUDA graphs. Opt-in
(`optimize(temporal_conv="triton")`, bench variant `triton-conv`) until measured on a GPU.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from t2v.kernels import temporal_attention

triton = temporal_attention.triton
if triton is not None:
    import triton.language as tl

DTYPES = (torch.float16, torch.bfloat16)
CONFIGS = ((128, 128, 64, 8, 3), (128, 64, 64, 4, 4), (64, 128, 64, 4, 4), (128, 256, 64, 8, 3), (64, 64, 64, 4, 4))
# (BLOCK_M, BLOCK_N, BLOCK_K, warps, stages) the benchmark times on the UNet's shapes; CONFIG is the one used
CONFIG = CONFIGS[0]
unavailable = temporal_attention.unavailable  # the same Triton and the same tensor-core dots

if triton is not None:
    @triton.jit
    def temporal_conv_kernel(x_ptr, w_ptr, b_ptr, o_ptr, rows, frames, pixels, channels, out_channels,
                             sxb, sxc, sxf, sxp, swo, swc, swt, HAS_BIAS: tl.constexpr, BLOCK_M: tl.constexpr,
                             BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, GROUP_M: tl.constexpr):
        """One [BLOCK_M, BLOCK_N] tile of out[m, n] = Σ_tap Σ_c x[b, c, f + tap − 1, p] · w[n, c, tap] + bias[n],
        m = (b·frames + f)·pixels + p (zero where f + tap − 1 leaves the clip)."""
        pid = tl.program_id(0)
        tiles_m, tiles_n = tl.cdiv(rows, BLOCK_M), tl.cdiv(out_channels, BLOCK_N)
        group = pid // (GROUP_M * tiles_n)  # GROUP_M row tiles share their weight tiles in L2
        first_m = group * GROUP_M
        size_m = min(tiles_m - first_m, GROUP_M)
        pid_m = first_m + (pid % (GROUP_M * tiles_n)) % size_m
        pid_n = (pid % (GROUP_M * tiles_n)) // size_m
        m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
        n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
        k = tl.arange(0, BLOCK_K)
        frame = (m // pixels) % frames
        base = (m // (pixels * frames)).to(tl.int64) * sxb + (m % pixels).to(tl.int64) * sxp
        acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
        for tap in tl.static_range(3):
            source = frame + (tap - 1)
            valid = (m < rows) & (source >= 0) & (source < frames)
            row = base + source.to(tl.int64) * sxf
            for start in range(0, channels, BLOCK_K):
                c = start + k
                a = tl.load(x_ptr + row[:, None] + c[None, :].to(tl.int64) * sxc,
                            mask=valid[:, None] & (c < channels)[None, :], other=0.0)
                w = tl.load(w_ptr + n[None, :] * swo + c[:, None] * swc + tap * swt,
                            mask=(c < channels)[:, None] & (n < out_channels)[None, :], other=0.0)
                acc += tl.dot(a, w)
        if HAS_BIAS:
            acc += tl.load(b_ptr + n, mask=n < out_channels, other=0.0).to(tl.float32)[None, :]
        tl.store(o_ptr + (m.to(tl.int64) * out_channels)[:, None] + n[None, :], acc.to(o_ptr.dtype.element_ty),
                 mask=(m < rows)[:, None] & (n < out_channels)[None, :])


def why_not(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> str | None:
    """Why the kernel cannot compute this convolution, or None when it can (checked per call)."""
    if triton is None:
        return "triton is not installed"
    if x.dim() != 4 or weight.shape[1:] != (x.shape[1], 3, 1):
        return f"input {tuple(x.shape)}, weight {tuple(weight.shape)}: the kernel takes [b, c, f, p] and [o, c, 3, 1]"
    if x.dtype not in DTYPES or weight.dtype != x.dtype or (bias is not None and bias.dtype != x.dtype):
        return f"dtype {x.dtype}: the kernel takes float16 or bfloat16 input, weight and bias alike"
    if x.numel() == 0:
        return "an empty input"
    if x.device.type != "cuda" and not (temporal_attention.INTERPRETED and x.device.type == "cpu"):
        return f"{x.device} tensors: the kernel runs on CUDA GPUs (on the CPU only under TRITON_INTERPRET=1)"
    if torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in (x, weight, bias)):
        return "gradients asked for: the kernel has no backward"
    return None


def temporal_conv(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """`F.conv2d(x, weight, bias, padding=(1, 0))` for x [b, c, f, p]: the Triton kernel where it applies."""
    if why_not(x, weight, bias) is None:
        return torch.ops.t2v.temporal_conv(x, weight, bias, list(CONFIG))
    return F.conv2d(x, weight, bias, padding=(1, 0))


@torch.library.custom_op("t2v::temporal_conv", mutates_args=())
def _kernel_op(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, config: list[int]) -> torch.Tensor:
    """The Triton kernel; callers check `why_not` first (temporal_conv does)."""
    block_m, block_n, block_k, warps, stages = config
    b, channels, frames, pixels = x.shape
    out_channels = weight.shape[0]
    out = torch.empty((b, frames, pixels, out_channels), device=x.device, dtype=x.dtype)
    rows = b * frames * pixels
    grid = (triton.cdiv(rows, block_m) * triton.cdiv(out_channels, block_n),)
    temporal_conv_kernel[grid](x, weight, out if bias is None else bias, out, rows, frames, pixels, channels,
                               out_channels, *x.stride(), weight.stride(0), weight.stride(1), weight.stride(2),
                               HAS_BIAS=bias is not None, BLOCK_M=block_m, BLOCK_N=block_n, BLOCK_K=block_k,
                               GROUP_M=8, num_warps=warps, num_stages=stages)
    return out.permute(0, 3, 1, 2)


@_kernel_op.register_fake
def _kernel_fake(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, config: list[int]) -> torch.Tensor:
    b, _, frames, pixels = x.shape
    return x.new_empty((b, frames, pixels, weight.shape[0])).permute(0, 3, 1, 2)
