"""The temporal 3×1 convolution as three shifted GEMMs equals the convolution, at every frame count and layout."""

import pytest
import torch
import torch.nn.functional as F

from t2v.kernels.temporal_conv import temporal_conv_as_gemms


@pytest.mark.parametrize("frames", [1, 2, 3, 16])
@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("with_bias", [True, False])
def test_equals_the_convolution_over_frames(frames, batch, with_bias):
    g = torch.Generator().manual_seed(frames * 10 + batch)
    channels, out_channels, pixels = 8, 12, 6
    x = torch.randn(batch, channels, frames, pixels, generator=g)
    weight = torch.randn(out_channels, channels, 3, 1, generator=g)
    bias = torch.randn(out_channels, generator=g) if with_bias else None
    expected = F.conv2d(x, weight, bias, padding=(1, 0))
    for layout in (x, x.permute(0, 2, 3, 1).contiguous().permute(0, 3, 1, 2)):  # NCHW and channels-last strides
        got = temporal_conv_as_gemms(layout, weight, bias)
        assert got.shape == expected.shape
        assert torch.allclose(got, expected, atol=1e-5, rtol=1e-5)


def test_the_output_is_channels_last_so_the_next_layer_reads_it_without_a_copy():
    x = torch.randn(2, 4, 5, 3).contiguous(memory_format=torch.channels_last)
    out = temporal_conv_as_gemms(x, torch.randn(6, 4, 3, 1), torch.randn(6))
    assert out.is_contiguous(memory_format=torch.channels_last)
