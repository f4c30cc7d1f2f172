"""Self-attention over frames for many (pixel, head) problems at once: one Triton kernel, written for t2v.

The temporal transformers attend over F = 1–64 frames at each of ~10⁴ (pixel, head) pairs per UNet call. Flash
kernels give each problem its own 64-row tile, a quarter full at 16 frames. This kernel packs BLOCK_P problems
into one program and pads each to BLOCK_F = max(16, next power of two ≥ F) frames, so 16 frames fill exactly one
m16 tensor-core tile. Two packings: "batched" (a 3-D tl.dot: one [F, F] score block per problem) and "diagonal"
(one 2-D tl.dot over all the program's rows, the other problems' scores masked out: BLOCK_P× the multiplies, in
plain 2-D tiles). fp16/bf16 in, fp32 scores, softmax sums and products, the output in the input dtype.

`temporal_attention(q, k, v)` equals `F.scaled_dot_product_attention(q, k, v)` (no mask, scale 1/√d) within
fp16 rounding, and is that SDPA call wherever the kernel does not apply (`why_not`: CPU tensors, head sizes,
frame counts, dtypes, gradients, no Triton). The kernel is the custom op `torch.ops.t2v.temporal_attention`:
opaque to torch.compile (its fake gives the output's shape and strides) and captured by CUDA graphs like any
launch. Its output is [z, h, f, d] strided as [z, f, h, d], so the caller's merge of the heads is a free view.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable

import torch
import torch.nn.functional as F

from t2v.kernels import triton_unavailable

log = logging.getLogger(__name__)

try:
    import triton
    import triton.language as tl
    from triton.runtime.interpreter import InterpretedFunction
except ImportError:  # a CPU-only install: every call is SDPA
    triton = None

HEAD_DIMS = (16, 32, 64, 128)  # powers of two (tl.arange); ModelScope's heads are all 64 wide
MAX_FRAMES = 64  # one program holds a problem's whole [F, F] score block; longer sequences fall back
DTYPES = (torch.float16, torch.bfloat16)
PACKINGS = ("batched", "diagonal")
PACKING = "diagonal"  # measured faster than "batched" on an H200 (docs/perf-notes.md row 18: 2.50 against 2.67 ms)
ROWS = 128  # query rows per program (BLOCK_P × BLOCK_F), a power of two ≥ 16; the benchmark sweeps it
MIN_PAIRS = 4096  # (problem, head) pairs from which the fast path uses the kernel, SDPA below. On an H200
# (2026-12-02, 16 frames, each shape timed alone, docs/perf-notes.md rows 18 and 28): below, SDPA (0.037–0.048 ms for
# 640 and 2,560 pairs, the kernel 0.079–0.100); from 5,120 to 65,536 pairs (single videos and batches of 4) the kernel
# 0.08–0.17 ms, SDPA 0.088–1.04 (it grows with the count, the kernel hardly). Until row 73 SDPA took every shape above
# 65,536 pairs too (not timed then): the batches of 8 and 16, 1024×576
LOG2_E = math.log2(math.e)

if triton is not None:
    @triton.jit
    def _block(ptr, z, x, h, stride_z, stride_x, stride_h, stride_f, f, d):
        """Pointers of a [problems, frames, head_dim] block: problem (z, x, h), frame f, feature d."""
        return (ptr + (z * stride_z + x * stride_x + h * stride_h)[:, None, None] + f[None, :, None] * stride_f
                + d[None, None, :])

    @triton.jit
    def _problem(p, heads, pixels):
        """Pair p's (z, x, h): its problem z's pixel x (always 0 for [problems, heads, frames, d] inputs) and head."""
        h = (p % heads).to(tl.int64)  # int64 offsets: a large batch's q passes 2³¹ elements
        rest = p // heads
        return (rest // pixels).to(tl.int64), (rest % pixels).to(tl.int64), h

    @triton.jit
    def temporal_attention_batched(q_ptr, k_ptr, v_ptr, o_ptr, problems, heads, pixels, frames,
                                   sqz, sqx, sqh, sqf, skz, skx, skh, skf, svz, svx, svh, svf,
                                   soz, sox, soh, sof, scale_log2,
                                   BLOCK_P: tl.constexpr, BLOCK_F: tl.constexpr, HEAD_DIM: tl.constexpr,
                                   DOT_F32: tl.constexpr):
        """BLOCK_P problems per program, each its own [BLOCK_F, BLOCK_F] score block (3-D dots)."""
        p = tl.program_id(0) * BLOCK_P + tl.arange(0, BLOCK_P)
        z, x, h = _problem(p, heads, pixels)
        f = tl.arange(0, BLOCK_F)
        d = tl.arange(0, HEAD_DIM)
        mask = (p < problems)[:, None, None] & (f < frames)[None, :, None]
        q = tl.load(_block(q_ptr, z, x, h, sqz, sqx, sqh, sqf, f, d), mask=mask, other=0.0)  # [P, F, D]
        k = tl.load(_block(k_ptr, z, x, h, skz, skx, skh, skf, f, d), mask=mask, other=0.0)
        v = tl.load(_block(v_ptr, z, x, h, svz, svx, svh, svf, f, d), mask=mask, other=0.0)
        if DOT_F32:  # Triton's interpreter multiplies bf16 operands' raw bits: products in fp32 there
            q, k, v = q.to(tl.float32), k.to(tl.float32), v.to(tl.float32)
        s = tl.dot(q, tl.trans(k, (0, 2, 1))) * scale_log2  # [P, F, F] fp32, in log2 units
        s = tl.where((f < frames)[None, None, :], s, float("-inf"))  # padded keys
        e = tl.exp2(s - tl.max(s, axis=2)[:, :, None])
        o = tl.dot(e.to(v.dtype), v) / tl.sum(e, axis=2)[:, :, None]  # [P, F, D]
        tl.store(_block(o_ptr, z, x, h, soz, sox, soh, sof, f, d), o.to(o_ptr.dtype.element_ty), mask=mask)

    @triton.jit
    def temporal_attention_diagonal(q_ptr, k_ptr, v_ptr, o_ptr, problems, heads, pixels, frames,
                                    sqz, sqx, sqh, sqf, skz, skx, skh, skf, svz, svx, svh, svf,
                                    soz, sox, soh, sof, scale_log2,
                                    BLOCK_P: tl.constexpr, BLOCK_F: tl.constexpr, HEAD_DIM: tl.constexpr,
                                    DOT_F32: tl.constexpr):
        """BLOCK_P problems per program as BLOCK_P·BLOCK_F rows of one 2-D score tile, masked block-diagonal."""
        r = tl.arange(0, BLOCK_P * BLOCK_F)
        p = tl.program_id(0) * BLOCK_P + r // BLOCK_F
        f = r % BLOCK_F
        z, x, h = _problem(p, heads, pixels)
        d = tl.arange(0, HEAD_DIM)
        rows = ((p < problems) & (f < frames))[:, None]
        q = tl.load(q_ptr + (z * sqz + x * sqx + h * sqh + f * sqf)[:, None] + d[None, :], mask=rows, other=0.0)
        k = tl.load(k_ptr + (z * skz + x * skx + h * skh + f * skf)[:, None] + d[None, :], mask=rows, other=0.0)
        v = tl.load(v_ptr + (z * svz + x * svx + h * svh + f * svf)[:, None] + d[None, :], mask=rows, other=0.0)
        if DOT_F32:
            q, k, v = q.to(tl.float32), k.to(tl.float32), v.to(tl.float32)
        s = tl.dot(q, tl.trans(k)) * scale_log2  # [R, R]
        same = (r // BLOCK_F)[:, None] == (r // BLOCK_F)[None, :]
        s = tl.where(same & (f < frames)[None, :], s, float("-inf"))
        e = tl.exp2(s - tl.max(s, axis=1)[:, None])
        o = tl.dot(e.to(v.dtype), v) / tl.sum(e, axis=1)[:, None]
        tl.store(o_ptr + (z * soz + x * sox + h * soh + f * sof)[:, None] + d[None, :], o.to(o_ptr.dtype.element_ty),
                 mask=rows)

    KERNELS = {"batched": temporal_attention_batched, "diagonal": temporal_attention_diagonal}
    # TRITON_INTERPRET=1 when Triton was imported: kernels run on CPU tensors, in Python (the tests)
    INTERPRETED = isinstance(temporal_attention_batched, InterpretedFunction)
else:
    KERNELS, INTERPRETED = {}, False


def unavailable(device: torch.device | str) -> str | None:
    """Why the kernel can never serve `device` (checked once, when the fast path is set up), or None."""
    return triton_unavailable(device, triton is not None, INTERPRETED)


def shape_problem(shape: tuple[int, int, int, int]) -> str | None:
    """Why the kernel cannot take a [problems, heads, frames, head_dim] shape, or None when it can."""
    problems, heads, frames, dim = shape
    if not 1 <= frames <= MAX_FRAMES:
        return f"{frames} frames: the kernel takes 1 to {MAX_FRAMES}"
    if dim not in HEAD_DIMS:
        return f"head size {dim}: the kernel takes {', '.join(map(str, HEAD_DIMS))}"
    if problems * heads == 0:
        return "no problems to attend over"
    return None


def enough_pairs(shape: tuple[int, ...], min_pairs: int | None) -> bool:
    """Whether a shape has the (problem, head) pairs `min_pairs` asks of the kernel's shapes (None: any count)."""
    return min_pairs is None or shape[0] * shape[1] >= min_pairs


def why_not(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> str | None:
    """Why the kernel cannot compute SDPA(q, k, v) for these tensors, or None when it can (checked per call)."""
    if q.dim() != 4 or q.shape != k.shape or q.shape != v.shape:
        return f"q, k, v must share one [problems, heads, frames, head_dim] shape: {q.shape}, {k.shape}, {v.shape}"
    return _why_not(tuple(q.shape), q, k, v)


def _why_not(shape: tuple[int, int, int, int], q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> str | None:
    """Why the kernel cannot attend over the problems of `shape` ([problems, heads, frames, head_dim]) in q, k, v."""
    if triton is None:
        return "triton is not installed"
    if q.dtype not in DTYPES or k.dtype != q.dtype or v.dtype != q.dtype:
        return f"dtypes {q.dtype}, {k.dtype}, {v.dtype}: the kernel takes float16 or bfloat16, all three alike"
    problem = shape_problem(shape)
    if problem is not None:
        return problem
    if k.device != q.device or v.device != q.device:
        return f"tensors on {q.device}, {k.device}, {v.device}"
    if q.device.type != "cuda" and not (INTERPRETED and q.device.type == "cpu"):
        return f"{q.device} tensors: the kernel runs on CUDA GPUs (on the CPU only under TRITON_INTERPRET=1)"
    if torch.is_grad_enabled() and (q.requires_grad or k.requires_grad or v.requires_grad):
        return "gradients asked for: the kernel has no backward"
    return None


def temporal_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, *, rows: int | None = None,
                       packing: str | None = None, min_pairs: int | None = None) -> torch.Tensor:
    """SDPA over frames ([problems, heads, frames, head_dim] each): the Triton kernel where it applies, else SDPA.

    `rows` and `packing` default to the module's ROWS and PACKING as they are at the call (the benchmark sets them).
    With `min_pairs`, shapes of fewer (problem, head) pairs go to SDPA too (the fast path passes MIN_PAIRS: below it
    too few pairs to fill the GPU). Shapes are fixed per compiled graph, so the choice is made once per shape."""
    if why_not(q, k, v) is None and enough_pairs(tuple(q.shape), min_pairs):
        return torch.ops.t2v.temporal_attention(q, k, v, ROWS if rows is None else rows,
                                                PACKING if packing is None else packing)
    return F.scaled_dot_product_attention(q, k, v)


def check_options(rows: int, packing: str) -> None:
    """Refuse a packing or row count the kernel has no code for, naming the choices."""
    if packing not in PACKINGS:
        raise ValueError(f"packing {packing!r}: use one of {', '.join(PACKINGS)}")
    if rows < 16 or rows & (rows - 1):
        raise ValueError(f"rows {rows}: use a power of two from 16 (rows per program, problems × padded frames)")


def _launch(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, out: torch.Tensor, rows: int, packing: str) -> None:
    """The kernel over [problems, pixels, heads, frames, head_dim] views (each problem's pixels share its stride)."""
    check_options(rows, packing)
    problems, pixels, heads, frames, dim = q.shape
    block_f = max(16, triton.next_power_of_2(frames))
    block_p = max(1, rows // block_f)
    pairs = problems * pixels * heads
    KERNELS[packing][(triton.cdiv(pairs, block_p),)](
        q, k, v, out, pairs, heads, pixels, frames,
        *q.stride()[:4], *k.stride()[:4], *v.stride()[:4], *out.stride()[:4],
        LOG2_E / math.sqrt(dim), BLOCK_P=block_p, BLOCK_F=block_f, HEAD_DIM=dim,
        DOT_F32=INTERPRETED and q.dtype == torch.bfloat16)


@torch.library.custom_op("t2v::temporal_attention", mutates_args=())
def _kernel_op(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, rows: int, packing: str) -> torch.Tensor:
    """The Triton kernel; callers check `why_not` first (temporal_attention does)."""
    q, k, v = (t if t.stride(-1) == 1 else t.contiguous() for t in (q, k, v))
    problems, heads, frames, dim = q.shape
    out = torch.empty((problems, frames, heads, dim), device=q.device, dtype=q.dtype).transpose(1, 2)
    _launch(q.unsqueeze(1), k.unsqueeze(1), v.unsqueeze(1), out.unsqueeze(1), rows, packing)
    return out


@_kernel_op.register_fake
def _kernel_fake(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, rows: int, packing: str) -> torch.Tensor:
    problems, heads, frames, dim = q.shape
    return q.new_empty((problems, frames, heads, dim)).transpose(1, 2)


def _by_pixel(tokens: torch.Tensor, heads: int) -> torch.Tensor:
    """[b, f, p, heads·d] frame-major tokens as a [b, p, heads, f, d] view."""
    return tokens.unflatten(-1, (heads, -1)).permute(0, 2, 3, 1, 4)


def frames_problem(qkv: torch.Tensor, heads: int) -> str | None:
    """Why `qkv` is not a [batch, frames, pixels, 3·heads·head_dim] tensor of frame-major tokens, or None."""
    if qkv.dim() != 4 or heads < 1 or qkv.shape[-1] % (3 * heads):
        return f"qkv {tuple(qkv.shape)} with {heads} heads: expected [batch, frames, pixels, 3·heads·head_dim]"
    return None


def frames_attention(qkv: torch.Tensor, heads: int, *, kernel: bool = True, rows: int | None = None,
                     packing: str | None = None, min_pairs: int | None = None) -> torch.Tensor:
    """Self-attention over frames at each pixel of frame-major tokens: `qkv` [b, f, p, 3·heads·d] (each token's q, k
    and v, heads in order) → [b, f, p, heads·d], SDPA's result for the problems [b·p, heads, f, d].

    The temporal transformers keep their tokens in the order the convolutions leave them (frame, then pixel), so
    neither their GroupNorm nor their residual add transposes frames and pixels; the kernel reads each pixel's
    frames where they lie. `kernel` False, or a shape the kernel does not take (`why_not`, and `min_pairs` as in
    `temporal_attention`), computes SDPA on copies in [b·p, heads, f, d] order instead."""
    problem = frames_problem(qkv, heads)
    if problem is not None:
        raise ValueError(problem)
    b, f, p, width = qkv.shape
    q, k, v = (_by_pixel(part, heads) for part in qkv.chunk(3, dim=-1))  # each [b, p, heads, f, d]
    shape = (b * p, heads, f, width // (3 * heads))
    if kernel and _why_not(shape, q, k, v) is None and enough_pairs(shape, min_pairs):
        return torch.ops.t2v.temporal_attention_frames(qkv, heads, ROWS if rows is None else rows,
                                                       PACKING if packing is None else packing)
    return attend_by_pixel(qkv, heads)


def attend_by_pixel(qkv: torch.Tensor, heads: int,
                    attend: Callable[..., torch.Tensor] = F.scaled_dot_product_attention) -> torch.Tensor:
    """`frames_attention` through any attention over [problems, heads, frames, head_dim] tensors (SDPA's form):
    q, k and v copied into that order, the output copied back to [b, f, p, heads·d]."""
    problem = frames_problem(qkv, heads)
    if problem is not None:
        raise ValueError(problem)
    b, f, p, width = qkv.shape
    shape = (b * p, heads, f, width // (3 * heads))
    out = attend(*(_by_pixel(part, heads).reshape(shape) for part in qkv.chunk(3, dim=-1)))  # [b·p, heads, f, d]
    return out.unflatten(0, (b, p)).permute(0, 3, 1, 2, 4).reshape(b, f, p, -1)


@torch.library.custom_op("t2v::temporal_attention_frames", mutates_args=())
def _frames_op(qkv: torch.Tensor, heads: int, rows: int, packing: str) -> torch.Tensor:
    """The Triton kernel on frame-major tokens; callers check first (frames_attention does)."""
    qkv = qkv if qkv.stride(-1) == 1 else qkv.contiguous()
    b, f, p, width = qkv.shape
    out = qkv.new_empty((b, f, p, width // 3))
    q, k, v = (_by_pixel(part, heads) for part in qkv.chunk(3, dim=-1))
    _launch(q, k, v, _by_pixel(out, heads), rows, packing)
    return out


@_frames_op.register_fake
def _frames_fake(qkv: torch.Tensor, heads: int, rows: int, packing: str) -> torch.Tensor:
    b, f, p, width = qkv.shape
    return qkv.new_empty((b, f, p, width // 3))
