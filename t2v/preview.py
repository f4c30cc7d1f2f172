"""Live previews without the VAE: x̂₀ latents → small RGB frames by a fixed linear map, and tiny animations.

The map is the 4×3 "latent RGB factors" SD UIs use for the SD 1.x/2.x KL-f8 latent space (ComfyUI
`comfy/latent_formats.py`, class SD15 `latent_rgb_factors`, no bias), applied to the scaled latents the sampler
sees; the result is in about [-1, 1]. ModelScope's VAE is SD's (model-spec §3), so the same factors fit.
Discord shows GIF, WebP and PNG attachments inline (an edited message's attachment too); GIF is the default
because every client animates it.
"""

from __future__ import annotations

import io
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np
import torch
import torch.nn.functional as F
from einops import rearrange

log = logging.getLogger(__name__)

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


def animation(frames: np.ndarray, fps: int = 8, format: str = "gif", scale: int = 1) -> bytes:
    """Small looping GIF or WebP (Pillow) from uint8 frames [F, H, W, 3]; `scale` enlarges by pixel repetition."""
    from PIL import Image  # Pillow comes with torchvision (open_clip's dependency)

    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3 or len(frames) == 0:
        raise ValueError(f"frames must be uint8 [F, H, W, 3] with F ≥ 1, got {frames.dtype} {frames.shape}")
    if format not in ("gif", "webp"):
        raise ValueError(f"format={format!r} is not one of gif, webp")
    if scale > 1:
        frames = frames.repeat(scale, axis=1).repeat(scale, axis=2)
    images = [Image.fromarray(frame) for frame in frames]
    out = io.BytesIO()
    options = {"loop": 0, "duration": round(1000 / fps)}
    if format == "webp":
        options |= {"lossless": False, "quality": 80}
    images[0].save(out, format=format.upper(), save_all=True, append_images=images[1:], **options)
    return out.getvalue()


@dataclass(frozen=True)
class Previews:
    """An `on_preview` callback with a cadence: it is given the frames of every `every`-th step (of the last step
    only with `last`), and no sooner than `min_interval_s` after the previous preview (or the start). The preview is
    a GPU→host copy that waits for the GPU, and its consumer's image encoding holds the interpreter: a consumer that
    shows a few previews should say which, or it slows the generation down (and the other GPU threads with it)."""

    fn: Callable[[int, int, np.ndarray], None]
    every: int = 1
    last: bool = True
    min_interval_s: float = 0.0
    clock: Callable[[], float] = field(default=time.monotonic, repr=False)
    _previous: list[float] = field(default_factory=list, repr=False, compare=False)  # shared with `narrowed` copies

    def __post_init__(self) -> None:
        if self.every < 1:
            raise ValueError(f"every={self.every} must be at least 1")
        if self.min_interval_s < 0:
            raise ValueError(f"min_interval_s={self.min_interval_s} must be at least 0")
        if not self._previous:
            self._previous.append(self.clock())

    def due(self, step: int, total: int) -> bool:
        """Whether the frames of `step` (1-based) of `total` are wanted."""
        if step % self.every or (step >= total and not self.last):
            return False
        return self.min_interval_s == 0 or self.clock() - self._previous[0] >= self.min_interval_s

    def __call__(self, step: int, total: int, frames: np.ndarray) -> None:
        self._previous[0] = self.clock()
        self.fn(step, total, frames)

    def narrowed(self, fn: Callable[[int, int, np.ndarray], None]) -> Previews:
        """The same cadence (and the same clock of the previous preview) for another callback."""
        return replace(self, fn=fn, _previous=self._previous)


def preview_due(on_preview: Callable[..., None], step: int, total: int) -> bool:
    """Whether `on_preview` wants the frames of `step`: a `Previews` says; any other callable takes every step."""
    return on_preview.due(step, total) if isinstance(on_preview, Previews) else True
