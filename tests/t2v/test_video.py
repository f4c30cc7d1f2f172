"""encode_mp4: what Discord's inline player needs (H.264, yuv420p, moov first), fidelity, and fitting a size limit;
write_whole: whole or not at all, and never over a file that appeared meanwhile unless asked."""

import errno
import io
import os
import struct
import types

import av
import numpy as np
import pytest

from t2v import InvalidRequest, VideoTooLargeError, WriteError, encode_mp4
from t2v.preflight import numbered
from t2v.video import write_whole
from tests.t2v.helpers import full_disk


def _decode(data: bytes) -> tuple[np.ndarray, dict]:
    """Decode MP4 bytes back to uint8 RGB frames [F, H, W, 3] and the stream facts a player sees."""
    with av.open(io.BytesIO(data)) as container:
        stream = container.streams.video[0]
        info = {
            "codec": stream.codec_context.name,
            "pix_fmt": stream.codec_context.pix_fmt,
            "width": stream.codec_context.width,
            "height": stream.codec_context.height,
            "rate": stream.average_rate,
        }
        frames = np.stack([frame.to_ndarray(format="rgb24") for frame in container.decode(stream)])
    return frames, info


def _top_level_boxes(data: bytes) -> list[str]:
    """Names of the top-level ISO-BMFF boxes, in file order."""
    names, pos = [], 0
    while pos + 8 <= len(data):
        size, name = struct.unpack(">I4s", data[pos : pos + 8])
        if size == 1:
            size = struct.unpack(">Q", data[pos + 8 : pos + 16])[0]
        names.append(name.decode("ascii"))
        if size == 0:
            break  # box runs to the end of the file
        pos += size
    return names


def _gradient(frames: int = 4, height: int = 64, width: int = 96) -> np.ndarray:
    """Smooth colour ramps that drift a little per frame: the easy case a good encode must keep."""
    f, y, x = np.mgrid[0:frames, 0:height, 0:width]
    red = (x + 3 * f) % width * 255 // (width - 1)
    green = y * 255 // (height - 1)
    blue = (x + y) * 255 // (width + height - 2)
    return np.stack([red, green, blue], axis=-1).astype(np.uint8)


def _noise(frames: int = 16, size: int = 256) -> np.ndarray:
    """Seeded uniform noise: the worst case for compression."""
    return np.random.default_rng(0).integers(0, 256, (frames, size, size, 3), dtype=np.uint8)


def test_default_encode_is_h264_yuv420p_with_requested_frames_size_and_8_fps():
    frames, info = _decode(encode_mp4(_gradient(frames=16, height=64, width=128)))
    assert info == {"codec": "h264", "pix_fmt": "yuv420p", "width": 128, "height": 64, "rate": 8}
    assert frames.shape == (16, 64, 128, 3)


def test_other_fps_is_written_to_the_stream():
    frames, info = _decode(encode_mp4(_gradient(frames=5), fps=24))
    assert info["rate"] == 24
    assert len(frames) == 5


def test_single_frame_encodes():
    frames, _ = _decode(encode_mp4(_gradient(frames=1)))
    assert frames.shape == (1, 64, 96, 3)


def test_moov_box_comes_before_mdat_so_playback_starts_before_download_ends():
    boxes = _top_level_boxes(encode_mp4(_gradient()))
    assert "moov" in boxes and "mdat" in boxes, boxes
    assert boxes.index("moov") < boxes.index("mdat"), boxes


def test_smooth_gradient_survives_the_round_trip():
    original = _gradient()
    decoded, _ = _decode(encode_mp4(original))
    error = np.abs(decoded.astype(np.int16) - original.astype(np.int16))
    assert error.mean() < 3.0, error.mean()


def test_same_frames_give_the_same_bytes_at_default_quality_and_when_fitting():
    assert encode_mp4(_gradient()) == encode_mp4(_gradient())
    small_noise = _noise(frames=8, size=128)
    assert encode_mp4(small_noise, max_bytes=20_000) == encode_mp4(small_noise, max_bytes=20_000)


def test_max_bytes_lowers_the_bitrate_until_the_video_fits():
    noise, limit = _noise(), 60_000
    assert len(encode_mp4(noise)) > limit
    data = encode_mp4(noise, max_bytes=limit)
    assert len(data) <= limit
    frames, info = _decode(data)
    assert frames.shape == noise.shape  # fitted by bitrate, never by dropping frames or pixels
    assert info["codec"] == "h264"
    assert _top_level_boxes(data).index("moov") < _top_level_boxes(data).index("mdat")


def test_max_bytes_that_already_fits_keeps_the_default_quality():
    gradient = _gradient()
    assert encode_mp4(gradient, max_bytes=10_000_000) == encode_mp4(gradient)


def test_impossible_max_bytes_raises_naming_the_limit_and_the_size_reached():
    with pytest.raises(VideoTooLargeError, match=r"over the limit of 1000 bytes") as caught:
        encode_mp4(_noise(), max_bytes=1000)  # the MP4 header alone is most of that
    assert caught.value.max_bytes == 1000
    assert caught.value.size > 1000
    assert str(caught.value.size) in str(caught.value)
    assert isinstance(caught.value, ValueError)


@pytest.mark.parametrize(
    ("frames", "named"),
    [
        (np.zeros((2, 64, 64, 3), dtype=np.float32), "float32"),
        (np.zeros((64, 64, 3), dtype=np.uint8), "[64, 64, 3]"),
        (np.zeros((2, 64, 64, 4), dtype=np.uint8), "[2, 64, 64, 4]"),
        (np.zeros((0, 64, 64, 3), dtype=np.uint8), "got 0"),
        (np.zeros((2, 63, 64, 3), dtype=np.uint8), "height 63, width 64"),
        (np.zeros((2, 64, 65, 3), dtype=np.uint8), "height 64, width 65"),
        ([[[[0, 0, 0]]]], "list"),
    ],
)
def test_bad_frames_raise_invalid_request_naming_the_value(frames, named):
    with pytest.raises(InvalidRequest, match=r"frame") as caught:
        encode_mp4(frames)
    assert named in str(caught.value)


@pytest.mark.parametrize("fps", [0, 61, -8, 7.5, True, "8", None])
def test_fps_outside_1_to_60_raises_naming_the_value_and_range(fps):
    with pytest.raises(InvalidRequest, match=r"from 1 to 60") as caught:
        encode_mp4(_gradient(frames=1), fps=fps)
    assert repr(fps) in str(caught.value)


@pytest.mark.parametrize("max_bytes", [0, -1, "100", 1.5, True])
def test_a_max_bytes_that_is_no_positive_whole_number_raises(max_bytes):
    with pytest.raises(InvalidRequest, match=rf"got {max_bytes!r}"):  # a ValueError too, as before
        encode_mp4(_gradient(frames=1), max_bytes=max_bytes)


def test_numpy_integers_are_taken_as_fps_and_max_bytes():
    frames = _gradient(frames=1)
    assert encode_mp4(frames, fps=np.int64(8), max_bytes=np.int64(10_000_000)) == encode_mp4(frames)


def test_two_writers_of_one_path_both_succeed_and_leave_no_part(tmp_path, monkeypatch):
    """A second write of the path starts while the first is writing its part (as another thread would): each has its
    own part file, so neither fails nor removes the other's; the last to finish is what the path holds."""
    import t2v.video

    target, nested = tmp_path / "x.mp4", []

    def fdopen(descriptor: int, mode: str):
        if not nested:  # the first writer has its part open: the second one runs now, start to end
            nested.append(None)
            nested[0] = write_whole(target, b"second")
        return os.fdopen(descriptor, mode)

    monkeypatch.setattr(t2v.video, "os", types.SimpleNamespace(**{**vars(os), "fdopen": fdopen}))
    assert write_whole(target, b"first") == target and nested == [target]
    assert target.read_bytes() == b"first" and [path.name for path in tmp_path.iterdir()] == ["x.mp4"]


def test_a_part_left_by_this_process_is_not_removed_by_a_later_write(tmp_path):
    stale = tmp_path / f".x.mp4.{os.getpid()}.part"  # the old fixed name another writer might be using
    stale.write_bytes(b"another writer's")
    write_whole(tmp_path / "x.mp4", b"ours")
    assert stale.read_bytes() == b"another writer's" and (tmp_path / "x.mp4").read_bytes() == b"ours"


def test_a_str_path_is_taken(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert write_whole("out.mp4", b"ours") == tmp_path.joinpath("out.mp4").relative_to(tmp_path)
    assert (tmp_path / "out.mp4").read_bytes() == b"ours"


def test_a_name_taken_while_rendering_is_kept_and_the_video_takes_the_next_free_one(tmp_path):
    target = tmp_path / "x.mp4"
    target.write_bytes(b"another run's video")  # appeared after the name was checked
    (tmp_path / "x-2.mp4").symlink_to(tmp_path / "elsewhere")  # a link, even a dangling one, holds its name
    written = write_whole(target, b"ours", overwrite=False, instead=numbered(target))
    assert written == tmp_path / "x-3.mp4" and written.read_bytes() == b"ours"
    assert target.read_bytes() == b"another run's video" and not (tmp_path / "elsewhere").exists()
    assert sorted(path.name for path in tmp_path.iterdir()) == ["x-2.mp4", "x-3.mp4", "x.mp4"]  # no .part left


def test_a_free_name_is_claimed_whole_and_overwrite_replaces(tmp_path):
    target = tmp_path / "x.mp4"
    assert write_whole(target, b"first", overwrite=False) == target and target.read_bytes() == b"first"
    assert write_whole(target, b"second") == target and target.read_bytes() == b"second"


def test_without_hard_links_a_name_is_still_claimed_exclusively(tmp_path, monkeypatch):
    def no_links(*args, **kwargs):
        raise OSError(errno.EPERM, "Operation not permitted")  # as vfat answers link()

    monkeypatch.setattr(os, "link", no_links)
    (tmp_path / "x.mp4").write_bytes(b"theirs")
    written = write_whole(tmp_path / "x.mp4", b"ours", overwrite=False, instead=numbered(tmp_path / "x.mp4"))
    assert written.name == "x-2.mp4" and written.read_bytes() == b"ours"
    assert (tmp_path / "x.mp4").read_bytes() == b"theirs" and len(list(tmp_path.iterdir())) == 2


def test_a_full_disk_is_one_error_naming_the_file_and_leaves_nothing(tmp_path, monkeypatch):
    full_disk(monkeypatch)
    with pytest.raises(WriteError) as raised:
        write_whole(tmp_path / "x.mp4", b"data", overwrite=False)
    assert str(raised.value) == (f"could not write {tmp_path / 'x.mp4'} (No space left on device); nothing was "
                                 "written there")
    assert isinstance(raised.value, OSError) and not list(tmp_path.iterdir())
