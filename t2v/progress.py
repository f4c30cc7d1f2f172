"""Sampler callbacks for the generation entry points: progress reports, cancellation and live previews."""

from __future__ import annotations

import logging
from collections.abc import Callable

import numpy as np
import torch

from t2v.errors import GenerationCancelled
from t2v.latent_preview import preview_frames
from t2v.preview import preview_due

log = logging.getLogger(__name__)

OnStep = Callable[[int, int], None]
ShouldCancel = Callable[[], bool]
OnPreview = Callable[[int, int, np.ndarray], None]  # (step, total, uint8 frames [F, h, w, 3])


def step_callback(on_step: OnStep | None, should_cancel: ShouldCancel | None,
                  on_preview: OnPreview | None = None) -> Callable[[int, int, torch.Tensor], None]:
    """A sampler callback: `on_step(step, total)`, `on_preview` of x̂₀, then `should_cancel()` before the next step.

    The contract of VideoPipeline.generate: steps count from 1; cancellation is not checked after the last step.
    """
    def callback(i: int, total: int, x0: torch.Tensor) -> None:
        if on_step is not None:
            on_step(i + 1, total)
        if on_preview is not None and preview_due(on_preview, i + 1, total):
            on_preview(i + 1, total, preview_frames(x0)[0])
        if should_cancel is not None and i + 1 < total and should_cancel():
            raise GenerationCancelled(i + 1, total)

    return callback


def check_cancel(should_cancel: ShouldCancel | None, total: int) -> None:
    """Raise GenerationCancelled(0, total) when cancelled before the first step."""
    if should_cancel is not None and should_cancel():
        raise GenerationCancelled(0, total)
