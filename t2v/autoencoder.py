"""KL-f8 autoencoder (Stable Diffusion's VAE), ported from modelscope `video_synthesis/autoencoder.py`.

Attribute names follow the `first_stage_model.*` keys of `VQGAN_autoencoder.pth`, so the stripped state dict
loads strictly. The decoder is 2-D; videos are decoded frame by frame in chunks.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from t2v.config import VAEConfig
from t2v.unet import Upsample  # the same nearest x2 + 3x3 conv, key `conv`, as the UNet's


def _norm(channels: int, groups: int) -> nn.GroupNorm:
    return nn.GroupNorm(groups, channels, eps=1e-6)


class ResnetBlock(nn.Module):
    """GN-swish-conv twice with a residual; 1x1 `nin_shortcut` when the width changes; no time embedding."""

    def __init__(self, cin: int, cout: int, groups: int):
        super().__init__()
        self.norm1 = _norm(cin, groups)
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.norm2 = _norm(cout, groups)
        self.dropout = nn.Dropout(0.0)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
        if cin != cout:
            self.nin_shortcut = nn.Conv2d(cin, cout, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = self.conv2(self.dropout(F.silu(self.norm2(h))))
        return (self.nin_shortcut(x) if hasattr(self, "nin_shortcut") else x) + h


class AttnBlock(nn.Module):
    """Single-head spatial self-attention with 1x1-conv q/k/v (scale C^-0.5)."""

    def __init__(self, channels: int, groups: int):
        super().__init__()
        self.norm = _norm(channels, groups)
        self.q = nn.Conv2d(channels, channels, 1)
        self.k = nn.Conv2d(channels, channels, 1)
        self.v = nn.Conv2d(channels, channels, 1)
        self.proj_out = nn.Conv2d(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        y = self.norm(x)
        q, k, v = (rearrange(p(y), "b c h w -> b 1 (h w) c") for p in (self.q, self.k, self.v))
        out = F.scaled_dot_product_attention(q, k, v)
        return x + self.proj_out(rearrange(out, "b 1 (h w) c -> b c h w", h=h, w=w))


class Downsample(nn.Module):
    """Stride-2 3x3 convolution with asymmetric zero padding (right/bottom), as LDM."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.pad(x, (0, 1, 0, 1)))


class _Level(nn.Module):
    """One resolution level: `block.{i}` ResnetBlocks and an optional `downsample`/`upsample` (key names of LDM)."""

    def __init__(self, widths: list[tuple[int, int]], groups: int):
        super().__init__()
        self.block = nn.ModuleList([ResnetBlock(cin, cout, groups) for cin, cout in widths])


class _Mid(nn.Module):
    """Middle: ResnetBlock, attention, ResnetBlock."""

    def __init__(self, channels: int, groups: int):
        super().__init__()
        self.block_1 = ResnetBlock(channels, channels, groups)
        self.attn_1 = AttnBlock(channels, groups)
        self.block_2 = ResnetBlock(channels, channels, groups)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.block_2(self.attn_1(self.block_1(x)))


class Encoder(nn.Module):
    """Image [n, 3, H, W] -> posterior moments [n, 2z, H/8, W/8]."""

    def __init__(self, cfg: VAEConfig):
        super().__init__()
        g, chans = cfg.norm_groups, [cfg.ch * m for m in cfg.ch_mult]
        self.conv_in = nn.Conv2d(cfg.in_channels, cfg.ch, 3, padding=1)
        self.down = nn.ModuleList()
        cin = cfg.ch
        for level, cout in enumerate(chans):
            stage = _Level([(cin if i == 0 else cout, cout) for i in range(cfg.num_res_blocks)], g)
            if level != len(chans) - 1:
                stage.downsample = Downsample(cout)
            self.down.append(stage)
            cin = cout
        self.mid = _Mid(cin, g)
        self.norm_out = _norm(cin, g)
        self.conv_out = nn.Conv2d(cin, 2 * cfg.z_channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv_in(x)
        for stage in self.down:
            for block in stage.block:
                h = block(h)
            if hasattr(stage, "downsample"):
                h = stage.downsample(h)
        return self.conv_out(F.silu(self.norm_out(self.mid(h))))


class Decoder(nn.Module):
    """Latent [n, z, h, w] -> image [n, 3, 8h, 8w]; `up` is stored shallowest-first but run deepest-first."""

    def __init__(self, cfg: VAEConfig):
        super().__init__()
        g, chans = cfg.norm_groups, [cfg.ch * m for m in cfg.ch_mult]
        cin = chans[-1]
        self.conv_in = nn.Conv2d(cfg.z_channels, cin, 3, padding=1)
        self.mid = _Mid(cin, g)
        stages: list[_Level] = []
        for level in reversed(range(len(chans))):
            cout = chans[level]
            stage = _Level([(cin if i == 0 else cout, cout) for i in range(cfg.num_res_blocks + 1)], g)
            if level != 0:
                stage.upsample = Upsample(cout)
            stages.insert(0, stage)
            cin = cout
        self.up = nn.ModuleList(stages)
        self.norm_out = _norm(cin, g)
        self.conv_out = nn.Conv2d(cin, cfg.out_ch, 3, padding=1)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = self.mid(self.conv_in(z))
        for stage in reversed(self.up):
            for block in stage.block:
                h = block(h)
            if hasattr(stage, "upsample"):
                h = stage.upsample(h)
        return self.conv_out(F.silu(self.norm_out(h)))


class AutoencoderKL(nn.Module):
    """The KL autoencoder: `encode` gives the posterior mean (and logvar), `decode` maps latents to pixels."""

    def __init__(self, cfg: VAEConfig):
        super().__init__()
        self.cfg = cfg
        self.encoder = Encoder(cfg)
        self.decoder = Decoder(cfg)
        self.quant_conv = nn.Conv2d(2 * cfg.z_channels, 2 * cfg.embed_dim, 1)
        self.post_quant_conv = nn.Conv2d(cfg.embed_dim, cfg.z_channels, 1)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Posterior (mean, logvar) of images in [-1, 1]; logvar clamped to [-30, 20] as LDM."""
        mean, logvar = self.quant_conv(self.encoder(x)).chunk(2, dim=1)
        return mean, logvar.clamp(-30.0, 20.0)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Images in about [-1, 1] from unscaled latents."""
        return self.decoder(self.post_quant_conv(z))

    def decode_video(self, latents: torch.Tensor, chunk: int = 8,
                     decode: Callable[[torch.Tensor], torch.Tensor] | None = None) -> torch.Tensor:
        """[b, z, f, h, w] unscaled latents -> [b, 3, f, 8h, 8w], decoding `chunk` frames at a time with `decode`
        (default: this module's; the fast path's compiled one, t2v.compiled.CompiledDecoder)."""
        b = latents.shape[0]
        flat = rearrange(latents, "b c f h w -> (b f) c h w")
        out = torch.cat([(decode or self.decode)(part) for part in flat.split(max(1, chunk))])
        return rearrange(out, "(b f) c h w -> b c f h w", b=b)
