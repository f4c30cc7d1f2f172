"""Kept videos are public: their files and the folders made for them are readable by every user (a web server or a
backup running as another user, the deployments' own users), whatever the umask; a write is never seen half done.
Each kept video gets a poster frame (a JPEG of its middle frame) beside it, made later for videos kept without one;
a video that gives none is kept all the same."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import av
import pytest

from bot.media import FILE_MODE, FOLDER_MODE, MediaStore
from tests.bot.helpers import tiny_mp4


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


def jpeg_pixel(path: Path, x: int, y: int) -> tuple[int, int, int]:
    """The RGB colour of one pixel of a JPEG, decoded with PyAV."""
    with av.open(str(path)) as container:
        image = next(container.decode(video=0)).to_ndarray(format="rgb24")
    return tuple(int(value) for value in image[y, x])


async def test_a_kept_video_gets_its_middle_frame_as_a_poster_readable_by_everyone(tmp_path: Path, private_umask):
    media = MediaStore(tmp_path / "media")
    await media.save(7, tiny_mp4())

    poster = media.poster_path(7)
    assert poster == media.root / "7.jpg" and poster.read_bytes().startswith(b"\xff\xd8") and mode(poster) == FILE_MODE
    red, green, blue = jpeg_pixel(poster, 60, 32)
    assert abs(red - 136) < 8 and green > 230 and abs(blue - 128) < 8  # frame 8 of 16: red 255·8/15, green at x=60
    assert sorted(p.name for p in media.root.iterdir()) == ["7.jpg", "7.mp4"]


async def test_a_video_kept_without_a_poster_gets_one_when_first_asked(tmp_path: Path):
    media = MediaStore(tmp_path / "media")
    media.root.mkdir()
    media.path(5).write_bytes(tiny_mp4())  # kept before posters were made

    assert await media.poster(5) == media.poster_path(5) and media.poster_path(5).is_file()
    assert await media.poster(6) is None  # no video, no poster


async def test_many_requests_at_once_for_a_missing_poster_decode_the_video_once(tmp_path: Path, monkeypatch):
    import asyncio

    import bot.media

    media = MediaStore(tmp_path / "media")
    media.root.mkdir()
    media.path(5).write_bytes(tiny_mp4())  # kept before posters were made
    decoded = []
    real = bot.media.poster_jpeg
    monkeypatch.setattr(bot.media, "poster_jpeg", lambda video: decoded.append(video) or real(video))

    posters = await asyncio.gather(*(media.poster(5) for _ in range(20)))  # a gallery page's visitors at once

    assert posters == [media.poster_path(5)] * 20 and len(decoded) == 1


async def test_a_video_that_gives_no_poster_is_kept_and_not_decoded_again(tmp_path: Path, caplog):
    media = MediaStore(tmp_path / "media")
    await media.save(4, b"not an mp4")
    caplog.clear()

    assert media.has(4) and not media.poster_path(4).exists()
    assert await media.poster(4) is None and not caplog.records  # tried once, when it was kept
    await media.save(4, tiny_mp4())  # kept again: a new chance
    assert await media.poster(4) == media.poster_path(4)


async def test_deleting_a_video_removes_its_poster(tmp_path: Path):
    media = MediaStore(tmp_path / "media")
    await media.save(3, tiny_mp4())

    assert await media.delete(3) is True
    assert list(media.root.iterdir()) == []


async def test_a_video_deleted_while_its_poster_is_made_leaves_no_poster_behind(tmp_path: Path, monkeypatch):
    """A visitor's first request for an old video's poster, and its owner's 🗑 Delete meanwhile: no frame of the
    deleted video stays on disk (nothing would ever serve or sweep it)."""
    import bot.media

    media = MediaStore(tmp_path / "media")
    media.root.mkdir()
    media.path(5).write_bytes(tiny_mp4())  # kept before posters were made
    real = bot.media.poster_jpeg

    def decoded_then_deleted(video: Path) -> bytes:
        jpeg = real(video)
        media.path(5).unlink()  # 🗑 Delete, in its order: the video, then its poster (not made yet)
        media.poster_path(5).unlink(missing_ok=True)
        return jpeg

    monkeypatch.setattr(bot.media, "poster_jpeg", decoded_then_deleted)

    assert await media.poster(5) is None
    assert list(media.root.iterdir()) == []
