"""Clips longer than the model's window by temporal co-denoising (Gen-L-Video, Wang et al. 2023, arXiv 2305.18264).

Every sampling step runs the network on overlapping windows of `window` frames and blends their noise
predictions per frame — MultiDiffusion's weighted average (Bar-Tal et al. 2023) along time — before one
sampler step on the whole latent. The weights ramp linearly across each overlap, so a frame near a window's
edge leans on the window that sees it in the middle. Any sampler works: the blend is just another ε-model.
Quality caveats and costs: docs/long-videos.md.
"""

from __future__ import annotations

import logging
from functools import partial

import torch

from t2v.driver import PipelineBase, Plan
from t2v.errors import InvalidRequest
from t2v.progress import Callbacks, OnPreview, OnStep, ShouldCancel, first_video
from t2v.request import GenerationRequest, GenerationResult, check_request, plain_number
from t2v.sampling import EpsModel

log = logging.getLogger(__name__)

MAX_FRAMES = 256  # 32 s at 8 fps; latents and decoded frames stay small, time grows linearly


def window_starts(frames: int, window: int, overlap: int) -> list[int]:
    """First frame of each window: stride window − overlap, the last window flush with the end."""
    if frames <= window:
        return [0]
    stride = window - overlap
    starts = list(range(0, frames - window, stride))
    return [*starts, frames - window]


def window_weights(window: int, overlap: int, first: bool, last: bool) -> torch.Tensor:
    """[window] blend weights: 1 inside, a linear ramp 1/(o+1) … o/(o+1) over an inner edge's `overlap` frames."""
    weights = torch.ones(window, dtype=torch.float64)
    ramp = torch.arange(1, overlap + 1, dtype=torch.float64) / (overlap + 1)
    if overlap and not first:
        weights[:overlap] = ramp
    if overlap and not last:
        weights[window - overlap:] = ramp.flip(0)
    return weights


class WindowedDenoiser:
    """ε̂ of a long latent [b, c, F, h, w] = per-frame weighted average of `model` over overlapping windows."""

    def __init__(self, model: EpsModel, frames: int, window: int, overlap: int):
        self.model, self.window = model, min(window, frames)
        self.starts = window_starts(frames, self.window, overlap)
        total = torch.zeros(frames, dtype=torch.float64)
        self.weights = []
        for i, start in enumerate(self.starts):
            w = window_weights(self.window, overlap, i == 0, i == len(self.starts) - 1)
            self.weights.append(w)
            total[start:start + self.window] += w
        self.total = total

    def __call__(self, x: torch.Tensor, t: int) -> torch.Tensor:
        out = torch.zeros_like(x)
        for start, weights in zip(self.starts, self.weights, strict=True):
            eps = self.model(x[:, :, start:start + self.window], t)  # [b, c, window, h, w]
            out[:, :, start:start + self.window] += eps * weights.to(x).view(1, 1, -1, 1, 1)
        return out / self.total.to(x).view(1, 1, -1, 1, 1)


def _check(pipe: PipelineBase, total_frames: int, window: int | None,
           overlap: int | None) -> tuple[int, int, int]:
    """(total_frames, window, overlap) as plain ints, with the defaults: the model's native length and a quarter of
    it; InvalidRequest naming a value that is no integer (NumPy's are) or outside its range."""
    total_frames = _whole("total_frames", total_frames, 1, MAX_FRAMES)
    window = _whole("window", pipe.config.frames if window is None else window, 2, 64)
    overlap = _whole("overlap", window // 4 if overlap is None else overlap, 0, window - 1, f" (window {window})")
    return total_frames, window, overlap


def _whole(name: str, value: int, low: int, high: int, note: str = "") -> int:
    """`value` as a plain int within low–high; InvalidRequest naming it otherwise."""
    value = plain_number(value, f"{name}={value!r}")
    if not low <= value <= high:
        raise InvalidRequest(f"{name}={value!r} is outside the allowed range {low}–{high}{note}")
    return value


def generate_long(pipe: PipelineBase, request: GenerationRequest, total_frames: int, window: int | None = None,
                  overlap: int | None = None, latents: torch.Tensor | None = None, on_step: OnStep | None = None,
                  should_cancel: ShouldCancel | None = None, on_preview: OnPreview | None = None) -> GenerationResult:
    """`total_frames` frames from windows of `window` (default: the model's frames) overlapping by `overlap`.

    request.frames is not used; its prompt, seed, steps, guidance, size (None: the model's) and sampler are. Costs
    len(window_starts(...)) network passes per step; `latents` [1, 4, total_frames, h, w] replace the seed's
    noise. Callbacks as VideoPipeline.generate.
    """
    request = check_request(request, "generate_long").with_defaults(pipe.config)
    total_frames, window, overlap = _check(pipe, total_frames, window, overlap)
    window = min(window, total_frames)
    windows = len(window_starts(total_frames, window, overlap))
    initial = partial(pipe.noise, frames=total_frames, height=request.height, width=request.width, supplied=latents)
    plan = Plan([request], initial, pipe.timesteps(request), timings={"windows": windows},
                wrap=lambda model: WindowedDenoiser(model, total_frames, window, overlap),
                what=f"a long video in {windows} windows of {window} frames (overlap {overlap})")
    return pipe.run(plan, Callbacks(on_step, should_cancel, first_video(on_preview)))[0]
