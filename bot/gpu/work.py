"""The GPU-thread body of one job, of a batch of same-shape jobs, or of an upscale: generate and hand back the frames.

Out of GPU memory, a generation is tried once more with smaller VAE chunks (and a batch then one job at a time); a
second time it fails with `OutOfGPUMemory`. The MP4 is encoded afterwards on the bot's CPU pool (bot.jobs.encoder),
so the GPU thread starts its next job meanwhile. Only the executor's workers run these functions; they never touch
the database, Discord or the event loop, and close over plain values only, so a Ray executor can ship them to
another process.
"""

from __future__ import annotations

import logging
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from bot.errors import NoUpscaler, OutOfGPUMemory
from bot.gpu.compiles import label
from bot.gpu.executor import CancelFn, ProgressFn, Work
from bot.gpu.previews import Cadence, cadence, preview_maker, previews
from bot.gpu.styles import styled, use_style
from t2v.config import SamplerDefaults
from t2v.errors import GenerationCancelled
from t2v.request import GenerationRequest
from t2v.sizes import frame_text

if TYPE_CHECKING:
    import numpy as np

    from bot.gpu.models import Models
    from t2v.pipeline import VideoPipeline

log = logging.getLogger(__name__)

IDLE_PROMPT = "a render while idle, to capture a compiled shape's CUDA graph"


@dataclass(frozen=True)
class Frames:
    """What the GPU thread hands back for one job: its frames, not yet an MP4."""

    frames: np.ndarray = field(repr=False)  # uint8 [F, H, W, 3]
    fps: int
    seed: int
    notes: tuple[str, ...]
    gpu_s: float  # the pipeline's own total (a batch member: its share)
    wall_s: float  # on the GPU thread (a batch member: its share), for the ETA estimate

    def mp4(self, max_bytes: int) -> bytes:
        """The video as an MP4 of at most `max_bytes` (CPU work: call it off the event loop and the GPU thread)."""
        from t2v.video import encode_mp4  # lazily: PyAV

        return encode_mp4(self.frames, self.fps, max_bytes=max_bytes)


def render_work(request: GenerationRequest, style: str | None = None) -> Work[Frames]:
    """The work for one job: generate its frames, in `style` (bot.gpu.styles; None: none)."""

    def work(models: Models, progress: ProgressFn, should_cancel: CancelFn) -> Frames:
        started = time.perf_counter()
        _stop_if_asked(should_cancel, 0, request.steps)
        shown = styled(request, use_style(models.pipeline, models.styles, style))
        result = generate(models.pipeline, shown, progress, should_cancel, preview_interval_s=models.preview_interval_s)
        _stop_if_asked(should_cancel, request.steps, request.steps)  # asked during the last step: nothing to deliver
        return frames_of(result, request, time.perf_counter() - started)

    return work


def batch_work(requests: list[GenerationRequest], style: str | None = None) -> Work[list[Frames]]:
    """The work for a batch of same-shape jobs of one style: one `generate_batch`, frames per job (request order).

    `progress(step, total)` is a step of every member; `progress(step, total, preview, i)` concerns member i alone
    (its live preview, or its steps when the batch is rendered one job at a time). `should_cancel` stops the batch.
    """

    def work(models: Models, progress: ProgressFn, should_cancel: CancelFn) -> list[Frames]:
        started = time.perf_counter()
        steps = requests[0].steps
        _stop_if_asked(should_cancel, 0, steps)
        applied = use_style(models.pipeline, models.styles, style)
        results = generate_batch(models.pipeline, [styled(request, applied) for request in requests], progress,
                                 should_cancel, preview_interval_s=models.preview_interval_s)
        _stop_if_asked(should_cancel, steps, steps)
        share = (time.perf_counter() - started) / len(requests)  # the batch's seconds per job, for the ETA
        return [frames_of(result, request, share) for result, request in zip(results, requests, strict=True)]

    return work


def upscale_work(request: GenerationRequest, video: np.ndarray, strength: float,
                 style: str | None = None) -> Work[Frames]:
    """An upscale of `video` (a kept MP4's frames, decoded on the bot's host: a Ray worker elsewhere has no media
    folder) at the request's size: video-to-video with the upscaler, re-running `strength` of the steps. A style's
    prefix and suffix are kept in the prompt; its LoRA is T2V_MODEL's and is not applied to the upscaler."""

    def work(models: Models, progress: ProgressFn, should_cancel: CancelFn) -> Frames:
        started = time.perf_counter()
        if models.upscaler is None:
            raise NoUpscaler("this GPU worker has no upscaler loaded (UPSCALE_MODEL)")
        _stop_if_asked(should_cancel, 0, request.steps)
        fitted = replace(styled(request, models.styles.get(style or "")), frames=len(video))
        shown = previews(progress, request.fps, models.preview_interval_s)
        result = models.upscaler.generate_video2video(fitted, video, strength, on_step=progress,
                                                      should_cancel=should_cancel, **shown)
        _stop_if_asked(should_cancel, request.steps, request.steps)
        log.info("upscaled to %s (%d frames, strength %.2f)", frame_text(request.width, request.height), len(video),
                 strength)
        return frames_of(result, request, time.perf_counter() - started)

    return work


def warm_up_work() -> Work[float | None]:
    """A worker's first work, before any job's: one render of its `Models.warm_up` request (the default /video, one
    step; bot.gpu.source), so that the process's one-off first CUDA work is not a user's first video. The seconds it
    took; None for a worker with nothing to warm up (the CPU)."""

    def work(models: Models, progress: ProgressFn, should_cancel: CancelFn) -> float | None:
        if models.warm_up is None or should_cancel():  # nothing to warm up, or the bot is stopping
            return None
        started = time.perf_counter()
        generate(models.pipeline, models.warm_up, progress, should_cancel, preview_interval_s=models.preview_interval_s)
        return time.perf_counter() - started

    return work


def capture_while_idle(models: Models, should_stop: CancelFn) -> None:
    """A worker's idle work (bot.gpu.executor's `idle`): one step of a video of each shape whose compiled UNet has
    no CUDA graph yet (t2v.compiled.FastUNet.uncaptured), so that the shape's first job does not pay the capture: a
    batch of 16 fp8 videos on an H100 waited 2.8 s for it (docs/perf-notes.md row 77). The compile thread finishes
    shapes while the worker waits for jobs: the default /video's at start, at batch 1 and BATCH_MAX, and every new
    shape a job asked for. Each shape once: a capture that fails, or a graph forgotten later (least recently used),
    is its next job's again, as before. A job that arrives (`should_stop()`) waits at most for the capture under way
    (seconds); the shapes left are rendered at the next idle moment."""
    unet = getattr(models.pipeline, "unet", None)
    uncaptured = getattr(unet, "uncaptured", None)  # only the fast path's UNet (t2v.compiled.FastUNet) compiles
    for shape in uncaptured() if uncaptured is not None else []:
        if should_stop():
            return
        if shape in models.idle_rendered:
            continue
        models.idle_rendered.add(shape)
        started = time.perf_counter()
        try:
            generate_batch(models.pipeline, idle_requests(shape), lambda *_: None, should_stop,
                           preview_interval_s=models.preview_interval_s)
        except GenerationCancelled:  # a job came first: this shape waits for the next idle moment
            models.idle_rendered.discard(shape)
            return
        log.info("rendered %s while idle to capture its CUDA graph (%.1f s)", label(shape),
                 time.perf_counter() - started)


def idle_requests(shape: Any) -> list[GenerationRequest]:
    """The videos of one step that make a UNet call of `shape` (bot.gpu.compiles.label's reading of it): guided, two
    rows a video, when its row count is even (two unguided videos make the same call), else unguided."""
    rows, _, frames, height, width = shape[0]
    guided = rows % 2 == 0
    request = GenerationRequest(IDLE_PROMPT, seed=0, steps=1, width=width * 8, height=height * 8, frames=frames,
                                guidance=SamplerDefaults.guidance if guided else 1.0)
    return [request] * (rows // 2 if guided else rows)


def _stop_if_asked(should_cancel: CancelFn, step: int, total: int) -> None:
    """GenerationCancelled when the job was asked to stop (before it starts, or during its last step)."""
    if should_cancel():
        raise GenerationCancelled(step, total)


def frames_of(result: Any, request: GenerationRequest, wall_s: float) -> Frames:
    """One job's frames; a batch member's GPU time is its share of the batch it ran in."""
    gpu_s = float(result.timings.get("total_s", wall_s)) / result.timings.get("batch", 1)
    return Frames(result.frames, request.fps, result.seed, tuple(result.notes), gpu_s, wall_s)


def generate(pipeline: VideoPipeline, request: GenerationRequest, progress: ProgressFn, should_cancel: CancelFn, *,
             preview_interval_s: float) -> Any:
    """`pipeline.generate`, a live preview at most every `preview_interval_s`; after running out of GPU memory, free
    the cache, halve the VAE chunk and try once more.

    The smaller chunk stays: the next jobs on this GPU decode that way too (a little slower, less memory).
    """
    return _retrying(pipeline, lambda: pipeline.generate(request, on_step=progress, should_cancel=should_cancel,
                                                         **previews(progress, request.fps, preview_interval_s)))


def generate_batch(pipeline: VideoPipeline, requests: list[GenerationRequest], progress: ProgressFn,
                   should_cancel: CancelFn, *, preview_interval_s: float) -> list[Any]:
    """`pipeline.generate_batch` with `generate`'s retry and previews; a batch out of GPU memory twice is rendered
    again one job at a time (each with its own retry), so its members still get their videos."""
    try:
        return _retrying(pipeline, lambda: pipeline.generate_batch(
            requests, on_step=progress, should_cancel=should_cancel,
            on_preview=_batch_previews(progress, requests, preview_interval_s)))
    except OutOfGPUMemory:
        log.warning("a batch of %d videos ran out of GPU memory twice; rendering them one at a time", len(requests))
    return [generate(pipeline, request, _member(progress, i), should_cancel, preview_interval_s=preview_interval_s)
            for i, request in enumerate(requests)]


def _member(progress: ProgressFn, index: int) -> ProgressFn:
    """A batch's progress function narrowed to one member: (step, total[, preview]) → (step, total, preview, i)."""
    return lambda step, total, preview=None: progress(step, total, preview, index)


def _batch_previews(progress: ProgressFn, requests: list[GenerationRequest], interval_s: float) -> Cadence:
    """`on_preview=` for `generate_batch`: each member's preview from its own frames of [n, F, h, 64, 3]."""
    members = [preview_maker(_member(progress, i), request.fps) for i, request in enumerate(requests)]

    def on_preview(step: int, total: int, frames: np.ndarray) -> None:
        for member, own in zip(members, frames, strict=True):
            member(step, total, own)

    return cadence(on_preview, interval_s)


def _retrying(pipeline: VideoPipeline, call: Callable[[], Any]) -> Any:
    """`call()`; after running out of GPU memory, free the cache, halve the pipeline's VAE chunk and call once more;
    OutOfGPUMemory when that runs out too."""
    try:
        return _attempt(pipeline, call)
    except OutOfGPUMemory as error:
        reason = str(error)
    chunk = getattr(pipeline, "vae_chunk", None)
    if isinstance(chunk, int):
        pipeline.vae_chunk = chunk = max(chunk // 2, 1)
    log.warning("out of GPU memory (%s); trying once more, decoding %s frames at a time", reason, chunk)
    return _attempt(pipeline, call)


def _attempt(pipeline: VideoPipeline, call: Callable[[], Any]) -> Any:
    """One generate call; out of GPU memory, the failed attempt's tensors are dropped, the cache freed, and
    OutOfGPUMemory raised from torch's error."""
    try:
        return call()
    except Exception as error:
        if not _out_of_memory(error):
            raise
        traceback.clear_frames(error.__traceback__)  # the finished frames' locals hold the failed attempt's tensors
        free_gpu_memory(pipeline)
        first_line = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise OutOfGPUMemory(first_line) from error


def _out_of_memory(error: Exception) -> bool:
    """torch's OutOfMemoryError (torch is loaded wherever one can be raised: this thread holds a pipeline)."""
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(error, torch.cuda.OutOfMemoryError)


def free_gpu_memory(pipeline: VideoPipeline) -> None:
    """Give the caching allocator's free blocks back to the GPU, when the pipeline runs on CUDA."""
    if getattr(getattr(pipeline, "device", None), "type", None) != "cuda":
        return
    import torch  # loaded already: the pipeline is on CUDA

    try:
        torch.cuda.empty_cache()
    except Exception:
        log.exception("freeing the CUDA cache failed")
