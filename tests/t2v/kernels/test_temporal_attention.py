"""The temporal-attention kernel equals SDPA within fp16 rounding for every frame count a request may ask for (on
the CPU, in Triton's interpreter: tests/conftest.py), and falls back to SDPA wherever it does not apply."""

import pytest
import torch
import torch.nn.functional as F

from t2v.kernels import temporal_attention as ta
from t2v.request import LIMITS

pytestmark = pytest.mark.skipif(not ta.INTERPRETED, reason="needs TRITON_INTERPRET=1 when Triton is first imported")


def _packed(pixels: int, frames: int, heads: int, dim: int, dtype=torch.float16, seed: int = 0):
    """q, k, v as the fused attention hands them over: strided views of one [pixels, frames, 3, heads, dim]."""
    qkv = torch.randn(pixels, frames, 3, heads, dim, generator=torch.Generator().manual_seed(seed)).to(dtype)
    return qkv.permute(2, 0, 3, 1, 4).unbind(0)


def _errors(out, q, k, v) -> tuple[float, float]:
    """(the kernel's, SDPA's own) max error against SDPA in fp32 on the same rounded inputs."""
    exact = F.scaled_dot_product_attention(q.float(), k.float(), v.float())
    sdpa = F.scaled_dot_product_attention(q, k, v)
    return float((out.float() - exact).abs().max()), float((sdpa.float() - exact).abs().max())


def _assert_like_sdpa(out, q, k, v, rounding: float = 1e-3):
    """Within one rounding of the output dtype of SDPA's own error."""
    assert out.shape == q.shape and out.dtype == q.dtype
    ours, sdpa = _errors(out, q, k, v)
    assert ours <= 2 * sdpa + rounding, (ours, sdpa)


def test_the_kernel_covers_every_frame_count_a_request_may_ask_for():
    assert LIMITS["frames"][1] <= ta.MAX_FRAMES


@pytest.mark.parametrize("frames", range(1, ta.MAX_FRAMES + 1))
def test_the_kernel_equals_sdpa_at_every_frame_count(frames):
    q, k, v = _packed(3, frames, 2, 16, seed=frames)
    assert ta.why_not(q, k, v) is None
    _assert_like_sdpa(ta.temporal_attention(q, k, v, rows=512), q, k, v)  # one program: the interpreter is slow


@pytest.mark.parametrize("frames", [1, 7, 16, 17, 24, 33, 64])
@pytest.mark.parametrize("packing", ta.PACKINGS)
def test_both_packings_in_bfloat16(frames, packing):
    q, k, v = _packed(3, frames, 2, 16, torch.bfloat16, seed=frames)
    _assert_like_sdpa(ta.temporal_attention(q, k, v, rows=512, packing=packing), q, k, v, rounding=8e-3)


@pytest.mark.parametrize("frames", [1, 16, 24, 64])
def test_the_diagonal_packing_equals_sdpa(frames):
    q, k, v = _packed(3, frames, 2, 16, seed=frames)
    _assert_like_sdpa(ta.temporal_attention(q, k, v, rows=128, packing="diagonal"), q, k, v)


@pytest.mark.parametrize(("packing", "frames", "rows"), [("batched", 16, 32), ("batched", 24, 64),
                                                         ("diagonal", 16, 32), ("diagonal", 5, 64)])
def test_problems_spread_over_programs_with_a_part_filled_last_one(packing, frames, rows):
    q, k, v = _packed(5, frames, 3, 16, seed=1)  # 15 (pixel, head) problems, 2 or 4 per program
    _assert_like_sdpa(ta.temporal_attention(q, k, v, rows=rows, packing=packing), q, k, v)


@pytest.mark.parametrize("dim", ta.HEAD_DIMS)
def test_every_head_size_on_contiguous_inputs(dim):
    q, k, v = torch.randn(3, 2, 2, 12, dim, generator=torch.Generator().manual_seed(dim)).half().unbind(0)
    _assert_like_sdpa(ta.temporal_attention(q, k, v, rows=512), q, k, v)


def test_the_output_merges_its_heads_as_a_free_view():
    q, k, v = _packed(2, 16, 3, 16)
    out = ta.temporal_attention(q, k, v)
    assert out.transpose(1, 2).is_contiguous()  # [pixels, frames, heads, dim]: flatten(2) copies nothing


@pytest.mark.parametrize(("make", "expected"), [
    (lambda: _packed(2, 16, 2, 16, torch.float32), "float16 or bfloat16"),
    (lambda: _packed(2, 16, 2, 40), "head size 40"),
    (lambda: _packed(2, ta.MAX_FRAMES + 1, 2, 16), f"{ta.MAX_FRAMES + 1} frames"),
    (lambda: (*_packed(2, 16, 2, 16)[:2], torch.zeros(2, 2, 8, 16, dtype=torch.float16)), "share one"),
    (lambda: _packed(0, 16, 2, 16), "no problems"),
    (lambda: [t.clone().requires_grad_() for t in _packed(2, 16, 2, 16)], "no backward"),
])
def test_what_the_kernel_does_not_take_is_sdpa_exactly(make, expected):
    q, k, v = make()
    assert expected in ta.why_not(q, k, v)
    if q.shape == k.shape == v.shape:
        assert torch.equal(ta.temporal_attention(q, k, v), F.scaled_dot_product_attention(q, k, v))


def test_problem_counts_below_the_asked_least_are_sdpa_and_any_count_above_it_the_kernel(monkeypatch):
    q, k, v = _packed(4, 16, 2, 16)  # 8 (problem, head) pairs
    served = []

    def kernel(q, k, v, rows, packing):
        served.append((rows, packing))
        return F.scaled_dot_product_attention(q, k, v)

    monkeypatch.setattr(torch.ops.t2v, "temporal_attention", kernel, raising=False)
    assert torch.equal(ta.temporal_attention(q, k, v, min_pairs=9), F.scaled_dot_product_attention(q, k, v))
    assert served == []
    ta.temporal_attention(q, k, v, min_pairs=8)
    ta.temporal_attention(q, k, v, min_pairs=1)  # no upper bound: batches of 16 take the kernel (perf-notes row 73)
    assert len(served) == 2


def test_cpu_tensors_without_the_interpreter_and_installs_without_triton_are_sdpa(monkeypatch):
    q, k, v = _packed(2, 16, 2, 16)
    monkeypatch.setattr(ta, "INTERPRETED", False)
    assert "CUDA GPUs" in ta.why_not(q, k, v) and "CUDA GPUs" in ta.unavailable("cpu")
    assert torch.equal(ta.temporal_attention(q, k, v), F.scaled_dot_product_attention(q, k, v))
    monkeypatch.setattr(ta, "triton", None)
    assert ta.why_not(q, k, v) == ta.unavailable("cuda") == "triton is not installed"


def test_gpus_before_ampere_are_refused_once_for_the_whole_fast_path(monkeypatch):
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (7, 5))
    assert "compute capability 7.5" in ta.unavailable("cuda")
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (9, 0))
    assert ta.unavailable("cuda") is None and ta.unavailable("cpu") is None


@pytest.mark.parametrize(("rows", "packing", "expected"), [(128, "zigzag", "packing 'zigzag'"),
                                                          (96, "batched", "rows 96"), (8, "batched", "rows 8")])
def test_packings_and_row_counts_without_code_are_refused(rows, packing, expected):
    with pytest.raises(ValueError, match=expected):
        ta.check_options(rows, packing)


def test_the_custom_op_passes_torch_library_checks():
    q, k, v = _packed(2, 16, 2, 16)
    torch.library.opcheck(torch.ops.t2v.temporal_attention.default, (q, k, v, 128, "batched"))


def test_torch_compile_keeps_the_kernel_in_one_graph():
    graphs = []

    def backend(gm, example_inputs):
        graphs.append(gm)
        return gm.forward

    q, k, v = _packed(2, 16, 2, 16)
    compiled = torch.compile(ta.temporal_attention, backend=backend, fullgraph=True)
    with torch.no_grad():
        out = compiled(q, k, v)
    assert len(graphs) == 1 and "t2v.temporal_attention" in graphs[0].code
    assert torch.equal(out, ta.temporal_attention(q, k, v))
