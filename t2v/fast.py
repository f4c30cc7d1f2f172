"""The fast inference path: fused projections, 2-D temporal convolutions, channels-last, compilation, CUDA graphs.

`optimize(pipe)` rewrites the loaded UNet in place into modules that compute the same function (equal to the
plain modules within fp32 rounding, tests/t2v/test_fast.py) with fewer kernels and layout copies, then wraps it
in `t2v.compiled.FastUNet`, which serves every shape at once (eager until a compiled version is ready) and replays
one CUDA graph per shape. The plain path is untouched: a pipeline never optimised runs the code it always did.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Callable
from functools import partial
from pathlib import Path

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from t2v.compiled import (
    MAX_SHAPES,
    CompiledDecoder,
    FastUNet,
    GpuLock,
    Graphed,
    JitCompiler,
    Shape,
    compile_in_background,
)
from t2v.kernels import geglu, temporal_attention
from t2v.kernels.fp8 import E4M3, Fp8Linear
from t2v.unet import CrossAttention, FeedForward, TemporalConvBlock, TemporalTransformer

log = logging.getLogger(__name__)


Attend = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]  # SDPA's (q, k, v) → out
# optimize(autotune=True): inductor times Triton templates against cuBLAS/cuDNN for each GEMM and convolution of a
# compiled shape and keeps the fastest (and more configs for its fused kernels); compiles take several times longer
AUTOTUNE = {"max_autotune": True, "max_autotune_gemm_backends": "ATEN,TRITON",
            "max_autotune_conv_backends": "ATEN,TRITON"}
FEEDFORWARD = ("auto", "plain", "triton")  # optimize(feedforward=…): the first GEMM and GEGLU gate as one kernel,
# t2v.kernels.geglu's, where the device runs it (auto: the fp8 feed-forwards on CUDA GPUs; triton: fp16's too, and in
# Triton's interpreter), or cuBLAS then the gate pass
FP16, FP8 = "fp16", "fp8"  # the feed-forwards FusedFeedForward may run through the kernel: fp16 activations, fp8 layers
GROUPNORM = ("blocks", "library")  # optimize(groupnorm=…): the UNet's GroupNorms as RowsGroupNorm, statistics read
# along blocks of whole pixels of channels-last activations ("blocks", the default), or as torch's
TEMPORAL_ATTENTION = ("auto", "sdpa", "triton")  # optimize(temporal_attention=…): t2v.kernels' Triton kernel where the
# device runs it (auto: silently SDPA elsewhere; triton: with a warning), or SDPA


class RowsLinear(nn.Linear):
    """A bias-free linear map whose output rows can be asked for in part: q alone of a stacked q/k/v weight."""

    def __init__(self, weight: torch.Tensor):
        super().__init__(weight.shape[1], weight.shape[0], bias=False, device="meta")
        self.weight = nn.Parameter(weight, requires_grad=False)

    def forward(self, x: torch.Tensor, rows: slice = slice(None)) -> torch.Tensor:
        return F.linear(x, self.weight[rows])


def stack_rows(layers: list[nn.Module]) -> nn.Module:
    """One bias-free linear map whose output rows are the layers' in order (fp8 layers stack as fp8)."""
    fp8 = [isinstance(layer, Fp8Linear) for layer in layers]
    if all(fp8):
        return Fp8Linear.cat(layers)
    if any(fp8):
        raise TypeError("q, k and v projections must be all fp8 or all not to be stacked")
    return RowsLinear(torch.cat([layer.weight for layer in layers]))


class FusedAttention(nn.Module):
    """CrossAttention with q/k/v (or k/v for text) in one GEMM and attention on strided views: no head-split copies.

    `attend` computes SDPA (q, k, v each [b, h, n, d]); the temporal transformers may take the Triton kernel.
    """

    def __init__(self, attn: CrossAttention, attend: Attend = F.scaled_dot_product_attention):
        super().__init__()
        self.heads = attn.heads
        self.inner = attn.to_q.out_features
        self.attend = attend
        linears = [attn.to_q, attn.to_k, attn.to_v]
        self.shared = attn.to_k.in_features == attn.to_q.in_features  # one [3·inner, dim] weight serves both uses
        groups = [linears] if self.shared else [linears[:1], linears[1:]]
        self.projections = nn.ModuleList([stack_rows(group) for group in groups])
        self.to_out = attn.to_out

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        if context is None:
            qkv = self.projections[0](x).unflatten(-1, (3, self.heads, -1))  # [b, n, 3, h, d]
            q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # each [b, h, n, d], strided views
        else:
            if self.shared:
                q = self.projections[0](x, slice(0, self.inner))
                kv = self.projections[0](context, slice(self.inner, None))
            else:
                q, kv = self.projections[0](x), self.projections[1](context)
            q = q.unflatten(-1, (self.heads, -1)).transpose(1, 2)
            k, v = kv.unflatten(-1, (2, self.heads, -1)).permute(2, 0, 3, 1, 4).unbind(0)
        out = self.attend(q, k, v)  # [b, h, n, d] (a multiply-reduce form lost: perf-notes row 6)
        return self.to_out(out.transpose(1, 2).flatten(2))

    def plain_weights(self) -> dict[str, torch.Tensor]:
        """CrossAttention's weights by their keys, as views of the fused ones (writing into one writes here)."""
        weights = [projection.weight for projection in self.projections]
        q, k, v = weights[0].split(self.inner) if self.shared else (weights[0], *weights[1].split(self.inner))
        return {"to_q.weight": q, "to_k.weight": k, "to_v.weight": v,
                **{f"to_out.{name}": tensor for name, tensor in self.to_out.state_dict(keep_vars=True).items()}}


class TemporalConv2dBlock(nn.Module):
    """TemporalConvBlock with each 3×1×1 Conv3d as a 3×1 Conv2d over [b, c, f, h·w]: a free view in channels-last."""

    def __init__(self, block: TemporalConvBlock):
        super().__init__()
        self.layers = nn.ModuleList()
        for seq in (block.conv1, block.conv2, block.conv3, block.conv4):
            conv3d = seq[-1]
            conv = nn.Conv2d(conv3d.in_channels, conv3d.out_channels, (3, 1), padding=(1, 0),
                             device=conv3d.weight.device, dtype=conv3d.weight.dtype)
            conv.weight = nn.Parameter(conv3d.weight.detach().squeeze(-1), requires_grad=False)  # shares storage
            conv.bias = conv3d.bias
            self.layers.append(nn.Sequential(seq[0], nn.SiLU(), conv))  # GroupNorm, SiLU, conv; dropout is 0

    def forward(self, x: torch.Tensor, frames: int) -> torch.Tensor:
        h = x.shape[-2]
        y = rearrange(x, "(b f) c h w -> b c f (h w)", f=frames)
        for layer in self.layers:
            y = layer(y)
        return x + rearrange(y, "b c f (h w) -> (b f) c h w", h=h)

    def plain_weights(self) -> dict[str, torch.Tensor]:
        """TemporalConvBlock's weights by their keys (conv1.2, conv2.3 …), as views of these 2-D ones."""
        out = {}
        for i, (norm, _, conv) in enumerate(self.layers, start=1):
            at = 2 if i == 1 else 3  # conv1 has no dropout before its convolution
            out |= {f"conv{i}.0.weight": norm.weight, f"conv{i}.0.bias": norm.bias,
                    f"conv{i}.{at}.weight": conv.weight.unsqueeze(-1), f"conv{i}.{at}.bias": conv.bias}
        return out


class RowsGroupNorm(nn.GroupNorm):
    """nn.GroupNorm (the same parameters, shared) whose statistics are per-channel sums over blocks of whole pixels of
    channels-last memory, the order the UNet's activations lie in, then one pointwise pass.

    torch's kernel for a channels-last input reads each group's channels apart: 10 of every pixel's 320, 20 bytes in
    640, ≈ 0.42 ms on a 24×576×320 activation where this form takes 0.16 (docs/perf-notes.md row 80). Here the first
    pass sums each channel over `blocks` blocks of rows (each read whole pixels), then the blocks and each group's
    channels are summed. The sums are of each value less its channel's value at the first pixel, in fp32, so a group
    whose mean is far from zero against its spread loses no precision (E[x²] − E[x]² alone would: docs/perf-notes.md
    row 81); any layout is right, channels-last is the fast one."""

    def __init__(self, norm: nn.GroupNorm, blocks: int = 64):
        super().__init__(norm.num_groups, norm.num_channels, norm.eps, affine=norm.affine)
        self.weight, self.bias = norm.weight, norm.bias  # the same Parameters: weights and LoRA see one tensor
        self.blocks = blocks

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, *rest = x.shape
        groups, per = self.num_groups, c // self.num_groups
        rows = x.movedim(1, -1).reshape(n, -1, c).float()  # a view when x is channels-last
        r = rows.shape[1]
        k = math.gcd(r, self.blocks)
        pilot = rows[:, :1, :]  # [n, 1, c]: each channel's first value, near its mean against its spread
        part = (rows - pilot).view(n, k, r // k, c)
        sums, squares = part.sum(dim=2).sum(dim=1), (part * part).sum(dim=2).sum(dim=1)  # [n, c]
        pilot = pilot[:, 0, :]
        mean = (sums / r + pilot).view(n, groups, per).mean(dim=2)  # [n, groups]
        # each channel's squared distance from its group's mean: Σ (x − m)² = Σ y² − 2 d Σ y + r d², y = x − pilot,
        # d = m − pilot
        d = mean.repeat_interleave(per, dim=1) - pilot
        var = (squares - 2 * d * sums + r * d * d).view(n, groups, per).sum(dim=2) / (r * per)
        scale = torch.rsqrt(var.clamp_min(0) + self.eps).repeat_interleave(per, dim=1)  # [n, c]
        shift = -mean.repeat_interleave(per, dim=1) * scale
        if self.weight is not None:
            scale, shift = scale * self.weight.float(), shift * self.weight.float() + self.bias.float()
        y = rows * scale[:, None, :] + shift[:, None, :]
        return y.to(x.dtype).view(n, *rest, c).movedim(-1, 1)


def rows_groupnorms(unet: nn.Module, kind: str) -> nn.Module:
    """Replace each nn.GroupNorm of `unet` in place by a RowsGroupNorm sharing its parameters ("blocks"); "library"
    keeps (or puts back) torch's. Returns the UNet."""
    for module in list(unet.modules()):
        for name, child in list(module.named_children()):
            if not isinstance(child, nn.GroupNorm):
                continue
            plain = child
            if isinstance(child, RowsGroupNorm):
                plain = nn.GroupNorm(child.num_groups, child.num_channels, child.eps, affine=child.affine)
                plain.weight, plain.bias = child.weight, child.bias
            setattr(module, name, plain if kind == "library" else RowsGroupNorm(plain))
    return unet


class FusedFeedForward(nn.Module):
    """FeedForward whose first GEMM and GEGLU gate run as t2v.kernels.geglu's one kernel: the gated hidden activation
    is written once, in fp16, or with fp8 layers straight in e4m3 by the second layer's static input scale.
    `kernel` names the feed-forwards that take it (FP16: fp16 activations through fp16 layers; FP8: fp8 layers).
    Its layers stay where FeedForward keeps them (`net.0.proj`, `net.2`): state dicts, t2v.lora's fusing and fp8
    calibration see the plain module's keys and tensors. What the kernel does not take runs FeedForward's own way:
    fp32 and bf16 activations, fp8 layers that scale per call (not "static", not calibrated yet, or observing a
    calibration render), and the forms `kernel` does not name."""

    def __init__(self, ff: FeedForward, kernel: frozenset[str] = frozenset((FP16, FP8))):
        super().__init__()
        self.net = ff.net
        self.kernel = frozenset(kernel)
        self.fits = geglu.fits(ff.net[0].proj.in_features, 64)  # the kernel's K steps are 64 channels or 128
        self.register_buffer("one", torch.ones((), device=ff.net[0].proj.weight.device), persistent=False)

    @staticmethod
    def _static(layer: nn.Module) -> bool:
        return isinstance(layer, Fp8Linear) and layer.scaling == "static" and layer.calibrated and not layer.observing

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        proj, out = self.net[0].proj, self.net[2]
        if not (self.fits and (FP8 if isinstance(proj, Fp8Linear) else FP16) in self.kernel):
            return self.net(x)
        if isinstance(proj, Fp8Linear):
            if not (self._static(proj) and (self._static(out) or not isinstance(out, Fp8Linear))):
                return self.net(x)
            values, x_scale = proj.quantize_input(x)
            if isinstance(out, Fp8Linear):  # the hidden activation as the second layer's e4m3 input
                hidden = geglu.geglu_op(values, proj.weight, x_scale, proj.scale, proj.bias, E4M3, out.input_scale)
                y = out.product(hidden.reshape(-1, hidden.shape[-1]), out.input_scale, x.dtype)
                return y.reshape(*x.shape[:-1], y.shape[-1])
            return out(geglu.geglu_op(values, proj.weight, x_scale, proj.scale, proj.bias, x.dtype, None))
        if x.dtype != torch.float16:  # bf16 dots are not checked here (Triton's interpreter computes them wrong)
            return self.net(x)
        return out(geglu.geglu_op(x, proj.weight, self.one, self.one, proj.bias, x.dtype, None))


def live_weights(unet: nn.Module) -> dict[str, torch.Tensor]:
    """Every tensor of the plain UNet's state dict, by its plain key, as a view of the one the UNet computes with
    (optimised or not): writing into a view changes the network in place, so compiled functions and CUDA graphs,
    which read the parameters where they are, stay valid (t2v.lora fuses styles this way)."""
    unet = unet.unet if isinstance(unet, FastUNet) else unet
    views, rewritten = {}, []
    for name, module in unet.named_modules():
        if isinstance(module, FusedAttention | TemporalConv2dBlock):
            views |= {f"{name}.{key}": tensor for key, tensor in module.plain_weights().items()}
            rewritten.append(f"{name}.")
    for key, tensor in unet.state_dict(keep_vars=True).items():
        if not key.startswith(tuple(rewritten)):
            views[key] = tensor
    return views


def fuse(unet: nn.Module, temporal_attend: Attend = F.scaled_dot_product_attention,
         feedforward: frozenset[str] = frozenset()) -> nn.Module:
    """Replace attention and temporal-conv modules in place by their fused equivalents; returns the UNet.

    The temporal transformers' attention computes with `temporal_attend` (set again on a UNet fused before); the
    transformers' feed-forwards of the forms `feedforward` names (FP16, FP8) run t2v.kernels.geglu's kernel
    (FusedFeedForward; set again on a UNet fused before)."""
    temporal = {id(m) for block in unet.modules() if isinstance(block, TemporalTransformer) for m in block.modules()}
    for module in list(unet.modules()):
        for name, child in list(module.named_children()):
            if isinstance(child, CrossAttention):
                attend = temporal_attend if id(child) in temporal else F.scaled_dot_product_attention
                setattr(module, name, FusedAttention(child, attend))
            elif isinstance(child, TemporalConvBlock):
                setattr(module, name, TemporalConv2dBlock(child))
            elif isinstance(child, FusedAttention) and id(child) in temporal:
                child.attend = temporal_attend
            elif isinstance(child, FeedForward):
                setattr(module, name, FusedFeedForward(child, feedforward))
            elif isinstance(child, FusedFeedForward):
                child.kernel = frozenset(feedforward)
    return unet


def choose_temporal_attention(kind: str, device: torch.device) -> Attend:
    """The temporal transformers' attention: "sdpa"; "triton" (t2v.kernels.temporal_attention wherever it applies)
    where the device can run it, elsewhere SDPA with a warning naming why; "auto" (the default): on CUDA GPUs that
    run it the kernel for the problem sizes where it measured faster (from temporal_attention.MIN_PAIRS (problem,
    head) pairs; SDPA for the fewer), SDPA without a warning elsewhere."""
    if kind not in TEMPORAL_ATTENTION:
        raise ValueError(f"temporal_attention={kind!r}: use one of {', '.join(TEMPORAL_ATTENTION)}")
    if kind == "sdpa":
        return F.scaled_dot_product_attention
    reason = temporal_attention.unavailable(device)
    if kind == "auto" and reason is None and device.type != "cuda":
        reason = "auto uses the kernel on CUDA GPUs only"  # the CPU only runs it under Triton's interpreter
    if reason is not None:
        if kind == "triton":
            log.warning("temporal_attention='triton' is not used on %s (%s); the temporal attention stays on SDPA",
                        device, reason)
        return F.scaled_dot_product_attention
    if kind == "triton":
        return temporal_attention.temporal_attention
    return partial(temporal_attention.temporal_attention, min_pairs=temporal_attention.MIN_PAIRS)


def choose_feedforward(kind: str, device: torch.device) -> frozenset[str]:
    """The feed-forwards that run t2v.kernels.geglu's kernel (FusedFeedForward's FP16, FP8), by FEEDFORWARD: "plain"
    none; "triton" both where the device can run it (elsewhere none, with a warning naming why); "auto" (the default)
    the fp8 ones on CUDA GPUs that run it, silently none elsewhere. The fp8 feed-forwards gained in the video (the
    standard video 1.47 → 1.43 s, the batch of 16 −3.2% and −2.2 GiB on an H100: docs/perf-notes.md row 74); the fp16
    ones lost with the tiles of that run (1.566 → 1.604 s), so they wait for a run of the tiles chosen since."""
    if kind not in FEEDFORWARD:
        raise ValueError(f"feedforward={kind!r}: use one of {', '.join(FEEDFORWARD)}")
    if kind == "plain":
        return frozenset()
    reason = geglu.unavailable(device)
    if kind == "auto" and reason is None and device.type != "cuda":
        reason = "auto uses the kernel on CUDA GPUs only"  # the CPU only runs it under Triton's interpreter
    if reason is not None:
        if kind == "triton":
            log.warning("feedforward='triton' is not used on %s (%s); the feed-forwards stay on cuBLAS and the gate "
                        "pass", device, reason)
        return frozenset()
    return frozenset((FP16, FP8)) if kind == "triton" else frozenset((FP8,))


def channels_last(module: nn.Module) -> nn.Module:
    """Store every 2-D convolution weight channels-last (NHWC), so cuDNN and inductor need no layout conversions."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            m.weight.data = m.weight.data.contiguous(memory_format=torch.channels_last)
    return module


def configure_inductor(cache_dir: str | Path | None = None) -> None:
    """Inductor settings for this UNet; a persistent `cache_dir` lets later processes reuse compiled kernels (it
    replaces TORCHINDUCTOR_CACHE_DIR: importing open_clip, through timm, already sets that variable to inductor's
    default in /tmp, so a mere default here was never used, and a restarted bot compiled everything again)."""
    import torch._inductor.config as inductor

    if cache_dir:
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(Path(cache_dir).absolute())
    inductor.conv_1x1_as_mm = True  # the 1×1 skip convolutions as plain GEMMs
    torch.backends.cudnn.benchmark = True  # fixed shapes: let cuDNN time its algorithms once (VAE, eager convs)


def offload(pipe) -> None:
    """Keep the text encoder and the VAE on the CPU between uses (for GPUs short of memory)."""
    for module in (pipe.text_encoder, pipe.vae):
        if module not in pipe.offloaded:
            module.to("cpu")
            pipe.offloaded.append(module)


def warn_cpu_compile(backend: str) -> None:
    """Say what the fast path costs on the CPU, where it is allowed (tests, the bot's T2V_OPTIMIZE=on) but rarely
    pays: each new video shape compiles at its first generate (reported at about 90 s on 2 cores for tiny-random),
    which the plain path renders in seconds; there are no CUDA graphs to gain."""
    log.warning("optimize() on the CPU: each new video shape compiles (backend %s) at its first generate, which can "
                "take minutes on a few cores, while the plain path renders without compiling; pass compile=False, or "
                "leave the pipeline plain on the CPU", backend)


def optimize(pipe, *, fused: bool = True, layout: bool = True, compile: bool = True, cuda_graphs: bool = True,
             backend: str = "inductor", offload_modules: bool = False, temporal_attention: str = "auto",
             feedforward: str = "auto",
             vae_chunk: int | None = 4, cache_dir: str | Path | None = None, max_shapes: int = MAX_SHAPES,
             request_compile: Callable[[Shape], None] | None = None, compile_decoder: bool = True,
             autotune: bool = False, gpu_lock: GpuLock | None = None, groupnorm: str = "blocks") -> None:
    """Switch `pipe` to the fast path; each option can be turned off to measure its share.

    `request_compile(shape)`, when given, is told of each shape with no compiled function yet, so the caller can run
    `pipe.unet.compile_shape(shape)` off the rendering thread; without it a new shape compiles at its first call.
    With it the process is prepared for compiling beside rendering (t2v.compiled.compile_in_background, which turns
    dynamo's `error_on_nested_fx_trace` off for the process). A caller that compiles in another thread than it
    renders passes `gpu_lock`, a re-entrant lock for this GPU (t2v.compiled.GpuLock): CUDA graph captures and the
    compiles' GPU work then take turns under it. `cache_dir` keeps inductor's compiled kernels for later processes.
    `vae_chunk` 4 (plain path: 8) halves the decoder's activations, which set the memory peak of a 16×256² video.
    `temporal_attention` "auto" (the default) computes the temporal transformers' attention with t2v.kernels' Triton
    kernel on CUDA GPUs that run it (the standard video 1.61 s against SDPA's 1.70 on an H200: docs/perf-notes.md row
    18), SDPA elsewhere; it needs `fused` ("sdpa" does not). `feedforward` "auto" (the default) runs each transformer's
    first fp8 feed-forward GEMM and its GEGLU gate as t2v.kernels.geglu's one kernel on CUDA GPUs that run it
    (FusedFeedForward; `choose_feedforward` says why fp8's alone), "triton" the fp16 ones too, "plain" none: cuBLAS and
    inductor's gate pass; all but "plain" need `fused` ("auto" without it is "plain"). `autotune` lets inductor choose
    each GEMM's and convolution's kernel by timing Triton templates against the vendor libraries' when it compiles a
    UNet shape (AUTOTUNE; opt-in: 3–36 s for each of the standard shape's 70 GEMM and convolution nodes on an H200, and
    there the video came out slower than the default: 1.538 against 1.482 s with inductor's epilogue-fusion timing off,
    1.56 against 1.49 s with it on, as this leaves it; autotuning the GEMMs alone lost as much: docs/perf-notes.md rows
    30–34, 43 and 44; with `cache_dir` a shape's timings are paid once per machine; an autotuning compile times kernels
    on the GPU throughout, so with `gpu_lock` a new shape's CUDA graph capture waits for it). With `cuda_graphs` on a
    GPU the text encoder runs from CUDA graphs as well (one per prompt count; not with `offload_modules`).
    `groupnorm` "blocks" (the default) computes the UNet's GroupNorms as RowsGroupNorm, their statistics read along
    blocks of whole pixels of the channels-last activations (24×576×320 7.04 → 6.30 s on an H100, the standard video
    1.60 → 1.57 s: docs/perf-notes.md row 80); "library" as torch's.
    `compile_decoder` compiles the VAE decoder beside each UNet shape (t2v.compiled.CompiledDecoder; not with
    `offload_modules`, whose decoder changes device between uses).
    """
    unet = pipe.unet.unet if isinstance(pipe.unet, FastUNet) else pipe.unet
    if temporal_attention == "auto" and not fused:
        temporal_attention = "sdpa"  # the unfused modules call SDPA themselves
    if temporal_attention != "sdpa" and not fused:
        raise ValueError(f"temporal_attention={temporal_attention!r} needs fused=True (it serves the fused attention)")
    if feedforward == "auto" and not fused:
        feedforward = "plain"
    if feedforward != "plain" and not fused:
        raise ValueError(f"feedforward={feedforward!r} needs fused=True (it serves the fused modules)")
    if autotune and backend != "inductor":
        raise ValueError(f"autotune=True needs backend='inductor' (got {backend!r}): it sets inductor's options")
    if groupnorm not in GROUPNORM:
        raise ValueError(f"groupnorm={groupnorm!r}: use one of {', '.join(GROUPNORM)}")
    options = AUTOTUNE if autotune else None
    attend = choose_temporal_attention(temporal_attention, pipe.device)
    kernel_ff = choose_feedforward(feedforward, pipe.device)
    if fused:
        fuse(unet, attend, kernel_ff)
    rows_groupnorms(unet, groupnorm)
    if layout:
        channels_last(unet)
    on_gpu = pipe.device.type == "cuda"
    if compile and not on_gpu:
        warn_cpu_compile(backend)
    compiler = None
    if compile:
        configure_inductor(cache_dir)
        compiler = JitCompiler(backend, options, gpu_lock)
    if vae_chunk is not None:
        pipe.vae_chunk = vae_chunk
    decoder = None
    if compiler is not None and compile_decoder and not offload_modules:
        # the decoder compiles without autotuning: it is ≈ 2% of a standard video (29 ms), and autotuning its ≈ 20
        # convolution shapes would add minutes to each compile for well under 1% (docs/perf-notes.md row 34)
        decoder = CompiledDecoder(pipe.vae, pipe.vae_chunk, backend, 2 * max_shapes, gpu_lock)
    pipe.chunk_decoder = decoder
    # the text encoder from CUDA graphs too, but not offloaded: its weights would move between the graph's replays
    graphed_text = cuda_graphs and on_gpu and not offload_modules
    pipe.text_call = Graphed(pipe.text_encoder, max_shapes, gpu_lock) if graphed_text else None
    if compiler is not None and request_compile is not None:
        compile_in_background()  # the caller compiles in another thread than it renders
    if compiler is not None or (cuda_graphs and on_gpu):
        pipe.unet = FastUNet(unet, compiler, cuda_graphs and on_gpu, max_shapes, request_compile, decoder, gpu_lock)
    if offload_modules:
        offload(pipe)
    pipe.optimized = True
    log.info("fast path: fused=%s channels_last=%s compile=%s autotune=%s cuda_graphs=%s offload=%s "
             "compiled decoder=%s graphed text encoder=%s temporal attention=%s feed-forward kernel=%s groupnorm=%s",
             fused, layout,
             compile and backend, compile and autotune, cuda_graphs and on_gpu, offload_modules, decoder is not None,
             graphed_text, "sdpa" if attend is F.scaled_dot_product_attention else "triton",
             "+".join(sorted(kernel_ff)) or "plain", groupnorm)
