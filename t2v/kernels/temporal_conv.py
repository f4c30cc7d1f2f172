"""The temporal 3×1×1 convolution over frames as one GEMM: each row holds its three neighbouring frames' channels.

The TemporalConvBlock's Conv3d mixes frames f−1, f and f+1 at every pixel: out[f] = W₀·x[f−1] + W₁·x[f] + W₂·x[f+1]
+ bias, zero frames outside. cuDNN runs it as an implicit GEMM at 85–325 TFLOP/s on the UNet's shapes, where a plain
GEMM of the same M×K×N runs at 570–670 (H200, docs/perf-notes.md row 25). Here the three frames' channels are laid
side by side, `taps` [b, f, p, 3c] (under torch.compile one pointwise kernel, fused with the GroupNorm+SiLU that
produces x), and one GEMM with the weight stored tap-major [o, 3c] gives the output, channels-last. It equals the
convolution within rounding (tests/t2v/kernels/test_temporal_conv.py); the plain path keeps the Conv3d.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def frame_taps_conv(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """The 3×1 convolution over frames (zero padding) of x [b, c, f, p] (any strides) by `weight` [o, 3c], tap-major
    (weight[o, k·c + i] is the Conv3d's weight[o, i, k, 0, 0]); the output is [b, o, f, p] strided as [b, f, p, o]."""
    frames = x.shape[2]
    rows = x.permute(0, 2, 3, 1)  # [b, f, p, c]: a view of channels-last memory
    padded = F.pad(rows, (0, 0, 0, 0, 1, 1))  # a zero frame before the first and after the last
    taps = torch.cat([padded[:, k:k + frames] for k in range(3)], dim=-1)  # [b, f, p, 3c]: frames f−1, f, f+1
    return F.linear(taps, weight, bias).permute(0, 3, 1, 2)


class FrameTapsConv(nn.Module):
    """A 3×1×1 Conv3d over frames, for inputs [b, c, f, p] (pixels flattened), computed by `frame_taps_conv`."""

    def __init__(self, conv: nn.Conv3d):
        super().__init__()
        if conv.kernel_size != (3, 1, 1) or conv.padding != (1, 0, 0) or conv.stride != (1, 1, 1):
            raise ValueError(f"FrameTapsConv computes 3×1×1 convolutions padded over frames, not {conv}")
        weight = conv.weight.detach()[..., 0, 0]  # [o, c, 3]
        self.weight = nn.Parameter(weight.transpose(1, 2).reshape(weight.shape[0], -1).contiguous(),
                                   requires_grad=False)
        self.bias = conv.bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return frame_taps_conv(x, self.weight, self.bias)

    def plain_weight(self) -> torch.Tensor:
        """The Conv3d's weight [o, c, 3, 1, 1] as a view of the tap-major one (writing into it writes here)."""
        return self.weight.view(self.weight.shape[0], 3, -1).transpose(1, 2)[..., None, None]
