"""The GPU-thread body of one job, or of a batch of same-shape jobs: generate (once more with smaller VAE chunks after
running out of GPU memory) and hand back the frames; the MP4 is encoded afterwards on a CPU pool (`Encoder`), so the
GPU thread starts its next job meanwhile.

Only the executor's workers run the work functions; they never touch the database, Discord or the event loop, and
close over plain values only, so a Ray executor can ship them to another process.
"""

from __future__ import annotations

import asyncio
import logging
import time
import traceback
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from bot.gpu.executor import CancelFn, ProgressFn, Work
from bot.gpu.previews import preview_callback, previews, with_cadence
from t2v import GenerationCancelled, GenerationRequest, encode_mp4

log = logging.getLogger(__name__)


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
        return encode_mp4(self.frames, self.fps, max_bytes=max_bytes)


@dataclass(frozen=True)
class Rendered:
    """A job's finished video: the MP4, and its frames to re-encode smaller if Discord refuses it."""

    video: bytes
    source: Frames

    @property
    def seed(self) -> int:
        return self.source.seed

    @property
    def notes(self) -> tuple[str, ...]:
        return self.source.notes

    @property
    def gpu_s(self) -> float:
        return self.source.gpu_s

    def smaller(self, max_bytes: int) -> bytes:
        """The video re-encoded to at most `max_bytes` (CPU work: call it off the event loop)."""
        return self.source.mp4(max_bytes)


class Encoder:
    """The CPU pool that turns frames into MP4s, so neither the event loop nor a GPU thread waits for libx264."""

    def __init__(self, workers: int = 2) -> None:
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="encode")

    async def encode(self, frames: Frames, max_bytes: int) -> Rendered:
        """The MP4 of `frames`, at most `max_bytes`; VideoTooLargeError when it cannot fit."""
        started = time.perf_counter()
        video = await asyncio.get_running_loop().run_in_executor(self._pool, frames.mp4, max_bytes)
        log.debug("encoded %d frames into %d bytes in %.2f s", len(frames.frames), len(video),
                  time.perf_counter() - started)
        return Rendered(video, frames)

    def close(self) -> None:
        """Finish the encodes under way and stop the pool."""
        self._pool.shutdown(wait=True)


def render_work(request: GenerationRequest) -> Work[Frames]:
    """The work for one job: generate its frames."""

    def work(pipeline: Any, progress: ProgressFn, should_cancel: CancelFn) -> Frames:
        started = time.perf_counter()
        if should_cancel():
            raise GenerationCancelled(0, request.steps)
        result = generate(pipeline, request, progress, should_cancel)
        if should_cancel():  # asked during the last step: nothing to deliver
            raise GenerationCancelled(request.steps, request.steps)
        return frames_of(result, request, time.perf_counter() - started)

    return work


def batch_work(requests: list[GenerationRequest]) -> Work[list[Frames]]:
    """The work for a batch of same-shape jobs: one `generate_batch`, frames per job (request order).

    `progress(step, total)` is a step of every member; `progress(step, total, preview, i)` concerns member i alone
    (its live preview, or its steps when the batch is rendered one job at a time). `should_cancel` stops the batch.
    """

    def work(pipeline: Any, progress: ProgressFn, should_cancel: CancelFn) -> list[Frames]:
        started = time.perf_counter()
        steps = requests[0].steps
        if should_cancel():
            raise GenerationCancelled(0, steps)
        results = generate_batch(pipeline, requests, progress, should_cancel)
        if should_cancel():  # asked during the last step: nothing to deliver
            raise GenerationCancelled(steps, steps)
        share = (time.perf_counter() - started) / len(requests)  # the batch's seconds per job, for the ETA
        return [frames_of(result, request, share) for result, request in zip(results, requests, strict=True)]

    return work


def frames_of(result: Any, request: GenerationRequest, wall_s: float) -> Frames:
    """One job's frames; a batch member's GPU time is its share of the batch it ran in."""
    gpu_s = float(result.timings.get("total_s", wall_s)) / result.timings.get("batch", 1)
    return Frames(result.frames, request.fps, result.seed, tuple(result.notes), gpu_s, wall_s)


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
    import torch  # lazily, like bot.gpu.executor

    try:
        torch.cuda.empty_cache()
    except Exception:
        log.exception("freeing the CUDA cache failed")
