"""The media directory: delivered MP4s of public jobs, one `<job id>.mp4` each, for the showcase and the gallery.

Every public video is saved when it is delivered (a nomination may come days later, when Discord's attachment
URL has expired); private videos are never written; 🗑 Delete removes the file. Writes go to a temporary file
renamed into place, so the gallery never serves half a video.
"""

from __future__ import annotations

import asyncio
import logging
import os
import tempfile
from pathlib import Path

log = logging.getLogger(__name__)


class MediaStore:
    """MP4 files by job id under one directory; the blocking file work runs in a thread."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)

    def path(self, job_id: int) -> Path:
        """Where the video of this job is (or would be) kept."""
        if job_id < 1:
            raise ValueError(f"job ids start at 1, got {job_id}")
        return self.root / f"{job_id}.mp4"

    def has(self, job_id: int) -> bool:
        """Whether the video of this job is kept."""
        return self.path(job_id).is_file()

    async def save(self, job_id: int, video: bytes) -> Path:
        """Write the job's MP4 atomically (replacing an older one); returns its path."""
        path = await asyncio.to_thread(self._write, self.path(job_id), video)
        log.info("job %d: kept %d bytes at %s", job_id, len(video), path)
        return path

    async def delete(self, job_id: int) -> bool:
        """Remove the job's MP4; False when there was none."""
        path = self.path(job_id)
        try:
            await asyncio.to_thread(path.unlink)
        except FileNotFoundError:
            return False
        log.info("job %d: removed %s", job_id, path)
        return True

    @staticmethod
    def _write(path: Path, data: bytes) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}-", suffix=".part")
        try:
            with os.fdopen(handle, "wb") as file:
                file.write(data)
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
        return path
