"""The temporal convolution as three GEMMs equals the 3×1 Conv2d it stands for, at every frame count a request may
ask for, in every layout the fast path may hand it, and as a custom op torch.compile keeps whole."""

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from t2v.kernels.temporal_conv import temporal_conv
from t2v.request import LIMITS


def _inputs(b: int, c: int, f: int, p: int, c_out: int, dtype=torch.float64, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(b, c, f, p, generator=g, dtype=dtype).contiguous(memory_format=torch.channels_last)
    weight = torch.randn(c_out, c, 3, 1, generator=g, dtype=dtype).contiguous(memory_format=torch.channels_last)
    return x, weight, torch.randn(c_out, generator=g, dtype=dtype)


@pytest.mark.parametrize("frames", range(1, LIMITS["frames"][1] + 1))
def test_it_equals_the_convolution_at_every_frame_count(frames):
    x, weight, bias = _inputs(2, 6, frames, 5, 4, seed=frames)
    got = temporal_conv(x, weight, bias)
    torch.testing.assert_close(got, F.conv2d(x, weight, bias, padding=(1, 0)))
    assert got.is_contiguous(memory_format=torch.channels_last)  # as the next GroupNorm and the residual expect


@settings(max_examples=40, deadline=None)
@given(b=st.integers(1, 4), c=st.integers(1, 9), f=st.integers(1, 7), p=st.integers(1, 6), c_out=st.integers(1, 9),
       channels_last=st.booleans(), bias=st.booleans())
def test_it_equals_the_convolution_for_any_shape_layout_and_bias(b, c, f, p, c_out, channels_last, bias):
    x, weight, b_ = _inputs(b, c, f, p, c_out)
    layout = torch.channels_last if channels_last else torch.contiguous_format
    x, weight = x.contiguous(memory_format=layout), weight.contiguous(memory_format=layout)
    b_ = b_ if bias else None
    torch.testing.assert_close(temporal_conv(x, weight, b_), F.conv2d(x, weight, b_, padding=(1, 0)))


def test_no_frame_reaches_into_the_next_video():
    x, weight, bias = _inputs(2, 3, 4, 2, 3)
    alone = [temporal_conv(x[i:i + 1], weight, bias) for i in range(2)]
    torch.testing.assert_close(temporal_conv(x, weight, bias), torch.cat(alone))


def test_in_fp16_it_is_within_rounding_of_the_fp32_convolution():
    x, weight, bias = _inputs(2, 64, 16, 8, 64, dtype=torch.float32, seed=3)
    weight = weight * (3 * 64) ** -0.5
    exact = F.conv2d(x, weight, bias, padding=(1, 0))
    got = temporal_conv(x.half(), weight.half(), bias.half()).float()
    assert float((got - exact).abs().max() / exact.abs().max()) <= 2e-3  # three fp16 roundings of the output


def test_the_op_passes_torch_library_checks_and_compiles_whole():
    x, weight, bias = _inputs(2, 4, 3, 5, 6, dtype=torch.float32)
    torch.library.opcheck(torch.ops.t2v.temporal_conv.default, (x, weight, bias))
    graphs = []

    def backend(gm, example_inputs):
        graphs.append(gm)
        return gm.forward

    compiled = torch.compile(lambda *a: temporal_conv(*a) + 1, backend=backend, fullgraph=True)
    torch.testing.assert_close(compiled(x, weight, bias), F.conv2d(x, weight, bias, padding=(1, 0)) + 1)
    targets = [str(node.target) for node in graphs[0].graph.nodes if node.op == "call_function"]
    assert "t2v.temporal_conv.default" in targets and not any("baddbmm" in t or "addmm" in t for t in targets)
