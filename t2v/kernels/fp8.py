"""fp8 (e4m3) Linear layers through `torch._scaled_mm`: a precision choice (`--dtype fp8`), never the default.

Weights are quantised once with one scale per output row; activations at each call with one scale per row
(token), or both with one scale per tensor (`scaling="tensor"`). A scale is amax / 448, e4m3's largest finite
value, so every row uses the whole e4m3 range. e4m3 keeps 3 mantissa bits: each quantised element is within 2⁻⁴
of itself relatively (half a unit in the last place), and within 2⁻¹⁰ · scale near zero (subnormals). Per-row
scales commute with stacking rows, so fused q/k/v projections stack their quantised parts as they are (`cat`).

Which layers (`quantize_unet`): every nn.Linear inside the spatial and temporal transformers — attention
projections, the GEGLU feed-forward, the spatial proj_in/proj_out: most of the 4.8 TFLOP of GEMMs in a standard
UNet call. Not the timestep-embedding layers (a few rows per call), not the temporal transformers' proj_in /
proj_out (stored as Conv1d, applied with F.linear) and no convolution (fp8 implicit-GEMM convolution kernels are
the larger prize of issue 16, not written yet). Everything else runs in float16.

`Fp8Linear.forward` needs a CUDA GPU with fp8 tensor cores (`unavailable` says why not); `reference` is the same
arithmetic in fp32 on any device (what the tests and the benchmark compare the GPU product with).
"""

from __future__ import annotations

import logging

import torch
import torch.nn.functional as F
from torch import nn

from t2v.errors import UnsupportedDevice
from t2v.unet import SpatialTransformer, TemporalTransformer

log = logging.getLogger(__name__)

E4M3 = getattr(torch, "float8_e4m3fn", None)
E4M3_MAX = 448.0  # largest finite e4m3fn value
SCALINGS = ("row", "tensor")
MIN_CAPABILITY = (8, 9)  # Ada; Hopper is 9.0
ROWWISE_OUT = torch.bfloat16  # row-wise scaled products come out in bf16 (torch's _scaled_mm accepts no other
#                               output there in most versions), then are cast to the activations' dtype
MULTIPLE = 16  # cuBLASLt's fp8 GEMM wants both weight dimensions divisible by 16


def unavailable(device: torch.device | str) -> str | None:
    """Why `device` cannot run fp8 matrix products (one line), or None when it can."""
    device = torch.device(device)
    if E4M3 is None or not hasattr(torch, "_scaled_mm"):
        return f"torch {torch.__version__} has no float8_e4m3fn matrix product (torch._scaled_mm)"
    if device.type != "cuda" or not torch.cuda.is_available():
        return (f"fp8 needs a CUDA GPU with fp8 tensor cores (compute capability {MIN_CAPABILITY[0]}."
                f"{MIN_CAPABILITY[1]} or later: Ada, Hopper, Blackwell); {device} is not one")
    capability = torch.cuda.get_device_capability(device)
    if capability < MIN_CAPABILITY:
        return (f"fp8 needs compute capability {MIN_CAPABILITY[0]}.{MIN_CAPABILITY[1]} or later (Ada, Hopper, "
                f"Blackwell); {torch.cuda.get_device_name(device)} is {capability[0]}.{capability[1]}")
    return None


def quantize(x: torch.Tensor, scaling: str = "row") -> tuple[torch.Tensor, torch.Tensor]:
    """(e4m3 values, fp32 scales) with x ≈ values · scales: one scale per row ([rows, 1]) or per tensor ([])."""
    if scaling not in SCALINGS:
        raise ValueError(f"scaling {scaling!r}: use one of {', '.join(SCALINGS)}")
    x = x.float()
    amax = x.abs().amax(dim=-1, keepdim=True) if scaling == "row" else x.abs().amax()
    scale = (amax / E4M3_MAX).clamp(min=torch.finfo(torch.float32).tiny)  # an all-zero row keeps scale > 0
    return (x / scale).clamp(-E4M3_MAX, E4M3_MAX).to(E4M3), scale


def dequantize(values: torch.Tensor, scale: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """values · scale in `dtype`."""
    return (values.float() * scale).to(dtype)


class Fp8Linear(nn.Module):
    """y = x Wᵀ + b with W in e4m3 and x quantised at each call (same scaling for both); torch._scaled_mm.

    `rows` picks a part of the output (its weight rows, scales and bias): the fused attention's q of a shared q/k/v
    weight. The fp8 weight and its scales are buffers: no gradients, and `.to(dtype)` leaves them as they are.
    """

    def __init__(self, weight: torch.Tensor, scale: torch.Tensor, bias: torch.Tensor | None, scaling: str):
        super().__init__()
        self.out_features, self.in_features = weight.shape
        self.scaling = scaling
        self.register_buffer("weight", weight)
        self.register_buffer("scale", scale)
        self.register_buffer("bias", bias)

    @classmethod
    def from_linear(cls, linear: nn.Linear, scaling: str = "row") -> Fp8Linear:
        """The quantised copy of `linear` (its bias stays in its dtype)."""
        weight, scale = quantize(linear.weight.detach(), scaling)
        return cls(weight, scale, None if linear.bias is None else linear.bias.detach(), scaling)

    @classmethod
    def cat(cls, parts: list[Fp8Linear]) -> Fp8Linear:
        """One layer whose output rows are the parts' in order (row scaling: no requantisation)."""
        first = parts[0]
        if any(p.scaling != first.scaling or p.in_features != first.in_features for p in parts):
            raise ValueError("only layers of one input size and one scaling stack")
        if first.scaling == "tensor":  # one scale for all: requantise the stacked dequantised weight
            weight, scale = quantize(torch.cat([dequantize(p.weight, p.scale) for p in parts]), "tensor")
        else:
            weight, scale = torch.cat([p.weight for p in parts]), torch.cat([p.scale for p in parts])
        given = [p.bias for p in parts if p.bias is not None]
        bias = None if not given else torch.cat(
            [p.bias if p.bias is not None else given[0].new_zeros(p.out_features) for p in parts])
        return cls(weight, scale, bias, first.scaling)

    def _part(self, rows: slice) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        scale = self.scale[rows] if self.scaling == "row" else self.scale
        return self.weight[rows], scale, None if self.bias is None else self.bias[rows]

    def forward(self, x: torch.Tensor, rows: slice = slice(None)) -> torch.Tensor:
        if not x.is_cuda:
            raise UnsupportedDevice(f"fp8 Linear on {x.device}: {unavailable(x.device)}")
        weight, w_scale, bias = self._part(rows)
        flat = x.reshape(-1, self.in_features)
        values, x_scale = quantize(flat, self.scaling)
        values = values.contiguous()  # the fp8 GEMM takes a row-major left operand only
        if self.scaling == "row":  # scales [M, 1] and [1, N]
            out = torch._scaled_mm(values, weight.t(), scale_a=x_scale, scale_b=w_scale.t(), out_dtype=ROWWISE_OUT)
            out = out.to(x.dtype) if bias is None else (out + bias).to(x.dtype)
        else:
            out = torch._scaled_mm(values, weight.t(), scale_a=x_scale, scale_b=w_scale, bias=bias,
                                   out_dtype=x.dtype)
        return out.reshape(*x.shape[:-1], out.shape[-1])

    def reference(self, x: torch.Tensor, rows: slice = slice(None)) -> torch.Tensor:
        """`forward`'s arithmetic in fp32 on any device: the same quantised operands, exact products and sums."""
        weight, w_scale, bias = self._part(rows)
        values, x_scale = quantize(x.reshape(-1, self.in_features), self.scaling)
        out = F.linear(dequantize(values, x_scale), dequantize(weight, w_scale), None if bias is None else bias.float())
        return out.reshape(*x.shape[:-1], out.shape[-1])

    def _apply(self, fn, recurse: bool = True):
        """Device moves only for the e4m3 weight and its fp32 scales: a `.half()` or `.to(float16)` of the whole
        UNet would otherwise dequantise the one and round the other (the bias follows like any tensor)."""
        device = fn(torch.empty(0, device=self.weight.device)).device
        self.weight, self.scale = self.weight.to(device), self.scale.to(device)
        if self.bias is not None:
            self.bias = fn(self.bias)
        return self

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, scaling={self.scaling}"


def eligible(linear: nn.Module) -> bool:
    """An nn.Linear whose weight sizes the fp8 GEMM takes."""
    return (isinstance(linear, nn.Linear) and linear.in_features % MULTIPLE == 0
            and linear.out_features % MULTIPLE == 0)


def quantize_unet(unet: nn.Module, scaling: str = "row") -> list[str]:
    """Swap every eligible nn.Linear inside the UNet's spatial and temporal transformers for an Fp8Linear, in
    place; returns the swapped layers' names."""
    swapped = []
    for prefix, block in unet.named_modules():
        if not isinstance(block, SpatialTransformer | TemporalTransformer):
            continue
        for name, module in list(block.named_modules()):
            for child_name, child in list(module.named_children()):
                if eligible(child):
                    setattr(module, child_name, Fp8Linear.from_linear(child, scaling))
                    swapped.append(".".join(filter(None, (prefix, name, child_name))))
    log.info("fp8 (%s scales): %d Linear layers of the UNet's transformers quantised to e4m3", scaling,
             len(swapped))
    return swapped
