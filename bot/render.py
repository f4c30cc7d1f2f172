"""The GPU-thread body of one job, or of a batch of same-shape jobs: generate (once more with smaller VAE chunks after
running out of GPU memory), then encode an MP4 per job that fits its upload limit.

Only the executor's workers run this; it never touches the database, Discord or the event loop. The work functions
close over plain values only, so a Ray executor can ship them to another process.
"""

from __future__ import annotations

import logging
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from bot.executor import CancelFn, ProgressFn, Work
from bot.previews import preview_callback, previews, with_cadence
from t2v import GenerationCancelled, GenerationRequest, encode_mp4

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Rendered:
    """What the GPU thread hands back to the loop."""

    video: bytes
    frames: np.ndarray = field(repr=False)  # uint8 [F, H, W, 3], kept to re-encode smaller if Discord refuses the MP4
    fps: int
    seed: int
    notes: tuple[str, ...]
    gpu_s: float  # the pipeline's own total
    wall_s: float  # generate + encode, for the ETA estimate

    def smaller(self, max_bytes: int) -> bytes:
        """The video re-encoded to at most `max_bytes` (CPU work: call it off the event loop)."""
        return encode_mp4(self.frames, self.fps, max_bytes=max_bytes)


def render_work(request: GenerationRequest, max_bytes: int) -> Work[Rendered]:
    """The work for one job: generate, then encode an MP4 of at most `max_bytes`."""

    def work(pipeline: Any, progress: ProgressFn, should_cancel: CancelFn) -> Rendered:
        started = time.perf_counter()
        if should_cancel():
            raise GenerationCancelled(0, request.steps)
        result = generate(pipeline, request, progress, should_cancel)
        if should_cancel():  # asked during the last step: skip the encode
            raise GenerationCancelled(request.steps, request.steps)
        video = encode_mp4(result.frames, request.fps, max_bytes=max_bytes)
        return _rendered(result, request, video, time.perf_counter() - started)

    return work


def batch_work(requests: list[GenerationRequest], max_bytes: list[int]) -> Work[list[Rendered]]:
    """The work for a batch of same-shape jobs: one `generate_batch`, then one MP4 per job (request order).

    `progress(step, total)` is a step of every member; `progress(step, total, preview, i)` concerns member i alone
    (its live preview, or its steps when the batch is rendered one job at a time). `should_cancel` stops the batch.
    """

    def work(pipeline: Any, progress: ProgressFn, should_cancel: CancelFn) -> list[Rendered]:
        started = time.perf_counter()
        steps = requests[0].steps
        if should_cancel():
            raise GenerationCancelled(0, steps)
        results = generate_batch(pipeline, requests, progress, should_cancel)
        if should_cancel():  # asked during the last step: skip the encodes
            raise GenerationCancelled(steps, steps)
        videos = [encode_mp4(result.frames, request.fps, max_bytes=limit)
                  for result, request, limit in zip(results, requests, max_bytes, strict=True)]
        share = (time.perf_counter() - started) / len(requests)  # the batch's seconds per job, for the ETA
        return [_rendered(result, request, video, share)
                for result, request, video in zip(results, requests, videos, strict=True)]

    return work


def _rendered(result: Any, request: GenerationRequest, video: bytes, wall_s: float) -> Rendered:
    """One member's video; its GPU time is its share of the batch it ran in."""
    gpu_s = float(result.timings.get("total_s", wall_s)) / result.timings.get("batch", 1)
    return Rendered(video, result.frames, request.fps, result.seed, tuple(result.notes), gpu_s, wall_s)


def generate(pipeline: Any, request: GenerationRequest, progress: ProgressFn, should_cancel: CancelFn) -> Any:
    """`pipeline.generate`; after running out of GPU memory, free the cache, halve the VAE chunk and try once more.

    The smaller chunk stays: the next jobs on this GPU decode that way too (a little slower, less memory).
    """
    return _retrying(pipeline, lambda: pipeline.generate(request, on_step=progress, should_cancel=should_cancel,
                                                         **previews(progress, request)))


def generate_batch(pipeline: Any, requests: list[GenerationRequest], progress: ProgressFn,
                   should_cancel: CancelFn) -> list[Any]:
    """`pipeline.generate_batch` with `generate`'s retry; a batch out of GPU memory twice is rendered again one job
    at a time (each with its own retry), so its members still get their videos."""
    try:
        return _retrying(pipeline, lambda: pipeline.generate_batch(requests, on_step=progress,
                                                                   should_cancel=should_cancel,
                                                                   **_batch_previews(progress, requests)))
    except Exception as error:
        if not is_out_of_memory(error):
            raise
    log.warning("a batch of %d videos ran out of GPU memory twice; rendering them one at a time", len(requests))
    return [generate(pipeline, request, _member(progress, i), should_cancel) for i, request in enumerate(requests)]


def _member(progress: ProgressFn, index: int) -> ProgressFn:
    """A batch's progress function narrowed to one member: (step, total[, preview]) → (step, total, preview, i)."""
    return lambda step, total, preview=None: progress(step, total, preview, index)


def _batch_previews(progress: ProgressFn, requests: list[GenerationRequest]) -> dict[str, Callable[..., None]]:
    """`on_preview=` for `generate_batch`: each member's GIF from its own frames of [n, F, h, 64, 3], when the
    jobs get previews at all."""
    members = [preview_callback(_member(progress, i), request.fps) for i, request in enumerate(requests)]

    def on_preview(step: int, total: int, frames: np.ndarray) -> None:
        for callback, own in zip(members, frames, strict=True):
            callback(step, total, own)

    return with_cadence(on_preview, requests[0].steps)


def _retrying(pipeline: Any, call: Callable[[], Any]) -> Any:
    """`call()`; after running out of GPU memory, free the cache, halve the pipeline's VAE chunk and call once more."""
    try:
        return _attempt(pipeline, call)
    except Exception as error:
        if not is_out_of_memory(error):
            raise
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
    chunk = getattr(pipeline, "vae_chunk", None)
    if isinstance(chunk, int):
        pipeline.vae_chunk = chunk = max(chunk // 2, 1)
    log.warning("out of GPU memory (%s); trying once more, decoding %s frames at a time", reason, chunk)
    return _attempt(pipeline, call)


def _attempt(pipeline: Any, call: Callable[[], Any]) -> Any:
    """One generate call; on out-of-memory the failed attempt's tensors are dropped and the cache freed."""
    try:
        return call()
    except Exception as error:
        if is_out_of_memory(error):
            traceback.clear_frames(error.__traceback__)  # the finished frames' locals hold the failed attempt's tensors
            free_gpu_memory(pipeline)
        raise


def is_out_of_memory(error: BaseException) -> bool:
    """torch's OutOfMemoryError (matched by name: the bot core imports without torch) or a CUDA 'out of memory'."""
    if any(cls.__name__ == "OutOfMemoryError" for cls in type(error).__mro__):
        return True
    return isinstance(error, RuntimeError) and "out of memory" in str(error).lower()


def free_gpu_memory(pipeline: Any) -> None:
    """Give the caching allocator's free blocks back to the GPU, when the pipeline runs on CUDA."""
    if getattr(getattr(pipeline, "device", None), "type", None) != "cuda":
        return
    import torch  # lazily, like bot.executor

    try:
        torch.cuda.empty_cache()
    except Exception:
        log.exception("freeing the CUDA cache failed")
