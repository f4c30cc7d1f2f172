"""The temporal-convolution kernel equals the 3×1 convolution over frames within fp16 rounding at every frame count,
with and without bias, on the CPU in Triton's interpreter (tests/conftest.py); and is that convolution wherever the
kernel does not apply."""

import pytest
import torch
import torch.nn.functional as F

from t2v.kernels import temporal_attention as ta
from t2v.kernels import temporal_conv as tc

pytestmark = pytest.mark.skipif(not ta.INTERPRETED, reason="needs TRITON_INTERPRET=1 when Triton is first imported")
SMALL = [16, 16, 16, 4, 1]  # blocks the interpreter runs quickly; tails in every dimension below


def _inputs(batch=2, channels=24, frames=5, pixels=7, out_channels=20, dtype=torch.float16, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, frames, pixels, channels, generator=g).to(dtype).permute(0, 3, 1, 2)  # channels-last
    weight = (torch.randn(out_channels, channels, 3, 1, generator=g) / (3 * channels) ** 0.5).to(dtype)
    return x, weight.contiguous(memory_format=torch.channels_last), torch.randn(out_channels, generator=g).to(dtype)


def _assert_like_the_convolution(out, x, weight, bias):
    exact = F.conv2d(x.float(), weight.float(), None if bias is None else bias.float(), padding=(1, 0))
    assert out.shape == exact.shape and out.dtype == x.dtype
    assert out.permute(0, 2, 3, 1).is_contiguous()  # channels-last, as cuDNN's output
    assert float((out.float() - exact).abs().max()) <= 2e-3 * max(1.0, float(exact.abs().max()))


@pytest.mark.parametrize("frames", [1, 2, 3, 16, 33])
def test_the_kernel_equals_the_convolution_at_any_frame_count(frames, monkeypatch):
    monkeypatch.setattr(tc, "CONFIG", SMALL)
    x, weight, bias = _inputs(frames=frames, seed=frames)
    assert tc.why_not(x, weight, bias) is None
    _assert_like_the_convolution(tc.temporal_conv(x, weight, bias), x, weight, bias)


def test_without_bias_and_with_contiguous_input_and_weights_too(monkeypatch):
    monkeypatch.setattr(tc, "CONFIG", SMALL)
    x, weight, _ = _inputs(channels=32, out_channels=16)
    x, weight = x.contiguous(), weight.contiguous()
    assert tc.why_not(x, weight, None) is None
    _assert_like_the_convolution(tc.temporal_conv(x, weight, None), x, weight, None)


def test_it_is_one_op_inside_a_full_graph_compile(monkeypatch):
    monkeypatch.setattr(tc, "CONFIG", SMALL)
    x, weight, bias = _inputs()
    compiled = torch.compile(lambda *args: tc.temporal_conv(*args) * 2, backend="aot_eager", fullgraph=True)
    torch.testing.assert_close(compiled(x, weight, bias), 2 * tc.temporal_conv(x, weight, bias))


@pytest.mark.parametrize(("change", "reason"), [
    (lambda x, w, b: (x[:0], w, b), "empty"),
    (lambda x, w, b: (x.float(), w.float(), b.float()), "float16 or bfloat16"),
    (lambda x, w, b: (x, w[:, :, :2], b), "[o, c, 3, 1]"),
])
def test_where_the_kernel_does_not_apply_it_is_the_convolution(change, reason):
    x, weight, bias = change(*_inputs())
    assert reason in tc.why_not(x, weight, bias)
    got = tc.temporal_conv(x, weight, bias) if weight.shape[2] == 3 else None
    if got is not None:
        assert torch.equal(got, F.conv2d(x, weight, bias, padding=(1, 0)))
