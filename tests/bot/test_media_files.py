"""Kept videos are public: their files and the folders made for them are readable by every user (a web server or a
backup running as another user, the deployments' own users), whatever the umask; a write is never seen half done."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.media import FILE_MODE, FOLDER_MODE, MediaStore


@pytest.fixture
def private_umask() -> Iterator[None]:
    """systemd's UMask=0077 (deploy/videobot.service): new files 0600 and folders 0700 unless made otherwise."""
    before = os.umask(0o077)
    try:
        yield
    finally:
        os.umask(before)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


async def test_a_kept_video_and_the_folders_made_for_it_are_readable_by_everyone(tmp_path: Path, private_umask):
    media = MediaStore(tmp_path / "data" / "media")
    path = await media.save(7, b"\x00\x00\x00\x18ftypisom")

    assert path.read_bytes() == b"\x00\x00\x00\x18ftypisom"
    assert (mode(path), mode(media.root), mode(media.root.parent)) == (FILE_MODE, FOLDER_MODE, FOLDER_MODE)
    assert FILE_MODE == 0o644 and FOLDER_MODE == 0o755
    assert sorted(p.name for p in media.root.iterdir()) == ["7.mp4"]  # no temporary file left


async def test_a_folder_that_was_there_keeps_its_own_mode(tmp_path: Path, private_umask):
    root = tmp_path / "media"
    root.mkdir()
    root.chmod(0o750)
    path = await MediaStore(root).save(3, b"mp4")

    assert (mode(path), mode(root)) == (FILE_MODE, 0o750)
