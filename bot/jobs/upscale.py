"""⬆ Upscale, the loop side: what an upscale job is, and the frames of the kept MP4 it re-renders.

An upscale is a job like any other (/video's queue, caps and quota; it counts UPSCALE_COST): the source's prompt and
settings at the upscaler's size for its aspect, re-rendering UPSCALE_STRENGTH of the steps. When it runs, the kept
MP4 is decoded here, on the bot's host (a Ray worker elsewhere has no media folder); bot.gpu.work.upscale_work does
the video-to-video on the GPU.
"""

from __future__ import annotations

import io
import logging
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from bot.errors import SourceVideoGone
from bot.gpu.models import ModelInfo
from bot.jobs.spec import JobSpec, UpscaleOf
from storage import JobRecord

if TYPE_CHECKING:
    import numpy as np

log = logging.getLogger(__name__)


def upscale_spec(job: JobRecord, info: ModelInfo, video: Path, *, strength: float, cost: int,
                 prompt: str | None = None) -> JobSpec:
    """An upscale of `job` (its prompt, or `prompt`; a new seed) at the upscaler's size for the job's aspect."""
    base = JobSpec.of_job(job).again(job.id, prompt)
    width, height = info.upscale_size(base.aspect)
    request = replace(base.request, width=width, height=height)
    return replace(base, request=request, cost=cost, upscale=UpscaleOf(job.id, str(video), strength), origin=None)


def source_frames(path: Path) -> np.ndarray:
    """The frames of the kept MP4 an upscale re-renders, uint8 [F, H, W, 3] (CPU work: call it in a thread);
    SourceVideoGone when the file is gone or holds no frames."""
    import av  # lazily: PyAV and numpy are needed only once an upscale runs
    import numpy as np

    try:
        mp4 = path.read_bytes()
    except FileNotFoundError:
        raise SourceVideoGone(f"{path} is no longer kept") from None
    with av.open(io.BytesIO(mp4)) as container:
        frames = [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]
    if not frames:
        raise SourceVideoGone("the kept video holds no frames")
    return np.stack(frames)
