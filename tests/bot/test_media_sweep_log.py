"""What a retention sweep of the media directory says in the log: the files it removed, the first ones by name and
the rest counted, so an operator reading it knows how many went."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from bot.media import MediaStore

OLD = 1_700_000_000.0  # a write time long before the sweep's cut-off
CUT_OFF = OLD + 86_400.0


def old_video(media: MediaStore, job_id: int) -> None:
    path = media.root / f"{job_id}.mp4"
    path.write_bytes(b"\x00\x00\x00\x18ftypisom")
    os.utime(path, (OLD, OLD))


@pytest.mark.parametrize(("count", "counted"), [(57, " (and 37 more)"), (20, "")])
async def test_a_sweep_names_the_first_twenty_videos_and_counts_the_rest(count, counted, tmp_path: Path, caplog):
    media = MediaStore(tmp_path / "media")
    media.root.mkdir()
    for job_id in range(1, count + 1):
        old_video(media, job_id)

    with caplog.at_level(logging.INFO, logger="bot.media"):
        swept = await media.sweep(CUT_OFF, keep=set())

    assert swept.videos == list(range(1, count + 1))
    named = ", ".join(map(str, range(1, min(count, 20) + 1)))
    assert caplog.messages == [
        f"removed the kept videos of {count} jobs older than the retention ({named}{counted})"]
