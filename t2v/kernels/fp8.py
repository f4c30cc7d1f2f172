"""fp8 (e4m3) Linear layers through `torch._scaled_mm`: a precision choice (`--dtype fp8`), never the default.

Measured on an H100 (perf-notes rows 65–66): the standard video 5.8% faster than float16, its final latents 5e-2 from
float32 (float16: 1.6e-3); what that does to real images is not known here (random weights only).

Three scalings (`SCALINGS`):
* "row": weights quantised once with one scale per output row, activations at each call with one per row (token);
* "tensor": one scale per tensor for both, the activations' found at each call;
* "static" (what `dtype="fp8"` loads, `DEFAULT_SCALING`): weights as "tensor", activations with one fixed scale per
  layer, found once by a calibration render (`observing`: each layer's largest input magnitude over the render,
  times `HEADROOM`). At each call the input is only scaled, clamped and cast: a pointwise step inductor folds into
  the kernel that produced the input (a LayerNorm, the GEGLU gate), where the per-call scales need a reduction over
  every activation first (perf-notes row 19: those reductions cost more than the fp8 GEMMs saved).
A dynamic scale is amax / 448, e4m3's largest finite value, so its row or tensor uses the whole e4m3 range. e4m3
keeps 3 mantissa bits: each quantised element is within 2⁻⁴ of itself relatively (half a unit in the last place),
and within 2⁻¹⁰ · scale near zero (subnormals). Normal e4m3 numbers span 2⁻⁶ … 448, a factor of 28,672, so a static
scale with headroom loses nothing on values down to 1/3,584 of the calibrated maximum; larger inputs than the
calibration saw by more than the headroom are clamped to ±448 · scale. Per-row scales commute with stacking rows,
so fused q/k/v projections stack their quantised parts as they are (`cat`).

Which layers (`quantize_unet`): every nn.Linear inside the spatial and temporal transformers — the attention's
q/k/v projections, the GEGLU feed-forward, the spatial proj_in/proj_out: most of the 4.8 TFLOP of GEMMs in a
standard UNet call — but the attention output projections (`KEEP_FP16`). Not the timestep-embedding layers (a few
rows per call), not the temporal transformers' proj_in / proj_out (stored as Conv1d, applied with F.linear), and no
convolution unless asked (`convs`, opt-in: the 3×3 ones as `Fp8Conv3x3`, t2v.kernels.conv3x3's Triton kernel; on an
H100 the standard video 0.5% and 24×576×320 1.4% faster than fp8 Linear layers alone, perf-notes row 67: the kernel
beats cuDNN's fp16 convolutions, but the kernels that make its e4m3 input grow by most of that). Everything else runs
in float16.

`Fp8Linear.forward` and `Fp8Conv3x3.forward` need a CUDA GPU with fp8 tensor cores (`unavailable` says why not; the
convolution also runs in Triton's interpreter); `reference` is the same quantised operands' products summed exactly
in fp32 on any device (what the tests and the benchmark compare the GPU product with; the convolution kernel's sums
on Hopper are looser, t2v.kernels.conv3x3 says by how much).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import nn

from t2v.errors import UnsupportedDevice
from t2v.kernels import conv3x3
from t2v.unet import SpatialTransformer, TemporalTransformer

log = logging.getLogger(__name__)

E4M3 = getattr(torch, "float8_e4m3fn", None)
E4M3_MAX = 448.0  # largest finite e4m3fn value
SCALINGS = ("row", "tensor", "static")
KEEP_FP16 = ("to_out.0",)  # the attention output projections: their inputs come from attention kernels, which
#                            write no e4m3, so each would need a cast pass of its own, costing more than the fp8
#                            GEMM saves (perf-notes row 66)
DEFAULT_SCALING = "static"
HEADROOM = 8.0  # a static scale covers 8 × the largest input magnitude its calibration saw
MIN_CAPABILITY = (8, 9)  # Ada; Hopper is 9.0
ROWWISE_OUT = torch.bfloat16  # row-wise scaled products come out in bf16 (torch's _scaled_mm accepts no other
#                               output there in most versions), then are cast to the activations' dtype
CONVS = False  # the default of assemble's fp8_convs and quantize_unet's convs: whether the 3×3 convolutions run in
#               e4m3 too (Fp8Conv3x3; opt-in, perf-notes row 67)
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
    """(e4m3 values, fp32 scales) with x ≈ values · scales: one scale per row ([rows, 1]) or per tensor ([]; the
    "static" scaling's weights too)."""
    if scaling not in SCALINGS:
        raise ValueError(f"scaling {scaling!r}: use one of {', '.join(SCALINGS)}")
    x = x.float()
    amax = x.abs().amax(dim=-1, keepdim=True) if scaling == "row" else x.abs().amax()
    return cast(x, (amax / E4M3_MAX).clamp(min=torch.finfo(torch.float32).tiny))  # an all-zero row keeps scale > 0


def cast(x: torch.Tensor, scale: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(x / scale in e4m3, clamped to its finite range; scale): the pointwise half of quantising."""
    return (x.float() / scale).clamp(-E4M3_MAX, E4M3_MAX).to(E4M3), scale


def dequantize(values: torch.Tensor, scale: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """values · scale in `dtype`."""
    return (values.float() * scale).to(dtype)


class Fp8Layer(nn.Module):
    """What the fp8 layers share: an e4m3 weight with its fp32 scale(s), a bias in the activations' dtype, and for
    "static" scaling the largest input magnitude a calibration saw (`input_amax`, a buffer) and the input scale made
    of it (`input_scale`: stored, not multiplied out at each call, where it was one more kernel launch per layer in
    the CUDA graph, perf-notes row 66). Until one has been calibrated (`calibrated`) a static layer scales its input
    per call as "tensor" does, and while `observing` it also records each input's magnitude. The fp8 weight and its
    scales are buffers: no gradients, and `.to(dtype)` leaves them as they are."""

    def __init__(self, weight: torch.Tensor, scale: torch.Tensor, bias: torch.Tensor | None, scaling: str,
                 input_amax: torch.Tensor | None = None):
        super().__init__()
        self.scaling = scaling
        self.register_buffer("weight", weight)
        self.register_buffer("scale", scale)
        self.register_buffer("bias", bias)
        static = scaling == "static"
        self.register_buffer("input_amax", None if not static else
                             torch.zeros((), device=weight.device) if input_amax is None else input_amax)
        self.register_buffer("input_scale", None if not static else self.input_amax * (HEADROOM / E4M3_MAX))
        self.calibrated = static and input_amax is not None
        self.observing = False

    def calibrate(self) -> None:
        """Keep what observing saw as the fixed input scale (none seen: stays uncalibrated, per-call scales)."""
        with torch.inference_mode(False):  # plain tensors, even where a caller's inference_mode made them
            self.input_amax = self.input_amax.clone()
            self.input_scale = self.input_amax * (HEADROOM / E4M3_MAX)
        self.calibrated = bool(self.input_amax > 0)

    def _load_from_state_dict(self, *args, **kwargs) -> None:
        """A static layer loaded with a calibration's buffers is calibrated."""
        super()._load_from_state_dict(*args, **kwargs)
        if self.scaling == "static":
            self.calibrate()

    def quantize_input(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x in e4m3 and its scale, by this layer's scaling (recording x while observing); row scaling: one scale
        per row of x's last dimension."""
        if self.observing:
            self.input_amax = torch.maximum(self.input_amax, x.detach().abs().amax().float())
        if self.calibrated and not self.observing:
            return cast(x, self.input_scale)
        return quantize(x, "row" if self.scaling == "row" else "tensor")

    def _apply(self, fn, recurse: bool = True):
        """Device moves only for the e4m3 weight and its fp32 scales: a `.half()` or `.to(float16)` of the whole
        UNet would otherwise dequantise the one and round the other (the bias follows like any tensor)."""
        device = fn(torch.empty(0, device=self.weight.device)).device
        self.weight, self.scale = self.weight.to(device), self.scale.to(device)
        if self.input_amax is not None:
            self.input_amax, self.input_scale = self.input_amax.to(device), self.input_scale.to(device)
        if self.bias is not None:
            self.bias = fn(self.bias)
        return self


class Fp8Linear(Fp8Layer):
    """y = x Wᵀ + b with W in e4m3 and x quantised at each call (`SCALINGS`); torch._scaled_mm.

    `rows` picks a part of the output (its weight rows, scales and bias): the fused attention's q of a shared q/k/v
    weight.
    """

    def __init__(self, weight: torch.Tensor, scale: torch.Tensor, bias: torch.Tensor | None, scaling: str,
                 input_amax: torch.Tensor | None = None):
        super().__init__(weight, scale, bias, scaling, input_amax)
        self.out_features, self.in_features = weight.shape

    @classmethod
    def from_linear(cls, linear: nn.Linear, scaling: str = "row") -> Fp8Linear:
        """The quantised copy of `linear` (its bias stays in its dtype)."""
        weight, scale = quantize(linear.weight.detach(), scaling)
        return cls(weight, scale, None if linear.bias is None else linear.bias.detach(), scaling)

    @classmethod
    def cat(cls, parts: list[Fp8Linear]) -> Fp8Linear:
        """One layer whose output rows are the parts' in order (row scaling: no requantisation; a static one keeps
        the largest of the parts' calibrated input magnitudes, uncalibrated if any part is)."""
        first = parts[0]
        if any(p.scaling != first.scaling or p.in_features != first.in_features for p in parts):
            raise ValueError("only layers of one input size and one scaling stack")
        if first.scaling == "row":
            weight, scale = torch.cat([p.weight for p in parts]), torch.cat([p.scale for p in parts])
        else:  # one scale for all: requantise the stacked dequantised weight
            weight, scale = quantize(torch.cat([dequantize(p.weight, p.scale) for p in parts]), first.scaling)
        given = [p.bias for p in parts if p.bias is not None]
        bias = None if not given else torch.cat(
            [p.bias if p.bias is not None else given[0].new_zeros(p.out_features) for p in parts])
        calibrated = first.scaling == "static" and all(p.calibrated for p in parts)
        amax = torch.stack([p.input_amax for p in parts]).amax() if calibrated else None
        return cls(weight, scale, bias, first.scaling, amax)

    def _part(self, rows: slice) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        scale = self.scale[rows] if self.scaling == "row" else self.scale
        return self.weight[rows], scale, None if self.bias is None else self.bias[rows]

    def forward(self, x: torch.Tensor, rows: slice = slice(None)) -> torch.Tensor:
        if not x.is_cuda:
            raise UnsupportedDevice(f"fp8 Linear on {x.device}: {unavailable(x.device)}")
        values, x_scale = self.quantize_input(x.reshape(-1, self.in_features))
        out = self.product(values, x_scale, x.dtype, rows)
        return out.reshape(*x.shape[:-1], out.shape[-1])

    def product(self, values: torch.Tensor, x_scale: torch.Tensor, dtype: torch.dtype,
                rows: slice = slice(None)) -> torch.Tensor:
        """The layer's output [M, N] in `dtype` for an input already in e4m3, `values` [M, K] with its scale(s):
        `forward` after `quantize_input`, or a kernel that wrote this layer's input in e4m3 by its `input_scale`."""
        weight, w_scale, bias = self._part(rows)
        values = values.contiguous()  # the fp8 GEMM takes a row-major left operand only
        if self.scaling == "row":  # scales [M, 1] and [1, N]
            out = torch._scaled_mm(values, weight.t(), scale_a=x_scale, scale_b=w_scale.t(), out_dtype=ROWWISE_OUT)
            return out.to(dtype) if bias is None else (out + bias).to(dtype)
        return torch._scaled_mm(values, weight.t(), scale_a=x_scale, scale_b=w_scale, bias=bias, out_dtype=dtype)

    def reference(self, x: torch.Tensor, rows: slice = slice(None)) -> torch.Tensor:
        """`forward`'s arithmetic in fp32 on any device: the same quantised operands, exact products and sums."""
        values, x_scale = self.quantize_input(x.reshape(-1, self.in_features))
        out = self.product_reference(values, x_scale, torch.float32, rows)
        return out.reshape(*x.shape[:-1], out.shape[-1])

    def product_reference(self, values: torch.Tensor, x_scale: torch.Tensor, dtype: torch.dtype,
                          rows: slice = slice(None)) -> torch.Tensor:
        """`product`'s operands multiplied and summed exactly in fp32 on any device, then cast to `dtype`."""
        weight, w_scale, bias = self._part(rows)
        out = F.linear(dequantize(values, x_scale), dequantize(weight, w_scale), None if bias is None else bias.float())
        return out.to(dtype)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, scaling={self.scaling}"


class Fp8Conv3x3(Fp8Layer):
    """A 3×3 convolution (stride 1, padding 1) with its weight in e4m3 (one scale) and its input cast to e4m3 at
    each call ("static" scaling: the calibrated fixed scale; until calibrated, one found per call), run by
    t2v.kernels.conv3x3's implicit-GEMM kernel: channels-last in and out, the output in the input's dtype. The
    input's cast and channels-last layout are pointwise steps inductor folds into the GroupNorm+SiLU that made it."""

    def __init__(self, weight: torch.Tensor, scale: torch.Tensor, bias: torch.Tensor | None,
                 input_amax: torch.Tensor | None = None):
        super().__init__(weight, scale, bias, "static", input_amax)
        self.out_channels, taps = weight.shape
        self.in_channels = taps // 9
        # the calibrated scales' product, the kernel's one scale: stored, not multiplied at each call
        self.register_buffer("product_scale", self.input_scale * scale, persistent=False)

    def calibrate(self) -> None:
        super().calibrate()
        with torch.inference_mode(False):  # a plain tensor, as the base class's
            self.product_scale = self.input_scale * self.scale

    def _apply(self, fn, recurse: bool = True):
        super()._apply(fn, recurse)
        self.product_scale = self.product_scale.to(self.weight.device)
        return self

    @classmethod
    def from_conv(cls, conv: nn.Conv2d) -> Fp8Conv3x3:
        """The quantised copy of `conv` (its bias stays in its dtype)."""
        weight, scale = quantize(conv3x3.weight_rows(conv.weight.detach()), "tensor")
        return cls(weight, scale, None if conv.bias is None else conv.bias.detach())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not x.is_cuda and not conv3x3.INTERPRETED:
            raise UnsupportedDevice(f"fp8 convolution on {x.device}: {unavailable(x.device)}")
        values, x_scale = self.quantize_input(x)
        scale = self.product_scale if self.calibrated and not self.observing else x_scale * self.scale
        values = values.contiguous(memory_format=torch.channels_last)
        return conv3x3.conv3x3_op(values, self.weight, scale, self.bias, x.dtype)

    def reference(self, x: torch.Tensor) -> torch.Tensor:
        """`forward`'s quantised operands on any device, their products summed exactly in fp32."""
        values, x_scale = self.quantize_input(x)
        return conv3x3.reference(values, self.weight, x_scale * self.scale, self.bias)

    def extra_repr(self) -> str:
        return f"{self.in_channels}, {self.out_channels}, kernel_size=(3, 3), padding=(1, 1)"


@contextmanager
def observing(module: nn.Module) -> Iterator[list[Fp8Layer]]:
    """Calibrate the static fp8 layers in `module` by what runs inside the block: each records the largest input
    magnitude it sees (from zero), and keeps it as its fixed scale's measure when the block ends. A layer the block
    never ran stays uncalibrated (per-call scales), and is named in a warning."""
    named = {name: m for name, m in module.named_modules() if isinstance(m, Fp8Layer) and m.scaling == "static"}
    for layer in named.values():
        layer.input_amax, layer.observing = torch.zeros_like(layer.input_amax), True
    try:
        yield list(named.values())
    finally:
        for layer in named.values():
            layer.observing = False
            layer.calibrate()
    unseen = [name for name, layer in named.items() if not layer.calibrated]
    if unseen:
        log.warning("fp8: %d static layer(s) saw no input while calibrating, and scale per call (%s)", len(unseen),
                    ", ".join(unseen[:3]))


def eligible(linear: nn.Module) -> bool:
    """An nn.Linear whose weight sizes the fp8 GEMM takes."""
    return (isinstance(linear, nn.Linear) and linear.in_features % MULTIPLE == 0
            and linear.out_features % MULTIPLE == 0)


def eligible_conv(conv: nn.Module) -> bool:
    """A 3×3, stride-1, padding-1 nn.Conv2d whose channel counts t2v.kernels.conv3x3 takes (multiples of 64 in,
    of 16 out): the UNet's ResBlock and Upsample convolutions; not its first and last (4 channels)."""
    return (isinstance(conv, nn.Conv2d) and conv.kernel_size == (3, 3) and conv.stride == (1, 1)
            and conv.padding == (1, 1) and conv.padding_mode == "zeros" and conv.dilation == (1, 1) and conv.groups == 1
            and conv.in_channels % 64 == 0 and conv.out_channels % MULTIPLE == 0)


def quantize_unet(unet: nn.Module, scaling: str = DEFAULT_SCALING, keep: tuple[str, ...] = KEEP_FP16,
                  convs: bool = CONVS) -> list[str]:
    """Swap every eligible nn.Linear inside the UNet's spatial and temporal transformers for an Fp8Linear, in
    place, but those whose names end with one of `keep` (KEEP_FP16 by default), and with `convs` every
    `eligible_conv` for an Fp8Conv3x3 (static scales whatever `scaling` says: calibrated, or per call until then);
    returns the swapped layers' names."""
    swapped = []
    for prefix, block in unet.named_modules():
        if not isinstance(block, SpatialTransformer | TemporalTransformer):
            continue
        for name, module in list(block.named_modules()):
            for child_name, child in list(module.named_children()):
                if eligible(child) and not f"{name}.{child_name}".endswith(keep):
                    setattr(module, child_name, Fp8Linear.from_linear(child, scaling))
                    swapped.append(".".join(filter(None, (prefix, name, child_name))))
    linears = len(swapped)
    if convs:
        for name, module in list(unet.named_modules()):
            for child_name, child in list(module.named_children()):
                if eligible_conv(child):
                    setattr(module, child_name, Fp8Conv3x3.from_conv(child))
                    swapped.append(".".join(filter(None, (name, child_name))))
    log.info("fp8 (%s scales): %d Linear layers of the UNet's transformers and %d 3×3 convolutions quantised to "
             "e4m3", scaling, linears, len(swapped) - linears)
    return swapped
