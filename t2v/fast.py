"""The fast inference path: fused projections, 2-D temporal convolutions, channels-last, torch.compile, CUDA graphs.

`optimize(pipe)` rewrites the loaded UNet in place into modules that compute the same function (equal to the
plain modules within fp32 rounding, tests/t2v/test_fast.py) with fewer kernels and layout copies, then wraps it
in `FastUNet`, which compiles it (inductor, static shapes) and replays one CUDA graph per input shape. The plain
path is untouched: a pipeline that is never optimised runs exactly the code it always did.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from t2v.unet import CrossAttention, TemporalConvBlock

log = logging.getLogger(__name__)


class FusedAttention(nn.Module):
    """CrossAttention with q/k/v (or k/v for text) in one GEMM and SDPA on strided views: no head-split copies."""

    def __init__(self, attn: CrossAttention):
        super().__init__()
        self.heads = attn.heads
        self.inner = attn.to_q.out_features
        kv = [attn.to_k.weight, attn.to_v.weight]
        self.shared = attn.to_k.in_features == attn.to_q.in_features  # one [3·inner, dim] weight serves both uses
        weights = [torch.cat([attn.to_q.weight, *kv])] if self.shared else [attn.to_q.weight, torch.cat(kv)]
        self.weights = nn.ParameterList([nn.Parameter(w, requires_grad=False) for w in weights])
        self.to_out = attn.to_out

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        if context is None:
            qkv = F.linear(x, self.weights[0]).unflatten(-1, (3, self.heads, -1))  # [b, n, 3, h, d]
            q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # each [b, h, n, d], strided views
        else:
            w_q, w_kv = (self.weights[0][:self.inner], self.weights[0][self.inner:]) if self.shared else self.weights
            q = F.linear(x, w_q).unflatten(-1, (self.heads, -1)).transpose(1, 2)
            k, v = F.linear(context, w_kv).unflatten(-1, (2, self.heads, -1)).permute(2, 0, 3, 1, 4).unbind(0)
        out = F.scaled_dot_product_attention(q, k, v)  # [b, h, n, d] (a multiply-reduce form lost: perf-notes)
        return self.to_out(out.transpose(1, 2).flatten(2))


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


def fuse(unet: nn.Module) -> nn.Module:
    """Replace attention and temporal-conv modules in place by their fused equivalents; returns the UNet."""
    for module in list(unet.modules()):
        for name, child in list(module.named_children()):
            if isinstance(child, CrossAttention):
                setattr(module, name, FusedAttention(child))
            elif isinstance(child, TemporalConvBlock):
                setattr(module, name, TemporalConv2dBlock(child))
    return unet


def channels_last(module: nn.Module) -> nn.Module:
    """Store every 2-D convolution weight channels-last (NHWC), so cuDNN and inductor need no layout conversions."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            m.weight.data = m.weight.data.contiguous(memory_format=torch.channels_last)
    return module


@dataclass
class _Graph:
    graph: torch.cuda.CUDAGraph
    inputs: tuple[torch.Tensor, ...]
    output: torch.Tensor


class CUDAGraphed:
    """Capture `fn(*inputs)` once per input shape (torch.cuda.CUDAGraph); later calls copy inputs in and replay.

    All captures share one memory pool; the output is cloned after each replay, so no caller ever holds memory
    that another graph's replay may overwrite.
    """

    def __init__(self, fn, warmup: int = 2):
        self.fn, self.warmup = fn, warmup
        self.graphs: dict[tuple, _Graph] = {}
        self.pool = None

    def __call__(self, *inputs: torch.Tensor) -> torch.Tensor:
        key = tuple((tuple(t.shape), t.dtype, t.device) for t in inputs)
        entry = self.graphs.get(key) or self._capture(key, inputs)
        for static, value in zip(entry.inputs, inputs, strict=True):
            static.copy_(value)
        entry.graph.replay()
        return entry.output.clone()

    def _capture(self, key: tuple, inputs: tuple[torch.Tensor, ...]) -> _Graph:
        started = time.perf_counter()
        static = tuple(t.clone() for t in inputs)
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(self.warmup):  # compiles (first shape) and autotunes outside the capture
                self.fn(*static)
        torch.cuda.current_stream().wait_stream(side)
        self.pool = self.pool or torch.cuda.graph_pool_handle()
        graph = torch.cuda.CUDAGraph()
        # thread_local: only this thread's unsafe CUDA calls are refused during the capture; another GPU worker
        # thread of the process (one per GPU) goes on allocating and synchronising its own device meanwhile
        with torch.cuda.graph(graph, pool=self.pool, capture_error_mode="thread_local"):
            output = self.fn(*static)
        self.graphs[key] = _Graph(graph, static, output)
        log.info("captured a CUDA graph for %s in %.1f s", [k[0] for k in key], time.perf_counter() - started)
        return self.graphs[key]


class FastUNet(nn.Module):
    """The UNet behind torch.compile (static shapes, compiled once per shape and process) and per-shape CUDA graphs."""

    def __init__(self, unet: nn.Module, compile: bool = True, cuda_graphs: bool = True,
                 backend: str = "inductor", mode: str | None = None):
        super().__init__()
        self.unet = unet
        self.cfg = unet.cfg
        self.run = torch.compile(unet, backend=backend, mode=mode, fullgraph=True, dynamic=False) if compile else unet
        self.graphed = CUDAGraphed(self.run) if cuda_graphs else None

    @torch.no_grad()
    def forward(self, x: torch.Tensor, t: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        if self.graphed is not None and x.is_cuda:
            try:
                return self.graphed(x, t, context)
            except RuntimeError:  # a capture that fails must not fail the job: run without graphs from now on
                log.exception("CUDA graph capture failed; running the UNet without CUDA graphs")
                self.graphed = None
        return self.run(x, t, context)

    def warmup(self, batch: int, frames: int, height: int, width: int) -> float:
        """Compile and capture for one shape now (pixel sizes; batch counts videos, so 2·batch with guidance)."""
        p = next(self.unet.parameters())
        started = time.perf_counter()
        x = torch.randn(2 * batch, self.cfg.in_dim, frames, height // 8, width // 8, device=p.device, dtype=p.dtype)
        t = torch.full((2 * batch,), 999, device=p.device, dtype=torch.long)
        self(x, t, torch.randn(2 * batch, 77, self.cfg.context_dim, device=p.device, dtype=p.dtype))
        return time.perf_counter() - started


def configure_inductor(cache_dir: str | None = None) -> None:
    """Inductor settings for this UNet; a persistent `cache_dir` lets later processes reuse compiled kernels."""
    import torch._inductor.config as inductor

    if cache_dir:
        os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", cache_dir)
    inductor.conv_1x1_as_mm = True  # the 1×1 skip convolutions as plain GEMMs
    torch.backends.cudnn.benchmark = True  # fixed shapes: let cuDNN time its algorithms once (VAE, eager convs)


def offload(pipe) -> None:
    """Keep the text encoder and the VAE on the CPU between uses (for GPUs short of memory)."""
    for module in (pipe.text_encoder, pipe.vae):
        if module not in pipe.offloaded:
            module.to("cpu")
            pipe.offloaded.append(module)


def optimize(pipe, *, fused: bool = True, layout: bool = True, compile: bool = True, cuda_graphs: bool = True,
             backend: str = "inductor", offload_modules: bool = False, vae_chunk: int | None = 4,
             cache_dir: str | None = None) -> None:
    """Switch `pipe` to the fast path; each option can be turned off to measure its share.

    `vae_chunk` 4 (plain path: 8) halves the decoder's activations, which set the memory peak of a 16×256² video.
    """
    unet = pipe.unet.unet if isinstance(pipe.unet, FastUNet) else pipe.unet
    if fused:
        fuse(unet)
    if layout:
        channels_last(unet)
    on_gpu = pipe.device.type == "cuda"
    if compile or (cuda_graphs and on_gpu):
        configure_inductor(cache_dir)
        pipe.unet = FastUNet(unet, compile=compile, cuda_graphs=cuda_graphs and on_gpu, backend=backend)
    if offload_modules:
        offload(pipe)
    if vae_chunk is not None:
        pipe.vae_chunk = vae_chunk
    log.info("fast path: fused=%s channels_last=%s compile=%s cuda_graphs=%s offload=%s", fused, layout, compile,
             cuda_graphs and on_gpu, offload_modules)
