"""The temporal 3×1 convolution over frames as three GEMMs on shifted rows, not one cuDNN convolution.

The fast path's TemporalConv2dBlock runs each 3×1×1 Conv3d as a 3×1 Conv2d on `[b, c, f, h·w]`, which in
channels-last memory is `[b, f, h·w, c]`: the rows of frame f are one contiguous block. The convolution
out[f] = W₀·x[f−1] + W₁·x[f] + W₂·x[f+1] + bias (zero frames outside) is then

    out        = x @ W₁ᵀ + bias                  (one GEMM over every row)
    out[f ≥ 1] += x[f − 1] @ W₀ᵀ                 (the same rows shifted by one frame: a view, no copy)
    out[f < F−1] += x[f + 1] @ W₂ᵀ

three cuBLAS calls accumulating in place (K = c each). Whether they beat cuDNN's implicit-GEMM kernels on the
UNet's shapes is the benchmark's question (t2v.bench.kernel_checks.conv_timing); this module is the arithmetic,
equal to the convolution within rounding (tests/t2v/kernels/test_temporal_conv.py).
"""

from __future__ import annotations

import torch


def temporal_conv_as_gemms(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """`F.conv2d(x, weight, bias, padding=(1, 0))` for x [b, c, f, p] and weight [o, c, 3, 1], as three GEMMs;
    the output is [b, o, f, p] strided as [b, f, p, o] (channels-last), whatever x's strides."""
    b, c, frames, pixels = x.shape
    out_channels = weight.shape[0]
    rows = x.permute(0, 2, 3, 1).reshape(b, frames * pixels, c)  # a view when x is channels-last
    w = weight[..., 0].permute(2, 1, 0)  # [3, c, o]: Wₖᵀ
    if bias is None:
        out = torch.matmul(rows, w[1])
    else:
        out = torch.addmm(bias, rows.reshape(-1, c), w[1]).view(b, frames * pixels, out_channels)
    if frames > 1:
        out[:, pixels:].baddbmm_(rows[:, :-pixels], w[0].expand(b, c, out_channels))
        out[:, :-pixels].baddbmm_(rows[:, pixels:], w[2].expand(b, c, out_channels))
    return out.view(b, frames, pixels, out_channels).permute(0, 3, 1, 2)
