"""Live previews on the status message: a small looping GIF of the current x̂₀ every few denoising steps.

Which steps get one is decided here, once (`Cadence`), from the number of steps the sampler actually runs — all of a
video's, fewer for an upscale (video-to-video runs `strength` of them): every `preview_every(total)` steps and at most
one per STATUS_EDIT_INTERVAL_S (the worker's `Models.preview_interval_s`), never at the last step (the video follows
it). t2v copies the VAE-free preview frames (uint8 [F, h, 64, 3]) off the GPU only on those steps, and each copy is
handed to the loop through the executor's progress path as `progress(step, total, Preview)`: the frames, not a GIF.
The service keeps the newest one; the delivery makes it a GIF (`Preview.gif`, off the loop) only for the status edit
its throttle lets through, once, so previews never add an edit and a preview that is never shown is never encoded.
The GPU thread pays only the copy's sync: a GIF costs ~0.1-0.2 s of CPU (16 preview frames), which on the GPU thread
delayed the next steps (docs/perf-notes.md rows 10 and 64: a batch of 2 standard videos took 0.28 s longer through
the bot than alone on an H100). Jobs of fewer than MIN_STEPS steps get none: they finish within seconds.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from bot.settings import STATUS_EDIT_INTERVAL_S
from t2v.preview import Previews, animation

if TYPE_CHECKING:
    import numpy as np

log = logging.getLogger(__name__)

FILENAME = "preview.gif"
MIN_STEPS = 8  # shorter jobs get no previews
PER_JOB = 8  # at most about this many previews are made per job
SCALE = 2  # t2v's previews are 64 px wide; Discord shows them at 128
OnPreview = Callable[[int, int, "np.ndarray"], None]  # (step, total, uint8 frames [F, h, w, 3]), on the GPU thread


@dataclass(frozen=True)
class Preview:
    """The denoised estimate after `step` steps: its small frames (uint8 [F, h, w, 3]), to show at `fps`."""

    step: int
    frames: np.ndarray = field(repr=False)
    fps: int

    def gif(self) -> bytes:
        """The looping GIF Discord shows (SCALE times the frames' size): CPU work of ~0.1-0.2 s, so call it off the
        event loop and off the GPU thread."""
        return animation(self.frames, self.fps, "gif", scale=SCALE)


def preview_every(total: int) -> int | None:
    """Steps between previews for a sampler run of `total` steps, or None when it gets none."""
    if total < MIN_STEPS:
        return None
    return max(1, total // PER_JOB)


@dataclass(frozen=True)
class Cadence(Previews):
    """t2v's `Previews` with the cadence of `preview_every(total)`, the total being the steps the sampler reports
    (which a fixed `every` cannot follow, so a Cadence takes none)."""

    every: int = field(default=1, init=False)  # preview_every(total) decides
    last: bool = False

    def due(self, step: int, total: int) -> bool:
        """Whether the frames of `step` of `total` become a GIF (and so are copied off the GPU at all)."""
        every = preview_every(total)
        return every is not None and step % every == 0 and super().due(step, total)


def cadence(on_preview: OnPreview, interval_s: float, clock: Callable[[], float] = time.monotonic) -> Cadence:
    """`on_preview` called on the steps that get a GIF, at most one per `interval_s` seconds of `clock`."""
    return Cadence(on_preview, min_interval_s=interval_s, clock=clock)


def previews(progress: Callable[..., None], fps: int,
             interval_s: float = STATUS_EDIT_INTERVAL_S) -> dict[str, OnPreview]:
    """`on_preview=` for t2v's generate (or generate_video2video) of one job: its previews go to `progress`, at most
    one per `interval_s` (the bot's work passes its STATUS_EDIT_INTERVAL_S; the default is that setting's, for
    probes)."""
    return {"on_preview": cadence(preview_maker(progress, fps), interval_s)}


def preview_maker(progress: Callable[..., None], fps: int) -> OnPreview:
    """An `on_preview` body that sends `progress(step, total, Preview)`: the frames as they are, nothing encoded on the
    GPU thread."""

    def on_preview(step: int, total: int, frames: np.ndarray) -> None:
        progress(step, total, Preview(step, frames, fps))

    return on_preview
