"""The GPU-thread body of one job: generate (once more with smaller VAE chunks after running out of GPU memory), then
encode an MP4 that fits the upload limit.

Only `bot.executor`'s worker threads run this; it never touches the database, Discord or the event loop.
"""

from __future__ import annotations

import logging
import time
import traceback
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from bot.executor import CancelFn, ProgressFn, Work
from bot.previews import previews
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
        gpu_s = float(result.timings.get("total_s", time.perf_counter() - started))
        return Rendered(video, result.frames, request.fps, result.seed, tuple(result.notes), gpu_s,
                        time.perf_counter() - started)

    return work


def generate(pipeline: Any, request: GenerationRequest, progress: ProgressFn, should_cancel: CancelFn) -> Any:
    """`pipeline.generate`; after running out of GPU memory, free the cache, halve the VAE chunk and try once more.

    The smaller chunk stays: the next jobs on this GPU decode that way too (a little slower, less memory).
    """
    try:
        return _attempt(pipeline, request, progress, should_cancel)
    except Exception as error:
        if not is_out_of_memory(error):
            raise
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
    chunk = getattr(pipeline, "vae_chunk", None)
    if isinstance(chunk, int):
        pipeline.vae_chunk = chunk = max(chunk // 2, 1)
    log.warning("out of GPU memory (%s); trying once more, decoding %s frames at a time", reason, chunk)
    return _attempt(pipeline, request, progress, should_cancel)


def _attempt(pipeline: Any, request: GenerationRequest, progress: ProgressFn, should_cancel: CancelFn) -> Any:
    """One `generate` call; on out-of-memory the failed attempt's tensors are dropped and the cache freed."""
    try:
        return pipeline.generate(request, on_step=progress, should_cancel=should_cancel, **previews(progress, request))
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
