"""Clips longer than the model's window by temporal co-denoising (Gen-L-Video, Wang et al. 2023, arXiv 2305.18264).

Every sampling step runs the network on overlapping windows of `window` frames and blends their noise
predictions per frame — MultiDiffusion's weighted average (Bar-Tal et al. 2023) along time — before one
sampler step on the whole latent. The weights ramp linearly across each overlap, so a frame near a window's
edge leans on the window that sees it in the middle. Any sampler works: the blend is just another ε-model.
Quality caveats and costs: docs/long-videos.md.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Callable

import torch

from t2v.errors import InvalidRequest
from t2v.pipeline import VideoPipeline, postprocess
from t2v.progress import OnPreview, OnStep, ShouldCancel, check_cancel, step_callback
from t2v.request import GenerationRequest, GenerationResult
from t2v.sampling import SAMPLERS, GuidedDenoiser

log = logging.getLogger(__name__)

MAX_FRAMES = 256  # 32 s at 8 fps; latents and decoded frames stay small, time grows linearly
EpsModel = Callable[[torch.Tensor, int], torch.Tensor]


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


def _check(pipe: VideoPipeline, total_frames: int, window: int | None, overlap: int | None) -> tuple[int, int]:
    """(window, overlap) with their defaults: the model's native length and a quarter of it."""
    if isinstance(total_frames, bool) or not isinstance(total_frames, int) or not 1 <= total_frames <= MAX_FRAMES:
        raise InvalidRequest(f"total_frames={total_frames!r} is outside the allowed range 1–{MAX_FRAMES}")
    window = pipe.config.frames if window is None else window
    if not 2 <= window <= 64:
        raise InvalidRequest(f"window={window} is outside the allowed range 2–64")
    overlap = window // 4 if overlap is None else overlap
    if not 0 <= overlap < window:
        raise InvalidRequest(f"overlap={overlap} is outside the allowed range 0–{window - 1} (window {window})")
    return window, overlap


def generate_long(pipe: VideoPipeline, request: GenerationRequest, total_frames: int, window: int | None = None,
                  overlap: int | None = None, latents: torch.Tensor | None = None, on_step: OnStep | None = None,
                  should_cancel: ShouldCancel | None = None, on_preview: OnPreview | None = None) -> GenerationResult:
    """`total_frames` frames from windows of `window` (default: the model's frames) overlapping by `overlap`.

    request.frames is not used; its prompt, seed, steps, guidance, size and sampler are. Costs
    len(window_starts(...)) network passes per step. Callbacks as VideoPipeline.generate.
    """
    started = time.perf_counter()
    window, overlap = _check(pipe, total_frames, window, overlap)
    seed = request.seed if request.seed is not None else secrets.randbelow(2**32)
    shape = (1, pipe.config.unet.in_dim, total_frames, request.height // 8, request.width // 8)
    if latents is None:
        latents = torch.randn(shape, generator=torch.Generator("cpu").manual_seed(seed))
    elif tuple(latents.shape) != shape:
        raise InvalidRequest(f"latents have shape {tuple(latents.shape)}; this request needs {shape}")
    cond, uncond, truncated = pipe.encode_prompt(request.prompt, request.negative_prompt)
    model = WindowedDenoiser(GuidedDenoiser(pipe.unet, cond, uncond, request.guidance), total_frames, window, overlap)
    sampler, grid = SAMPLERS[request.sampler]
    check_cancel(should_cancel, request.steps)
    encoded = time.perf_counter()
    final = sampler(model, latents.to(pipe.device, torch.float32), pipe.schedule, grid(pipe.schedule, request.steps),
                    step_callback(on_step, should_cancel, on_preview))
    denoised = time.perf_counter()
    frames = postprocess(pipe.decode(final)[0])
    done = time.perf_counter()
    timings = {"encode_s": encoded - started, "denoise_s": denoised - encoded, "decode_s": done - denoised,
               "total_s": done - started, "windows": len(model.starts)}
    log.info("long video: %d frames %dx%d in %d windows of %d (overlap %d), %.2f s (seed %d)", total_frames,
             request.width, request.height, len(model.starts), model.window, overlap, timings["total_s"], seed)
    return GenerationResult(frames, seed, timings, truncated, pipe.config.is_random, final.cpu())
