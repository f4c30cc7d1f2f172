"""MP4s off the GPU threads: a CPU pool encodes each job's frames while its worker already renders the next job.

Discord may refuse an MP4 as too large even under the upload limit it announced; `Rendered.smaller` then re-encodes
it at the size the delivery asks for. (Only bot.gpu and t2v are imported: benchmarks/scaleout.py uses the encoder on
a GPU machine without the bot's database.)
"""

from __future__ import annotations

import asyncio
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from bot.gpu.work import Frames

log = logging.getLogger(__name__)

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
