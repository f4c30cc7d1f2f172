"""VAE-free previews: x̂₀ latents → small RGB frames by a fixed linear map.

The map is the 4×3 "latent RGB factors" SD UIs use for the SD 1.x/2.x KL-f8 latent space (ComfyUI
`comfy/latent_formats.py`, class SD15 `latent_rgb_factors`, no bias), applied to the scaled latents the sampler
sees; the result is in about [-1, 1]. ModelScope's VAE is SD's (model-spec §3), so the same factors fit.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from einops import rearrange

PREVIEW_WIDTH = 64  # pixels; a latent pixel covers 8 image pixels, so this is 512 px of image at most
# rows: latent channels 0-3; columns: R, G, B (ComfyUI SD15.latent_rgb_factors)
LATENT_RGB_FACTORS = ((0.3512, 0.2297, 0.3227),
                      (0.3250, 0.4974, 0.2350),
                      (-0.2829, 0.1762, 0.2721),
                      (-0.2120, -0.2616, -0.7177))
LATENT_RGB_BIAS = (0.0, 0.0, 0.0)


def latents_to_rgb(latents: torch.Tensor) -> torch.Tensor:
    """[..., 4, h, w] scaled latents → [..., 3, h, w] RGB in about [-1, 1] (the linear map above)."""
    factors = torch.tensor(LATENT_RGB_FACTORS, dtype=torch.float32, device=latents.device)
    bias = torch.tensor(LATENT_RGB_BIAS, dtype=torch.float32, device=latents.device)
    rgb = torch.einsum("...chw,cr->...rhw", latents.float(), factors)
    return rgb + bias[:, None, None]


def preview_frames(x0: torch.Tensor, width: int = PREVIEW_WIDTH) -> np.ndarray:
    """x̂₀ latents [n, 4, F, h, w] → uint8 RGB frames [n, F, H, width, 3] (H keeps the aspect ratio, ≥ 1)."""
    n, _, f, h, w = x0.shape
    size = (max(1, round(width * h / w)), width)
    flat = rearrange(x0.float(), "n c f h w -> (n f) c h w")
    mode = "area" if size[0] <= h and size[1] <= w else "bilinear"  # both linear, so they commute with the map
    small = F.interpolate(flat, size=size, mode=mode)
    rgb = ((latents_to_rgb(small) + 1) * 127.5).round().clamp(0, 255).to(torch.uint8)
    return rearrange(rgb, "(n f) c h w -> n f h w c", n=n, f=f).cpu().numpy()
