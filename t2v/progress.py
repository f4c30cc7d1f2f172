"""What a caller hears during sampling: progress reports, cancellation and live previews, as one sampler callback."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from t2v.errors import GenerationCancelled
from t2v.latent_preview import preview_frames
from t2v.preview import Previews, preview_due
from t2v.request import check_callable

log = logging.getLogger(__name__)

OnStep = Callable[[int, int], None]
ShouldCancel = Callable[[], bool]
OnPreview = Callable[[int, int, np.ndarray], None]  # (step, total, uint8 frames [n, F, h, w, 3] or [F, h, w, 3])


def check_callback(name: str, value: object) -> None:
    """InvalidRequest unless `value` is None or callable with the arguments the sampler gives it (check_callable)."""
    if value is not None:
        check_callable(name, value, CALLBACK_ARGUMENTS[name], CALLBACK_EXAMPLES[name], optional=True)


CALLBACK_ARGUMENTS = {"on_step": ("step", "total"), "should_cancel": (), "on_preview": ("step", "total", "frames")}
CALLBACK_EXAMPLES = {"on_step": "lambda step, total: print(step, total)",
                     "should_cancel": "threading.Event().is_set",
                     "on_preview": "lambda step, total, frames: ..."}


def first_video(on_preview: OnPreview | None) -> OnPreview | None:
    """An `on_preview` for a batch of one that hands the caller that video's frames [F, h, w, 3] (same cadence)."""
    check_callback("on_preview", on_preview)
    if on_preview is None:
        return None

    def first(step: int, total: int, frames: np.ndarray) -> None:
        on_preview(step, total, frames[0])

    return on_preview.narrowed(first) if isinstance(on_preview, Previews) else first


@dataclass(frozen=True)
class Callbacks:
    """`on_step(step, total)` after every step, `on_preview(step, total, frames [n, F, h, w, 3])` when due, then
    `should_cancel()` before the next step. Steps count from 1; cancellation is not checked after the last one."""

    on_step: OnStep | None = None
    should_cancel: ShouldCancel | None = None
    on_preview: OnPreview | None = None

    def __post_init__(self) -> None:
        for name in ("on_step", "should_cancel", "on_preview"):
            check_callback(name, getattr(self, name))

    def check_cancel(self, total: int) -> None:
        """Raise GenerationCancelled(0, total) when cancelled before the first step."""
        if self.should_cancel is not None and self.should_cancel():
            raise GenerationCancelled(0, total)

    def __call__(self, i: int, total: int, x0: torch.Tensor) -> None:
        """The sampler callback after step i (0-based) with the predicted x̂₀ latents."""
        if self.on_step is not None:
            self.on_step(i + 1, total)
        if self.on_preview is not None and preview_due(self.on_preview, i + 1, total):
            self.on_preview(i + 1, total, preview_frames(x0))
        if self.should_cancel is not None and i + 1 < total and self.should_cancel():
            raise GenerationCancelled(i + 1, total)
