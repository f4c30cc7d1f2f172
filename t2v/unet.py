"""UNet3D of ModelScope text-to-video, ported from modelscope `video_synthesis/unet_sd.py` (UNetSD).

Attribute names follow the published checkpoint so `load_state_dict(strict=True)` works on
`text2video_pytorch_model.pth` directly, typo `temopral_conv` included. Attention uses PyTorch SDPA.
"""

from __future__ import annotations

from itertools import pairwise

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from t2v.config import UNetConfig


def timestep_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    """Sinusoidal embedding, [cos, sin] with frequencies 10000^(-i/half) (unet_sd.py `sinusoidal_embedding`)."""
    half = dim // 2
    t = t.float()
    freqs = torch.pow(10000, -torch.arange(half, device=t.device).to(t).div(half))
    args = torch.outer(t, freqs)  # [b, half]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=1)


class CrossAttention(nn.Module):
    """Multi-head attention with bias-free q/k/v projections; self-attention when no context is given."""

    def __init__(self, query_dim: int, context_dim: int | None, heads: int, dim_head: int):
        super().__init__()
        inner = heads * dim_head
        self.heads = heads
        self.to_q = nn.Linear(query_dim, inner, bias=False)
        self.to_k = nn.Linear(context_dim or query_dim, inner, bias=False)
        self.to_v = nn.Linear(context_dim or query_dim, inner, bias=False)
        self.to_out = nn.Sequential(nn.Linear(inner, query_dim), nn.Dropout(0.0))

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        context = x if context is None else context
        q, k, v = (rearrange(p(s), "b n (h d) -> b h n d", h=self.heads)
                   for p, s in ((self.to_q, x), (self.to_k, context), (self.to_v, context)))
        out = F.scaled_dot_product_attention(q, k, v)  # scale 1/sqrt(d_head), as the reference
        return self.to_out(rearrange(out, "b h n d -> b n (h d)"))


class GEGLU(nn.Module):
    """Gated GELU projection: value * GELU(gate) (exact erf GELU)."""

    def __init__(self, dim_in: int, dim_out: int):
        super().__init__()
        self.proj = nn.Linear(dim_in, dim_out * 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        value, gate = self.proj(x).chunk(2, dim=-1)
        return value * F.gelu(gate)


class FeedForward(nn.Module):
    """GEGLU feed-forward with 4x inner width; keys `net.0.proj`, `net.2`."""

    def __init__(self, dim: int, mult: int = 4):
        super().__init__()
        self.net = nn.Sequential(GEGLU(dim, dim * mult), nn.Dropout(0.0), nn.Linear(dim * mult, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class BasicTransformerBlock(nn.Module):
    """Pre-LN block: self-attention, cross-attention (self-attention when context_dim is None), GEGLU MLP."""

    def __init__(self, dim: int, heads: int, dim_head: int, context_dim: int | None):
        super().__init__()
        self.attn1 = CrossAttention(dim, None, heads, dim_head)
        self.ff = FeedForward(dim)
        self.attn2 = CrossAttention(dim, context_dim, heads, dim_head)
        self.norm1 = nn.LayerNorm(dim)
        self.norm2 = nn.LayerNorm(dim)
        self.norm3 = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        x = x + self.attn1(self.norm1(x))
        x = x + self.attn2(self.norm2(x), context)
        return x + self.ff(self.norm3(x))


class SpatialTransformer(nn.Module):
    """Per-frame transformer over H*W tokens with text cross-attention and linear projections."""

    def __init__(self, channels: int, heads: int, dim_head: int, context_dim: int, groups: int):
        super().__init__()
        inner = heads * dim_head
        self.norm = nn.GroupNorm(groups, channels, eps=1e-6)
        self.proj_in = nn.Linear(channels, inner)
        self.transformer_blocks = nn.ModuleList([BasicTransformerBlock(inner, heads, dim_head, context_dim)])
        self.proj_out = nn.Linear(inner, channels)

    def forward(self, x: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        y = rearrange(self.norm(x), "n c h w -> n (h w) c")
        y = self.transformer_blocks[0](self.proj_in(y), context)
        return x + rearrange(self.proj_out(y), "n (h w) c -> n c h w", h=h, w=w)


class TemporalTransformer(nn.Module):
    """Self-attention over frames at each pixel: no text, no positional encoding; GroupNorm over all frames."""

    def __init__(self, channels: int, heads: int, dim_head: int, groups: int):
        super().__init__()
        inner = heads * dim_head
        self.norm = nn.GroupNorm(groups, channels, eps=1e-6)
        self.proj_in = nn.Conv1d(channels, inner, 1)  # stored as Conv1d (trailing 1); applied as a linear map
        self.transformer_blocks = nn.ModuleList([BasicTransformerBlock(inner, heads, dim_head, None)])
        self.proj_out = nn.Conv1d(inner, channels, 1)

    def forward(self, x: torch.Tensor, frames: int) -> torch.Tensor:
        b = x.shape[0] // frames
        h, w = x.shape[-2:]
        y = self.norm(rearrange(x, "(b f) c h w -> b c f h w", f=frames))  # stats over all frames
        y = rearrange(y, "b c f h w -> (b h w) f c")
        y = F.linear(y, self.proj_in.weight.squeeze(-1), self.proj_in.bias)
        y = self.transformer_blocks[0](y)
        y = F.linear(y, self.proj_out.weight.squeeze(-1), self.proj_out.bias)
        return x + rearrange(y, "(b h w) f c -> (b f) c h w", b=b, h=h, w=w)


def _norm_act_conv(groups: int, channels: int, dropout: bool) -> nn.Sequential:
    """GroupNorm -> SiLU -> [Dropout] -> Conv3d over time (kernel 3x1x1), as in TemporalConvBlock_v2."""
    conv = nn.Conv3d(channels, channels, (3, 1, 1), padding=(1, 0, 0))
    layers = [nn.GroupNorm(groups, channels), nn.SiLU()] + ([nn.Dropout(0.0)] if dropout else []) + [conv]
    return nn.Sequential(*layers)


class TemporalConvBlock(nn.Module):
    """Four temporal 3x1x1 convolutions with a residual (unet_sd.py `TemporalConvBlock_v2`)."""

    def __init__(self, channels: int, groups: int):
        super().__init__()
        self.conv1 = _norm_act_conv(groups, channels, dropout=False)
        self.conv2 = _norm_act_conv(groups, channels, dropout=True)
        self.conv3 = _norm_act_conv(groups, channels, dropout=True)
        self.conv4 = _norm_act_conv(groups, channels, dropout=True)

    def forward(self, x: torch.Tensor, frames: int) -> torch.Tensor:
        y = rearrange(x, "(b f) c h w -> b c f h w", f=frames)
        y = self.conv4(self.conv3(self.conv2(self.conv1(y))))
        return x + rearrange(y, "b c f h w -> (b f) c h w")


class ResBlock(nn.Module):
    """GN-SiLU-conv, add timestep embedding, GN-SiLU-conv, residual; then the temporal conv block."""

    def __init__(self, channels: int, emb_dim: int, out_channels: int, groups: int):
        super().__init__()
        self.in_layers = nn.Sequential(nn.GroupNorm(groups, channels), nn.SiLU(),
                                       nn.Conv2d(channels, out_channels, 3, padding=1))
        self.emb_layers = nn.Sequential(nn.SiLU(), nn.Linear(emb_dim, out_channels))
        self.out_layers = nn.Sequential(nn.GroupNorm(groups, out_channels), nn.SiLU(), nn.Dropout(0.0),
                                        nn.Conv2d(out_channels, out_channels, 3, padding=1))
        self.skip_connection = nn.Identity() if channels == out_channels else nn.Conv2d(channels, out_channels, 1)
        self.temopral_conv = TemporalConvBlock(out_channels, groups)  # sic: the checkpoint's key name

    def forward(self, x: torch.Tensor, emb: torch.Tensor, frames: int) -> torch.Tensor:
        h = self.in_layers(x) + self.emb_layers(emb)[:, :, None, None].to(x.dtype)
        h = self.skip_connection(x) + self.out_layers(h)
        return self.temopral_conv(h, frames)


class Downsample(nn.Module):
    """Stride-2 3x3 convolution, symmetric padding."""

    def __init__(self, channels: int):
        super().__init__()
        self.op = nn.Conv2d(channels, channels, 3, stride=2, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.op(x)


class Upsample(nn.Module):
    """Nearest x2 then 3x3 convolution."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


def _apply(layer: nn.Module, x: torch.Tensor, emb: torch.Tensor, context: torch.Tensor, frames: int) -> torch.Tensor:
    """Run one sub-module of a UNet block with the inputs it needs."""
    if isinstance(layer, ResBlock):
        return layer(x, emb, frames)
    if isinstance(layer, SpatialTransformer):
        return layer(x, context)
    if isinstance(layer, TemporalTransformer):
        return layer(x, frames)
    if isinstance(layer, nn.ModuleList):
        for sub in layer:
            x = _apply(sub, x, emb, context, frames)
        return x
    return layer(x)


class UNet3D(nn.Module):
    """ModelScope's UNetSD: SD-2.x spatial UNet plus temporal convs and temporal transformers."""

    def __init__(self, cfg: UNetConfig):
        super().__init__()
        self.cfg = cfg
        g, hd, ctx = cfg.norm_groups, cfg.head_dim, cfg.context_dim
        enc = [cfg.dim * m for m in (1, *cfg.dim_mult)]
        dec = [cfg.dim * m for m in (cfg.dim_mult[-1], *cfg.dim_mult[::-1])]
        self.time_embed = nn.Sequential(nn.Linear(cfg.dim, cfg.embed_dim), nn.SiLU(),
                                        nn.Linear(cfg.embed_dim, cfg.embed_dim))

        def attn_layers(ch: int, scale: float) -> list[nn.Module]:
            if scale not in cfg.attn_scales:
                return []
            layers: list[nn.Module] = [SpatialTransformer(ch, ch // hd, hd, ctx, g)]
            if cfg.temporal_attention:
                layers.append(TemporalTransformer(ch, ch // hd, hd, g))
            return layers

        first: list[nn.Module] = [nn.Conv2d(cfg.in_dim, cfg.dim, 3, padding=1)]
        if cfg.temporal_attention:  # the only place num_heads is used: 8 heads x 64 on 320 channels
            first.append(TemporalTransformer(cfg.dim, cfg.num_heads, hd, g))
        self.input_blocks = nn.ModuleList([nn.ModuleList(first)])
        skips, scale = [cfg.dim], 1.0
        for i, (cin, cout) in enumerate(pairwise(enc)):
            for j in range(cfg.num_res_blocks):
                self.input_blocks.append(nn.ModuleList([ResBlock(cin, cfg.embed_dim, cout, g),
                                                        *attn_layers(cout, scale)]))
                skips.append(cout)
                cin = cout
                if i != len(cfg.dim_mult) - 1 and j == cfg.num_res_blocks - 1:
                    self.input_blocks.append(Downsample(cout))
                    skips.append(cout)
                    scale /= 2.0
        mid = enc[-1]
        middle: list[nn.Module] = [ResBlock(mid, cfg.embed_dim, mid, g), SpatialTransformer(mid, mid // hd, hd, ctx, g)]
        if cfg.temporal_attention:  # the middle always has attention, whatever attn_scales says
            middle.append(TemporalTransformer(mid, mid // hd, hd, g))
        self.middle_block = nn.ModuleList([*middle, ResBlock(mid, cfg.embed_dim, mid, g)])
        self.output_blocks = nn.ModuleList()
        for i, (cin, cout) in enumerate(pairwise(dec)):
            for j in range(cfg.num_res_blocks + 1):
                block = [ResBlock(cin + skips.pop(), cfg.embed_dim, cout, g), *attn_layers(cout, scale)]
                cin = cout
                if i != len(cfg.dim_mult) - 1 and j == cfg.num_res_blocks:
                    block.append(Upsample(cout))
                    scale *= 2.0
                self.output_blocks.append(nn.ModuleList(block))
        self.out = nn.Sequential(nn.GroupNorm(g, dec[-1]), nn.SiLU(), nn.Conv2d(dec[-1], cfg.out_dim, 3, padding=1))

    def forward(self, x: torch.Tensor, t: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        """Predict noise. x: [b, c, f, h, w] latents, t: [b] timesteps, context: [b, 77, context_dim]."""
        b, _, frames, h, w = x.shape
        factor = 2 ** (len(self.cfg.dim_mult) - 1)  # every upsampler doubles, so skips only line up at multiples
        if h % factor or w % factor:
            raise ValueError(f"latent size {h}x{w} must be divisible by {factor} "
                             f"(pixel sizes multiples of {8 * factor})")
        emb = self.time_embed(timestep_embedding(t, self.cfg.dim).to(x.dtype))
        emb = emb.repeat_interleave(frames, dim=0)  # [(b f), e]
        context = context.repeat_interleave(frames, dim=0)  # [(b f), n, d]
        x = rearrange(x, "b c f h w -> (b f) c h w")
        skips = []
        for block in self.input_blocks:
            x = _apply(block, x, emb, context, frames)
            skips.append(x)
        x = _apply(self.middle_block, x, emb, context, frames)
        for block in self.output_blocks:
            x = _apply(block, torch.cat([x, skips.pop()], dim=1), emb, context, frames)
        return rearrange(self.out(x), "(b f) c h w -> b c f h w", b=b)

