"""3×3 convolutions (stride 1, padding 1) as one implicit-GEMM Triton kernel, for fp8 (e4m3) or fp16 operands.

The UNet's spatial 3×3 convolutions are ≈ 8.7 ms of a 28–30 ms guided call (perf-notes row 49), cuDNN's fp16
kernels at ≈ 400 TFLOP/s. This kernel is the candidate for running them on fp8 tensor cores: each output pixel row
of the GEMM [pixels, 9·C_in] × [9·C_in, C_out] gathers its nine taps straight from the channels-last input (no
im2col copy; out-of-image taps read as zero), accumulates in fp32, and writes `acc · scale + bias` channels-last in
the output dtype. `scale` is a one-element fp32 tensor (the product of the input's and the weight's e4m3 scales; 1
for fp16 operands).

`weight_rows(weight)` lays a Conv2d weight [C_out, C_in, 3, 3] out as the kernel reads it: [C_out, 9·C_in], tap
major, channels minor. `conv3x3(x, w, scale, bias)` takes x [N, C_in, H, W] with channels-last strides and returns
[N, C_out, H, W] channels-last; `torch.ops.t2v.conv3x3` is the same call as a custom op, opaque to torch.compile
(its fake gives the output's shape and strides) with its tile sizes by `config_for`; CUDA graphs capture it as any
launch. `reference` is the same operands' products summed exactly in fp32, on any device. On Hopper the kernel's
fp8 products are summed as Triton's `tl.dot` does by default there (the tensor cores' fast fp8 accumulation, without
promoting partial sums to fp32: what the timings below ran): measured against `reference` on an H100 its error grows
with C_in, 2e-3 of the output's range at 320 channels to 1e-2 at 2,560 (`triton_fp8_err_own` in
docs/bench/2026-12-06-h100-conv3x3-forms.json; fp8.Fp8Linear's cuBLAS products promote, and are within 2.4e-4).
`promote=BLOCK_K` adds each K step's partial sum in fp32 instead: ≤ 3.7e-4 (the fp16 output's rounding) for +20% of
the kernel's time (perf-notes row 70), so not the default. The CPU tests run it in Triton's interpreter, which sums
exactly.

Timed alone on an H100 (benchmarks/conv3x3_forms.py, 2026-12-06, the standard video's shapes, 32 images): fp8 at
640–930 TFLOP/s on the 8×8 to 32×32 latents, where cuDNN's fp16 runs at 460–690; at 4×4 (512 pixels: too few tiles to
fill the GPU) 375–390 against cuDNN fp16's 430–520. In fp16 this kernel is ≈ 1.8× slower than cuDNN: only fp8 pays.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

try:
    import triton
    import triton.language as tl
    from triton.runtime.interpreter import InterpretedFunction

    from t2v.kernels.tiles import grouped
except ImportError:  # a CPU-only install: only `reference` runs
    triton = None

# (BLOCK_M, BLOCK_N, BLOCK_K, num_warps, num_stages): the candidates a caller may time per shape
CONFIGS = (
    (128, 128, 128, 8, 4), (128, 256, 128, 8, 3), (64, 128, 128, 4, 4), (128, 64, 128, 4, 4), (64, 64, 128, 4, 4),
    (128, 128, 64, 8, 4), (128, 256, 64, 8, 3), (64, 128, 64, 4, 4), (128, 64, 64, 4, 4), (64, 64, 64, 4, 4),
)
GROUP_M = 8  # row tiles that share a column of weights, in launch order (L2 reuse)


def weight_rows(weight: torch.Tensor) -> torch.Tensor:
    """[C_out, C_in, 3, 3] → [C_out, 9·C_in] (tap-major, channels minor), contiguous."""
    c_out, c_in, kh, kw = weight.shape
    if (kh, kw) != (3, 3):
        raise ValueError(f"a 3×3 convolution's weight, got {kh}×{kw}")
    return weight.permute(0, 2, 3, 1).reshape(c_out, 9 * c_in).contiguous()


def reference(x: torch.Tensor, w: torch.Tensor, scale: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """`conv3x3`'s products of the same operands in fp32, summed exactly."""
    c_out, k = w.shape
    weight = w.float().reshape(c_out, 3, 3, k // 9).permute(0, 3, 1, 2)
    out = F.conv2d(x.float(), weight, None, padding=1) * scale.float()
    return out if bias is None else out + bias.float()[:, None, None]


def fits(c_in: int, block_k: int) -> bool:
    """Whether a config's channel step divides C_in (each K step stays inside one tap)."""
    return c_in % block_k == 0


def config_for(pixels: int, c_in: int, operand_bytes: int = 1) -> tuple[int, int, int, int, int]:
    """The tile sizes for N·H·W output `pixels`: the fp8 winners of benchmarks/conv3x3_forms.py by size (H100,
    2026-12-06): small tiles where the pixels are few, K steps of 128 channels where C_in allows and the operands
    are 1-byte (fp16 ones take 64: their best there, and twice the shared memory a step)."""
    block_k = 128 if fits(c_in, 128) and operand_bytes == 1 else 64
    if pixels < 2048:
        return 64, 64, block_k, 4, 4
    if pixels < 8192:
        return 128, 64, 64, 4, 4
    return 128, 128, block_k, 8, 4


if triton is not None:
    @triton.jit
    def _conv3x3(x_ptr, w_ptr, scale_ptr, bias_ptr, out_ptr, n_img, height, width, c_in, c_out,
                 sxn, sxh, sxw, son, soh, sow, HAS_BIAS: tl.constexpr, BLOCK_M: tl.constexpr,
                 BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, GROUP: tl.constexpr, PROMOTE: tl.constexpr):
        pixels = n_img * height * width
        pid = tl.program_id(0)
        tiles_m = tl.cdiv(pixels, BLOCK_M)
        tiles_n = tl.cdiv(c_out, BLOCK_N)
        pid_m, pid_n = grouped(pid, tiles_m, tiles_n, GROUP)

        m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
        img = m // (height * width)
        hw = m % (height * width)
        row = hw // width
        col = hw % width
        in_range = m < pixels
        base = img.to(tl.int64) * sxn
        n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
        k = tl.arange(0, BLOCK_K)
        w_rows = w_ptr + n.to(tl.int64)[:, None] * (9 * c_in) + k[None, :]
        n_ok = (n < c_out)[:, None]

        acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
        steps = tl.cdiv(c_in, BLOCK_K)
        for i in range(0, 9 * steps):
            tap = i // steps
            c0 = (i % steps) * BLOCK_K
            r = row + (tap // 3 - 1)
            c = col + (tap % 3 - 1)
            ok = in_range & (r >= 0) & (r < height) & (c >= 0) & (c < width)
            a = tl.load(x_ptr + (base + r * sxh + c * sxw)[:, None] + (c0 + k)[None, :], mask=ok[:, None], other=0.0)
            b = tl.load(w_rows + tap * c_in + c0, mask=n_ok, other=0.0)
            acc = tl.dot(a, tl.trans(b), acc, max_num_imprecise_acc=PROMOTE)

        acc = acc * tl.load(scale_ptr)
        if HAS_BIAS:
            acc += tl.load(bias_ptr + n, mask=n < c_out, other=0.0).to(tl.float32)[None, :]
        out = out_ptr + (img.to(tl.int64) * son + row * soh + col * sow)[:, None] + n[None, :]
        tl.store(out, acc.to(out_ptr.dtype.element_ty), mask=in_range[:, None] & (n < c_out)[None, :])


# TRITON_INTERPRET=1 when Triton was imported: the kernel runs on CPU tensors, in Python (the tests)
INTERPRETED = triton is not None and isinstance(_conv3x3, InterpretedFunction)


def conv3x3(x: torch.Tensor, w: torch.Tensor, scale: torch.Tensor, bias: torch.Tensor | None,
            out_dtype: torch.dtype = torch.float16, config: tuple[int, ...] | None = None,
            promote: int | None = None) -> torch.Tensor:
    """The kernel's convolution of channels-last x [N, C_in, H, W] with `weight_rows` w (see the module); tiles by
    `config_for` unless `config` names them. `promote`: fp8 products summed in the tensor cores' fast accumulation
    over at most this many channels before the partial sum is added in fp32 (None: Triton's default, on Hopper
    never)."""
    if triton is None:
        raise RuntimeError("the 3×3 convolution kernel needs Triton")
    n_img, c_in, height, width = x.shape
    c_out = w.shape[0]
    block_m, block_n, block_k, warps, stages = config or config_for(n_img * height * width, c_in, x.element_size())
    if x.stride(1) != 1:
        x = x.contiguous(memory_format=torch.channels_last)  # a copy: callers hand it over channels-last
    if not fits(c_in, block_k) or w.shape[1] != 9 * c_in or w.stride() != (9 * c_in, 1):
        raise ValueError(f"conv3x3: weight {tuple(w.shape)} strides {w.stride()} for x {tuple(x.shape)}: needs a "
                         f"contiguous [C_out, 9·C_in] (weight_rows) and C_in a multiple of BLOCK_K {block_k}")
    bias = None if bias is None else bias.contiguous()
    out = torch.empty((n_img, c_out, height, width), device=x.device, dtype=out_dtype,
                      memory_format=torch.channels_last)
    grid = (triton.cdiv(n_img * height * width, block_m) * triton.cdiv(c_out, block_n),)
    _conv3x3[grid](x, w, scale, bias if bias is not None else scale, out, n_img, height, width, c_in, c_out,
                   x.stride(0), x.stride(2), x.stride(3), out.stride(0), out.stride(2), out.stride(3),
                   HAS_BIAS=bias is not None, BLOCK_M=block_m, BLOCK_N=block_n, BLOCK_K=block_k, GROUP=GROUP_M,
                   PROMOTE=promote, num_warps=warps, num_stages=stages)
    return out


@torch.library.custom_op("t2v::conv3x3", mutates_args=())
def conv3x3_op(x: torch.Tensor, w: torch.Tensor, scale: torch.Tensor, bias: torch.Tensor | None,
               out_dtype: torch.dtype) -> torch.Tensor:
    """`conv3x3` with `config_for`'s tiles, as one op of a compiled graph."""
    return conv3x3(x, w, scale, bias, out_dtype)


@conv3x3_op.register_fake
def _conv3x3_fake(x: torch.Tensor, w: torch.Tensor, scale: torch.Tensor, bias: torch.Tensor | None,
                  out_dtype: torch.dtype) -> torch.Tensor:
    n_img, _, height, width = x.shape
    return torch.empty((n_img, w.shape[0], height, width), dtype=out_dtype, device=x.device,
                       memory_format=torch.channels_last)
