"""The temporal 3×1 convolution as three cuBLAS GEMMs that sum into one output.

Each of the UNet's temporal convolutions mixes a frame's channels with its two neighbours' (3×1×1 over frames;
t2v.fast runs it as a 3×1 Conv2d over [b, c, f, h·w]). cuDNN computes them at about half the rate of a GEMM of the
same size. Here one is three GEMMs over the input's channels-last rows [b, f·p, c]: the centre tap, with the bias,
into a new output; then each neighbouring frame's tap added in place (cuBLAS's β = 1) to the rows whose neighbour
lies in the same video, one batched GEMM over the videos. Nothing is copied or rearranged: the input's rows and the
channels-last weight's taps are strided views cuBLAS reads as they are.

Timed alone from CUDA graphs on an H200 (docs/perf-notes.md row 47), a guided call's 88 temporal convolutions take
3.16 ms against cuDNN's 4.06 (standard video), 11.45 against 13.30 (a batch of 4) and 12.02 against 15.42
(24×576×320); the dilated Conv1d and the model's own Conv3d were slower than both. The output equals the
convolution within fp16 rounding (rounded three times instead of once: 8e-4 of its largest value against cuDNN's
5e-4).

It is the custom op `torch.ops.t2v.temporal_conv`, so torch.compile leaves it whole (functionalisation would turn
the in-place sums into copies) and CUDA graphs capture its three launches; its fake gives the channels-last output.
"""

from __future__ import annotations

import torch


@torch.library.custom_op("t2v::temporal_conv", mutates_args=())
def temporal_conv(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """`F.conv2d(x, weight, bias, padding=(1, 0))` for x [b, c, f, p] and weight [c_out, c, 3, 1], computed as three
    GEMMs; the output [b, c_out, f, p] is channels-last."""
    b, c, f, p = x.shape
    rows = x.permute(0, 2, 3, 1).reshape(b, f * p, c)  # a view when x is channels-last, else one copy
    taps = weight.squeeze(-1).permute(2, 1, 0)  # [3, c, c_out]: tap t's matrix, frame f + t − 1 → frame f
    flat = rows.reshape(b * f * p, c)
    out = (torch.mm(flat, taps[1]) if bias is None else torch.addmm(bias, flat, taps[1])).view(b, f * p, -1)
    if f > 1:
        out[:, p:].baddbmm_(rows[:, :-p], taps[0].expand(b, *taps[0].shape))  # frame j += frame j − 1 · tap 0
        out[:, :-p].baddbmm_(rows[:, p:], taps[2].expand(b, *taps[2].shape))  # frame j += frame j + 1 · tap 2
    return out.view(b, f, p, -1).permute(0, 3, 1, 2)


@temporal_conv.register_fake
def _fake(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    b, _, f, p = x.shape
    return x.new_empty((b, f, p, weight.shape[0])).permute(0, 3, 1, 2)
