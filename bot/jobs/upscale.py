"""⬆ Upscale: re-render a finished job's kept MP4 with the upscaler (video-to-video, SDEdit) at the upscaler's size.

The loop side builds the job's options (`upscale_options`: the source's prompt and settings, the upscaler's size for
its aspect, UPSCALE_STRENGTH, UPSCALE_COST quota units) and the job goes through /video's queue, caps and quota.
The GPU side (`upscale_work`) decodes the MP4 with PyAV, resizes it to the request's size, VAE-encodes it, noises
it to the strength and denoises it with the same prompt (`upscaler.generate_video2video`); the service's encoder
makes the MP4 of the frames, as for any job.
"""

from __future__ import annotations

import io
import logging
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import av
import numpy as np

from bot.gpu.executor import CancelFn, ProgressFn, Work
from bot.gpu.models import ModelInfo, upscaler_of
from bot.gpu.previews import previews
from bot.gpu.work import Frames, frames_of
from bot.jobs.spec import UpscaleOf, VideoOptions
from bot.settings import Settings
from storage import JobRecord
from t2v import GenerationCancelled, GenerationRequest

log = logging.getLogger(__name__)


class SourceVideoGone(Exception):
    """The MP4 an upscale was to re-render is no longer kept (its job was deleted after the upscale was queued)."""


class NoUpscaler(Exception):
    """The worker that took an upscale has no upscaler loaded."""


def upscale_options(job: JobRecord, info: ModelInfo, settings: Settings, video: Path,
                    prompt: str | None = None) -> VideoOptions:
    """An upscale of `job` (its prompt, or `prompt`; a new seed) at the upscaler's size for the job's aspect."""
    base = VideoOptions.from_params(job.prompt if prompt is None else prompt, job.negative_prompt,
                                    {**job.params, "seed": None})
    width, height = info.upscale_size(base.aspect)
    source = UpscaleOf(job.id, str(video), settings.upscale_strength)
    return replace(base, width=width, height=height, cost=settings.upscale_cost, upscale=source)


def read_source(path: Path) -> bytes:
    """The kept MP4 an upscale re-renders; SourceVideoGone when the file is not there."""
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise SourceVideoGone(f"{path} is no longer kept") from None


def read_video(mp4: bytes) -> np.ndarray:
    """The frames of an MP4 as uint8 [F, H, W, 3] (PyAV); SourceVideoGone when it holds none."""
    with av.open(io.BytesIO(mp4)) as container:
        frames = [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]
    if not frames:
        raise SourceVideoGone("the kept video holds no frames")
    return np.stack(frames)


def upscale_work(request: GenerationRequest, source: UpscaleOf, video: np.ndarray) -> Work[Frames]:
    """The GPU-side work of an upscale of `video` (the kept MP4's frames, decoded on the bot's host: a Ray worker
    elsewhere has no media folder): video-to-video with the upscaler."""

    def work(pipeline: Any, progress: ProgressFn, should_cancel: CancelFn) -> Frames:
        started = time.perf_counter()
        upscaler = upscaler_of(pipeline)
        if upscaler is None:
            raise NoUpscaler("this GPU worker has no upscaler loaded (UPSCALE_MODEL)")
        if should_cancel():
            raise GenerationCancelled(0, request.steps)
        fitted = replace(request, frames=len(video))
        result = upscaler.generate_video2video(fitted, video, source.strength, on_step=progress,
                                               should_cancel=should_cancel, **previews(progress, request))
        if should_cancel():  # asked during the last step: nothing to deliver
            raise GenerationCancelled(request.steps, request.steps)
        log.info("upscaled job %d to %dx%d (%d frames, strength %.2f)", source.job_id, request.width,
                 request.height, len(video), source.strength)
        return frames_of(result, request, time.perf_counter() - started)

    return work
