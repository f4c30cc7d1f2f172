"""Live previews on the status message: a small looping GIF of the current x̂₀ every few denoising steps.

The GPU thread turns t2v's VAE-free preview frames (uint8 [F, h, 64, 3]) into a GIF only every `preview_every(total)`
steps and INTERVAL_S seconds — never at the last step, the video follows it; t2v makes no frames in between — and
hands it to the loop through the executor's progress path
as `progress(step, total, Preview)`. The service keeps the newest one; the delivery attaches it to the next status
edit its throttle lets through, once, so previews never add an edit. Jobs of fewer than MIN_STEPS steps get none:
they finish within seconds.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from t2v import GenerationRequest, Previews, animation

log = logging.getLogger(__name__)

FILENAME = "preview.gif"
MIN_STEPS = 8  # shorter jobs get no previews
PER_JOB = 8  # at most about this many GIFs are made per job
INTERVAL_S = 2.0  # and at most one per this many seconds: status edits are throttled as much (STATUS_EDIT_INTERVAL_S,
# 2 s by default), so a GIF made sooner is rarely shown, while each costs the GPU thread a sync and ~0.1-0.2 s of CPU
# (16 preview frames; docs/perf-notes.md: with 8 GIFs a standard video took 2.23 s on an H200, generate alone 1.66 s)
SCALE = 2  # t2v's previews are 64 px wide; Discord shows them at 128
OnPreview = Callable[[int, int, np.ndarray], None]  # (step, total, uint8 frames [F, h, w, 3]), on the GPU thread


@dataclass(frozen=True)
class Preview:
    """A GIF of the denoised estimate after `step` steps."""

    step: int
    gif: bytes = field(repr=False)


def preview_every(total: int) -> int | None:
    """Steps between previews for a job of `total` steps, or None when it gets none."""
    if total < MIN_STEPS:
        return None
    return max(1, total // PER_JOB)


def previews(progress: Callable[..., None], request: GenerationRequest) -> dict[str, OnPreview]:
    """`on_preview=` for t2v's generate when the job gets previews, else nothing (t2v skips the preview frames).

    t2v makes the frames only on the steps that become GIFs (`t2v.Previews`): each is a GPU→host copy that waits for
    the GPU, which at every step would stall the step loop."""
    return with_cadence(preview_callback(progress, request.fps), request.steps)


def with_cadence(on_preview: OnPreview, steps: int) -> dict[str, OnPreview]:
    """`on_preview=` that t2v calls only on the steps that get a GIF, at most one per INTERVAL_S; nothing when jobs
    of `steps` get none."""
    every = preview_every(steps)
    return {} if every is None else {"on_preview": Previews(on_preview, every, last=False, min_interval_s=INTERVAL_S)}


def preview_callback(progress: Callable[..., None], fps: int) -> OnPreview:
    """t2v's `on_preview` that sends `progress(step, total, Preview)` every few steps; a failed GIF is only logged."""

    def on_preview(step: int, total: int, frames: np.ndarray) -> None:
        every = preview_every(total)
        if every is None or step >= total or step % every:
            return
        try:
            gif = animation(frames, fps, "gif", scale=SCALE)
        except Exception:
            log.exception("making the preview of step %d/%d failed", step, total)
            return
        progress(step, total, Preview(step, gif))

    return on_preview
