"""The feed-forward's first layer and its GEGLU gate as one Triton GEMM: value · GELU(gate) written in its epilogue.

Each transformer's feed-forward projects its tokens [M, C] to [M, 2·H] (value rows, then gate rows: `GEGLU.proj`)
and gates them to [M, H]. Run as cuBLAS's GEMM and inductor's pointwise pass, the [M, 2·H] product is written and
read back once more: at the batch of 16 that pass (`fused_gelu_mul_split`) is the largest memory-bound kernel of a
UNet call, 26–28 ms of 367–414 (perf-notes row 73, "Next" item 7). Here each program computes a [BLOCK_M, BLOCK_N]
tile of the value half and the same columns of the gate half from one A tile (two tensor-core products a K step),
and writes only `(acc_v·s + b_v) · GELU(acc_g·s + b_g)` (exact erf GELU): 2 bytes a token·hidden element in fp16
instead of 10, 1 in e4m3.

`geglu(x, w, x_scale, w_scale, bias, out_dtype, out_scale)`: x [M, K] (fp16, or e4m3 with `x_scale` and `w_scale`
its and the weight's one-element fp32 scales, multiplied in the kernel; ones otherwise), w [2·H, K] row-major as
nn.Linear keeps it (no re-layout), bias [2·H] or None.
With `out_dtype` e4m3 the gated value is divided by `out_scale` (the next layer's static input scale), clamped to
e4m3's finite range and cast: the next fp8 GEMM's input, with no pass of its own. `torch.ops.t2v.geglu` is the same
call as a custom op (opaque to torch.compile, tiles by `config_for`); `reference` is the same operands' products
summed exactly in fp32 on any device. The CPU tests run the kernel in Triton's interpreter.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from t2v.kernels import triton_unavailable
from t2v.kernels.fp8 import E4M3, E4M3_MAX

try:
    import triton
    import triton.language as tl
    from triton.runtime.interpreter import InterpretedFunction

    from t2v.kernels.tiles import grouped
except ImportError:  # a CPU-only install: only `reference` runs
    triton = None

# (BLOCK_M, BLOCK_N of each half, BLOCK_K, num_warps, num_stages): the candidates a caller may time per shape
CONFIGS = (
    (128, 64, 64, 4, 4), (128, 64, 64, 8, 4), (128, 128, 64, 8, 3), (64, 128, 64, 4, 4), (64, 64, 64, 4, 4),
    (128, 128, 32, 8, 4), (256, 64, 64, 8, 3), (128, 64, 128, 4, 4), (128, 64, 128, 8, 3), (128, 128, 128, 8, 3),
    (64, 128, 128, 4, 3), (64, 64, 128, 4, 4),
)
GROUP_M = 8  # row tiles that share a column of weights, in launch order (L2 reuse)


def fits(k: int, block_k: int) -> bool:
    """Whether a config's K step divides the input width (no masked K loads)."""
    return k % block_k == 0


def config_for(m: int, k: int, hidden: int, operand_bytes: int = 2) -> tuple[int, int, int, int, int]:
    """The tile sizes for an [m, k] input and `hidden` gated columns, from benchmarks/geglu_forms.py's timings of
    CONFIGS on the standard video's and the batch of 16's shapes on an H100 (docs/perf-notes.md row 75): for each
    shape, the config that was fastest on it or on another shape of its width; that script times this choice beside
    the best."""
    small = m * hidden < 2048 * 2560  # a few tiles of 128 × 128: narrower ones fill more of the GPU
    if operand_bytes == 2:
        return (128, 64, 64, 8, 4) if small else (128, 128, 64, 8, 3)
    if k < 512:  # a K loop of a few steps: small tiles, more of them in flight
        return 64, 64, 64, 4, 4
    block_k = 128 if k >= 640 and fits(k, 128) else 64
    return (128, 64, block_k, 8, 3) if small else (128, 128, block_k, 8, 3)


def gelu_gate(product: torch.Tensor) -> torch.Tensor:
    """value · GELU(gate) of a [..., 2·H] product (value columns first), as GEGLU computes it."""
    value, gate = product.chunk(2, dim=-1)
    return value * F.gelu(gate)


def reference(x: torch.Tensor, w: torch.Tensor, x_scale: torch.Tensor, w_scale: torch.Tensor,
              bias: torch.Tensor | None, out_scale: torch.Tensor | None = None) -> torch.Tensor:
    """`geglu`'s arithmetic in fp32: the same operands' products summed exactly, gated; divided by `out_scale` and
    clamped to e4m3's range when given (the values the e4m3 output rounds)."""
    product = F.linear(x.float(), w.float()) * (x_scale.float() * w_scale.float())
    if bias is not None:
        product = product + bias.float()
    out = gelu_gate(product)
    return out if out_scale is None else (out / out_scale.float()).clamp(-E4M3_MAX, E4M3_MAX)


if triton is not None:
    @triton.jit
    def _geglu(x_ptr, w_ptr, x_scale_ptr, w_scale_ptr, bias_ptr, out_scale_ptr, out_ptr, m_rows, k_cols, hidden,
               sxm, som, HAS_BIAS: tl.constexpr, OUT_FP8: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
               BLOCK_K: tl.constexpr, GROUP: tl.constexpr):
        pid = tl.program_id(0)
        tiles_m = tl.cdiv(m_rows, BLOCK_M)
        tiles_n = tl.cdiv(hidden, BLOCK_N)
        pid_m, pid_n = grouped(pid, tiles_m, tiles_n, GROUP)

        m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
        n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
        k = tl.arange(0, BLOCK_K)
        m_ok = m < m_rows
        n_ok = n < hidden
        a_ptrs = x_ptr + m.to(tl.int64)[:, None] * sxm + k[None, :]
        v_ptrs = w_ptr + n.to(tl.int64)[:, None] * k_cols + k[None, :]
        g_ptrs = v_ptrs + hidden.to(tl.int64) * k_cols

        acc_v = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
        acc_g = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
        for k0 in range(0, k_cols, BLOCK_K):
            a = tl.load(a_ptrs + k0, mask=m_ok[:, None], other=0.0)
            bv = tl.load(v_ptrs + k0, mask=n_ok[:, None], other=0.0)
            bg = tl.load(g_ptrs + k0, mask=n_ok[:, None], other=0.0)
            acc_v = tl.dot(a, tl.trans(bv), acc_v)
            acc_g = tl.dot(a, tl.trans(bg), acc_g)

        scale = tl.load(x_scale_ptr) * tl.load(w_scale_ptr)
        value = acc_v * scale
        gate = acc_g * scale
        if HAS_BIAS:
            value += tl.load(bias_ptr + n, mask=n_ok, other=0.0).to(tl.float32)[None, :]
            gate += tl.load(bias_ptr + hidden + n, mask=n_ok, other=0.0).to(tl.float32)[None, :]
        out = value * gate * 0.5 * (1.0 + tl.math.erf(gate * 0.7071067811865476))
        if OUT_FP8:
            out = tl.clamp(out / tl.load(out_scale_ptr), -448.0, 448.0)
        out_ptrs = out_ptr + m.to(tl.int64)[:, None] * som + n[None, :]
        tl.store(out_ptrs, out.to(out_ptr.dtype.element_ty), mask=m_ok[:, None] & n_ok[None, :])


# TRITON_INTERPRET=1 when Triton was imported: the kernel runs on CPU tensors, in Python (the tests)
INTERPRETED = triton is not None and isinstance(_geglu, InterpretedFunction)


def unavailable(device: torch.device | str) -> str | None:
    """Why the kernel can never serve `device` (checked once, when the fast path is set up), or None."""
    return triton_unavailable(device, triton is not None, INTERPRETED)


def geglu(x: torch.Tensor, w: torch.Tensor, x_scale: torch.Tensor, w_scale: torch.Tensor, bias: torch.Tensor | None,
          out_dtype: torch.dtype = torch.float16, out_scale: torch.Tensor | None = None,
          config: tuple[int, ...] | None = None) -> torch.Tensor:
    """value · GELU(gate) of x [..., K] times w [2·H, K] (see the module): [..., H] in `out_dtype`; tiles by
    `config_for` unless `config` names them."""
    if triton is None:
        raise RuntimeError("the GEGLU kernel needs Triton")
    rows, k_cols = x.reshape(-1, x.shape[-1]).shape
    hidden = w.shape[0] // 2
    out_fp8 = E4M3 is not None and out_dtype == E4M3
    block_m, block_n, block_k, warps, stages = config or config_for(rows, k_cols, hidden, x.element_size())
    problem = None
    if w.shape != (2 * hidden, k_cols) or w.stride() != (k_cols, 1):
        problem = f"a contiguous [2·H, {k_cols}] weight, got {tuple(w.shape)} strides {w.stride()}"
    elif not fits(k_cols, block_k):
        problem = f"an input width that BLOCK_K {block_k} divides, got {k_cols}"
    elif out_fp8 and out_scale is None:
        problem = "out_scale for an e4m3 output"
    elif w.dtype != x.dtype:
        problem = f"the weight in the input's dtype {x.dtype}, got {w.dtype}"
    if problem:
        raise ValueError(f"geglu: needs {problem}")
    x2 = x.reshape(rows, k_cols)
    if x2.stride(1) != 1:
        x2 = x2.contiguous()
    out = torch.empty((rows, hidden), device=x.device, dtype=out_dtype)
    grid = (triton.cdiv(rows, block_m) * triton.cdiv(hidden, block_n),)
    _geglu[grid](x2, w, x_scale, w_scale, bias if bias is not None else x_scale, out_scale if out_fp8 else x_scale,
                 out, rows,
                 k_cols, hidden, x2.stride(0), out.stride(0), HAS_BIAS=bias is not None, OUT_FP8=out_fp8,
                 BLOCK_M=block_m, BLOCK_N=block_n, BLOCK_K=block_k, GROUP=GROUP_M, num_warps=warps,
                 num_stages=stages)
    return out.reshape(*x.shape[:-1], hidden)


@torch.library.custom_op("t2v::geglu", mutates_args=())
def geglu_op(x: torch.Tensor, w: torch.Tensor, x_scale: torch.Tensor, w_scale: torch.Tensor,
             bias: torch.Tensor | None, out_dtype: torch.dtype, out_scale: torch.Tensor | None) -> torch.Tensor:
    """`geglu` with `config_for`'s tiles, as one op of a compiled graph."""
    return geglu(x, w, x_scale, w_scale, bias, out_dtype, out_scale)


@geglu_op.register_fake
def _geglu_fake(x: torch.Tensor, w: torch.Tensor, x_scale: torch.Tensor, w_scale: torch.Tensor,
                bias: torch.Tensor | None, out_dtype: torch.dtype, out_scale: torch.Tensor | None) -> torch.Tensor:
    return x.new_empty((*x.shape[:-1], w.shape[0] // 2), dtype=out_dtype)
