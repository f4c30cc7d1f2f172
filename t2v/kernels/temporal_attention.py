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
    def _block(ptr, z, h, stride_z, stride_h, stride_f, f, d):
        """Pointers of a [problems, frames, head_dim] block: problem (z, h), frame f, feature d."""
        return ptr + (z * stride_z + h * stride_h)[:, None, None] + f[None, :, None] * stride_f + d[None, None, :]

    @triton.jit
    def temporal_attention_batched(q_ptr, k_ptr, v_ptr, o_ptr, problems, heads, frames,
                                   sqz, sqh, sqf, skz, skh, skf, svz, svh, svf, soz, soh, sof, scale_log2,
                                   BLOCK_P: tl.constexpr, BLOCK_F: tl.constexpr, HEAD_DIM: tl.constexpr,
                                   DOT_F32: tl.constexpr):
        """BLOCK_P problems per program, each its own [BLOCK_F, BLOCK_F] score block (3-D dots)."""
        p = tl.program_id(0) * BLOCK_P + tl.arange(0, BLOCK_P)
        z = (p // heads).to(tl.int64)  # int64 offsets: a large batch's q passes 2³¹ elements
        h = (p % heads).to(tl.int64)
        f = tl.arange(0, BLOCK_F)
        d = tl.arange(0, HEAD_DIM)
        mask = (p < problems)[:, None, None] & (f < frames)[None, :, None]
        q = tl.load(_block(q_ptr, z, h, sqz, sqh, sqf, f, d), mask=mask, other=0.0)  # [P, F, D]
        k = tl.load(_block(k_ptr, z, h, skz, skh, skf, f, d), mask=mask, other=0.0)
        v = tl.load(_block(v_ptr, z, h, svz, svh, svf, f, d), mask=mask, other=0.0)
        if DOT_F32:  # Triton's interpreter multiplies bf16 operands' raw bits: products in fp32 there
            q, k, v = q.to(tl.float32), k.to(tl.float32), v.to(tl.float32)
        s = tl.dot(q, tl.trans(k, (0, 2, 1))) * scale_log2  # [P, F, F] fp32, in log2 units
        s = tl.where((f < frames)[None, None, :], s, float("-inf"))  # padded keys
        e = tl.exp2(s - tl.max(s, axis=2)[:, :, None])
        o = tl.dot(e.to(v.dtype), v) / tl.sum(e, axis=2)[:, :, None]  # [P, F, D]
        tl.store(_block(o_ptr, z, h, soz, soh, sof, f, d), o.to(o_ptr.dtype.element_ty), mask=mask)

    @triton.jit
    def temporal_attention_diagonal(q_ptr, k_ptr, v_ptr, o_ptr, problems, heads, frames,
                                    sqz, sqh, sqf, skz, skh, skf, svz, svh, svf, soz, soh, sof, scale_log2,
                                    BLOCK_P: tl.constexpr, BLOCK_F: tl.constexpr, HEAD_DIM: tl.constexpr,
                                    DOT_F32: tl.constexpr):
        """BLOCK_P problems per program as BLOCK_P·BLOCK_F rows of one 2-D score tile, masked block-diagonal."""
        r = tl.arange(0, BLOCK_P * BLOCK_F)
        p = tl.program_id(0) * BLOCK_P + r // BLOCK_F
        f = r % BLOCK_F
        z = (p // heads).to(tl.int64)
        h = (p % heads).to(tl.int64)
        d = tl.arange(0, HEAD_DIM)
        rows = ((p < problems) & (f < frames))[:, None]
        q = tl.load(q_ptr + (z * sqz + h * sqh + f * sqf)[:, None] + d[None, :], mask=rows, other=0.0)  # [R, D]
        k = tl.load(k_ptr + (z * skz + h * skh + f * skf)[:, None] + d[None, :], mask=rows, other=0.0)
        v = tl.load(v_ptr + (z * svz + h * svh + f * svf)[:, None] + d[None, :], mask=rows, other=0.0)
        if DOT_F32:
            q, k, v = q.to(tl.float32), k.to(tl.float32), v.to(tl.float32)
        s = tl.dot(q, tl.trans(k)) * scale_log2  # [R, R]
        same = (r // BLOCK_F)[:, None] == (r // BLOCK_F)[None, :]
        s = tl.where(same & (f < frames)[None, :], s, float("-inf"))
        e = tl.exp2(s - tl.max(s, axis=1)[:, None])
        o = tl.dot(e.to(v.dtype), v) / tl.sum(e, axis=1)[:, None]
        tl.store(o_ptr + (z * soz + h * soh + f * sof)[:, None] + d[None, :], o.to(o_ptr.dtype.element_ty),
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
    if triton is None:
        return "triton is not installed"
    if q.dim() != 4 or q.shape != k.shape or q.shape != v.shape:
        return f"q, k, v must share one [problems, heads, frames, head_dim] shape: {q.shape}, {k.shape}, {v.shape}"
    if q.dtype not in DTYPES or k.dtype != q.dtype or v.dtype != q.dtype:
        return f"dtypes {q.dtype}, {k.dtype}, {v.dtype}: the kernel takes float16 or bfloat16, all three alike"
    problem = shape_problem(tuple(q.shape))
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


@torch.library.custom_op("t2v::temporal_attention", mutates_args=())
def _kernel_op(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, rows: int, packing: str) -> torch.Tensor:
    """The Triton kernel; callers check `why_not` first (temporal_attention does)."""
    check_options(rows, packing)
    q, k, v = (t if t.stride(-1) == 1 else t.contiguous() for t in (q, k, v))
    problems, heads, frames, dim = q.shape
    out = torch.empty((problems, frames, heads, dim), device=q.device, dtype=q.dtype).transpose(1, 2)
    block_f = max(16, triton.next_power_of_2(frames))
    block_p = max(1, rows // block_f)
    pairs = problems * heads
    KERNELS[packing][(triton.cdiv(pairs, block_p),)](
        q, k, v, out, pairs, heads, frames, *q.stride()[:3], *k.stride()[:3], *v.stride()[:3], *out.stride()[:3],
        LOG2_E / math.sqrt(dim), BLOCK_P=block_p, BLOCK_F=block_f, HEAD_DIM=dim,
        DOT_F32=INTERPRETED and q.dtype == torch.bfloat16)
    return out


@_kernel_op.register_fake
def _kernel_fake(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, rows: int, packing: str) -> torch.Tensor:
    problems, heads, frames, dim = q.shape
    return q.new_empty((problems, frames, heads, dim)).transpose(1, 2)
