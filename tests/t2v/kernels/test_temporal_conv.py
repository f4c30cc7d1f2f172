"""The temporal 3×1×1 convolution as one GEMM over three frames' channels equals the Conv3d, at every frame count,
layout and batch, and its weight stays the Conv3d's through a view (styles write into it)."""

import pytest
import torch
from torch import nn

from t2v.kernels.temporal_conv import FrameTapsConv


def _conv(channels: int = 8, out_channels: int = 12, bias: bool = True, seed: int = 0) -> nn.Conv3d:
    torch.manual_seed(seed)
    return nn.Conv3d(channels, out_channels, (3, 1, 1), padding=(1, 0, 0), bias=bias)


@pytest.mark.parametrize("frames", [1, 2, 3, 16])
@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("bias", [True, False])
def test_equals_the_conv3d_over_frames(frames, batch, bias):
    conv = _conv(bias=bias, seed=frames + batch)
    x = torch.randn(batch, 8, frames, 2, 3)
    expected = conv(x)
    taps = FrameTapsConv(conv)
    flat = x.flatten(3)  # [b, c, f, h·w] as the fast path hands it over
    for layout in (flat, flat.permute(0, 2, 3, 1).contiguous().permute(0, 3, 1, 2)):  # NCHW and channels-last
        got = taps(layout)
        assert got.shape == (batch, 12, frames, 6)
        assert torch.allclose(got.unflatten(3, (2, 3)), expected, atol=1e-5, rtol=1e-5)


def test_the_output_is_channels_last_so_the_next_layer_reads_it_without_a_copy():
    out = FrameTapsConv(_conv())(torch.randn(2, 8, 5, 6))
    assert out.permute(0, 2, 3, 1).is_contiguous()


def test_the_plain_weight_is_a_view_of_the_tap_major_one():
    conv = _conv()
    taps = FrameTapsConv(conv)
    plain = taps.plain_weight()
    assert plain.shape == conv.weight.shape and torch.equal(plain, conv.weight)
    plain.add_(1.0)  # as a style's fused delta is written
    conv.weight.data.add_(1.0)
    x = torch.randn(1, 8, 4, 5)
    assert torch.allclose(taps(x), conv(x.unsqueeze(-1)).squeeze(-1), atol=1e-5)


def test_refuses_a_convolution_it_does_not_compute():
    with pytest.raises(ValueError, match="3×1×1 convolutions padded over frames"):
        FrameTapsConv(nn.Conv3d(4, 4, (3, 3, 3), padding=1))
