"""Live previews: which steps get one (`Previews`), and tiny animations of their frames (torch-free).

The frames themselves come from t2v.latent_preview (x̂₀ latents → small RGB, no VAE). Discord shows GIF, WebP
and PNG attachments inline (an edited message's attachment too); GIF is the default because every client
animates it.
"""

from __future__ import annotations

import io
import logging
import math
import numbers
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from t2v.errors import InvalidRequest
from t2v.request import LIMITS, check_callable
from t2v.sizes import frame_text

if TYPE_CHECKING:
    import numpy as np

log = logging.getLogger(__name__)

FPS_RANGE = LIMITS["fps"]  # a request's frame rates


def animation(frames: np.ndarray, fps: int = 8, format: str = "gif", scale: int = 1) -> bytes:
    """Small looping GIF or WebP (Pillow) from uint8 frames [F, H, W, 3]; `scale` enlarges by pixel repetition."""
    from PIL import Image  # Pillow comes with torchvision (open_clip's dependency)

    _check_animation(frames, fps, format, scale)
    if scale > 1:
        frames = frames.repeat(scale, axis=1).repeat(scale, axis=2)
    images = [Image.fromarray(frame) for frame in frames]
    out = io.BytesIO()
    options = {"loop": 0, "duration": round(1000 / fps)}
    if format == "webp":
        options |= {"lossless": False, "quality": 80}
    images[0].save(out, format=format.upper(), save_all=True, append_images=images[1:], **options)
    return out.getvalue()


def _check_animation(frames: np.ndarray, fps: float, format: str, scale: int) -> None:
    """InvalidRequest (a ValueError) naming the first argument `animation` cannot use, before any image is made."""
    import numpy as np

    wrong = not isinstance(frames, np.ndarray) or frames.dtype != np.uint8 or frames.ndim != 4
    if wrong or frames.shape[-1] != 3 or len(frames) == 0:
        got = f"{frames.dtype} {frames.shape}" if isinstance(frames, np.ndarray) else type(frames).__name__
        raise InvalidRequest(f"frames must be uint8 [F, H, W, 3] with F ≥ 1, got {got}")
    if 0 in frames.shape[1:3]:  # else Pillow's "cannot write empty image"
        raise InvalidRequest(f"frames of {frame_text(frames.shape[2], frames.shape[1])} pixels are empty; a frame "
                             f"needs {frame_text(1, 1)} at least")
    low, high = FPS_RANGE  # a frame's duration is 1000 / fps ms: 0 divides by zero, a tiny fps overflows GIF's field
    if isinstance(fps, bool) or not isinstance(fps, numbers.Real) or not low <= fps <= high:
        raise InvalidRequest(f"fps={fps!r} is not a number of frames per second from {low} to {high}")
    if format not in ("gif", "webp"):
        raise InvalidRequest(f"format={format!r} is not one of gif, webp")
    if isinstance(scale, bool) or not isinstance(scale, numbers.Integral) or scale < 1:
        raise InvalidRequest(f"scale={scale!r} must be a whole number of 1 or more (pixel repetition)")


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
        check_callable("fn", self.fn, ("step", "total", "frames"), "lambda step, total, frames: ...")
        if isinstance(self.every, bool) or not isinstance(self.every, numbers.Integral) or self.every < 1:
            raise InvalidRequest(f"every={self.every!r} must be a whole number of steps, at least 1")
        interval = self.min_interval_s  # NaN would compare False with every elapsed time: no preview ever
        if isinstance(interval, bool) or not isinstance(interval, numbers.Real) or not 0 <= interval < math.inf:
            raise InvalidRequest(f"min_interval_s={interval!r} must be a number of seconds, at least 0")
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
