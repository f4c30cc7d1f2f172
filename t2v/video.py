"""Frames → H.264 (libx264, yuv420p) MP4 bytes with the moov box first, re-encoded smaller to fit an upload limit;
written to a file whole or not at all."""

import errno
import io
import logging
import numbers
import os
import secrets
from collections.abc import Iterable
from fractions import Fraction
from itertools import chain
from pathlib import Path

import av
import numpy as np
from av.video.reformatter import ColorRange, Colorspace, Interpolation, VideoReformatter

from t2v.config import SamplerDefaults
from t2v.errors import InvalidRequest, VideoTooLargeError, WriteError
from t2v.request import LIMITS
from t2v.sizes import frame_text

log = logging.getLogger(__name__)

DEFAULT_FPS = SamplerDefaults.fps
FPS_RANGE = LIMITS["fps"]
DEFAULT_CRF = 20  # visually near-lossless for x264; a 16-frame 256² clip of real content is tens of kB
FIT_ATTEMPTS = 6  # bitrate retries before giving up on max_bytes
HEADROOM = 0.9  # aim this far under the limit: x264's rate control overshoots and the container adds bytes
MIN_BIT_RATE = 1_000  # bit/s; 0 would silently mean "no bitrate target" to libx264
# RGB → YUV with no CPU-specific rounding, so equal frames give equal bytes on any machine
_BITEXACT_BILINEAR = Interpolation.BILINEAR | Interpolation.ACCURATE_RND | Interpolation.BITEXACT


def encode_mp4(frames: np.ndarray, fps: int = DEFAULT_FPS, max_bytes: int | None = None) -> bytes:
    """Encode uint8 RGB frames [F, H, W, 3] (H, W even) as a faststart H.264 MP4, fitting max_bytes if given.

    A bad value of any of the three is InvalidRequest (a ValueError), before anything is encoded."""
    _check_frames(frames)
    fps = _check_fps(fps)
    max_bytes = _check_max_bytes(max_bytes)
    data = _encode(frames, fps, crf=DEFAULT_CRF)
    count, height, width = frames.shape[:3]
    log.debug("encoded %d frames %s at crf %d: %d bytes", count, frame_text(width, height), DEFAULT_CRF, len(data))
    if max_bytes is None or len(data) <= max_bytes:
        return data
    return _encode_to_fit(frames, fps, max_bytes, len(data))


def _encode_to_fit(frames: np.ndarray, fps: int, max_bytes: int, size: int) -> bytes:
    """Retry at target bitrates, each scaled by the last overshoot, until the MP4 fits in max_bytes."""
    bit_rate = max(int(max_bytes * 8 * fps / len(frames) * HEADROOM), MIN_BIT_RATE)
    smallest = size
    for _ in range(FIT_ATTEMPTS):
        data = _encode(frames, fps, bit_rate=bit_rate)
        log.debug("re-encoded at %d bit/s: %d bytes (limit %d)", bit_rate, len(data), max_bytes)
        if len(data) <= max_bytes:
            return data
        smallest = min(smallest, len(data))
        lower = max(int(bit_rate * max_bytes / len(data) * HEADROOM), MIN_BIT_RATE)
        if lower == bit_rate:
            break  # already at the floor
        bit_rate = lower
    raise VideoTooLargeError(smallest, max_bytes)


def _encode(frames: np.ndarray, fps: int, crf: int | None = None, bit_rate: int | None = None) -> bytes:
    """One libx264 pass into memory, at constant quality (crf) or at a target bitrate."""
    buffer = io.BytesIO()

    # faststart moves moov before mdat after the fact by reopening the output to read it back; hand the muxer a
    # snapshot of the buffer (everything is flushed before it reopens), so no temporary file is needed.
    def reopen(url: str, flags: int, options: dict) -> io.BytesIO:
        return io.BytesIO(buffer.getvalue())

    with av.open(buffer, "w", format="mp4", options={"movflags": "faststart"}, io_open=reopen) as container:
        stream = _add_h264_stream(container, frames.shape[2], frames.shape[1], fps, crf, bit_rate)
        reformatter = VideoReformatter()
        for index, rgb in enumerate(frames):
            container.mux(stream.encode(_to_yuv420p(reformatter, rgb, index, fps)))
        container.mux(stream.encode())
    return buffer.getvalue()


def _add_h264_stream(
    container: av.container.OutputContainer, width: int, height: int, fps: int, crf: int | None, bit_rate: int | None
) -> av.VideoStream:
    """A libx264 yuv420p stream tagged BT.601 limited range, at constant quality or at a target bitrate."""
    stream = container.add_stream("libx264", rate=fps)
    stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
    context = stream.codec_context
    context.colorspace, context.color_range = Colorspace.ITU601, ColorRange.MPEG  # what _to_yuv420p produces
    context.thread_type = "FRAME"  # PyAV's default is slice threads; x264's frame threads compress better
    if bit_rate is None:
        stream.options = {"crf": str(crf)}
    else:
        stream.bit_rate = bit_rate  # plain ABR: unlike a VBV cap, it gives the same bytes whatever the thread timing
    return stream


def _to_yuv420p(reformatter: VideoReformatter, rgb: np.ndarray, index: int, fps: int) -> av.VideoFrame:
    """RGB → BT.601 limited-range yuv420p, bit-exact and single-threaded so equal frames give equal bytes."""
    frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
    yuv = reformatter.reformat(
        frame,
        format="yuv420p",
        dst_colorspace=Colorspace.ITU601,
        dst_color_range=ColorRange.MPEG,
        interpolation=_BITEXACT_BILINEAR,
        threads=1,
    )
    yuv.pts, yuv.time_base = index, Fraction(1, fps)
    return yuv


def _check_frames(frames: np.ndarray) -> None:
    """Reject anything but a non-empty uint8 [F, H, W, 3] array with even H and W (yuv420p halves both)."""
    if not isinstance(frames, np.ndarray):
        raise InvalidRequest(f"frames must be a numpy array, got {type(frames).__name__}")
    if frames.dtype != np.uint8:
        raise InvalidRequest(f"frames must have dtype uint8 (0..255), got {frames.dtype}")
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise InvalidRequest(f"frames must have shape [frames, height, width, 3] (RGB), got {list(frames.shape)}")
    count, height, width = frames.shape[:3]
    if count < 1:
        raise InvalidRequest(f"frames must hold at least 1 frame, got {count}")
    if height < 2 or width < 2 or height % 2 or width % 2:
        raise InvalidRequest(f"frame height and width must be even and ≥ 2 for yuv420p, got height {height}, width "
                             f"{width}")


def _check_fps(fps: int) -> int:
    """`fps` as a plain int; InvalidRequest unless it is a whole number (NumPy's too) in FPS_RANGE."""
    low, high = FPS_RANGE
    if isinstance(fps, bool) or not isinstance(fps, numbers.Integral) or not low <= fps <= high:
        raise InvalidRequest(f"fps must be an integer from {low} to {high}, got {fps!r}")
    return int(fps)


def _check_max_bytes(max_bytes: int | None) -> int | None:
    """`max_bytes` as a plain int, or None; InvalidRequest unless it is a positive whole number of bytes."""
    wanted = f"max_bytes must be a positive number of bytes or None, got {max_bytes!r}"
    if max_bytes is None:
        return None
    if isinstance(max_bytes, bool) or not isinstance(max_bytes, numbers.Integral) or max_bytes < 1:
        raise InvalidRequest(wanted)
    return int(max_bytes)


def write_whole(path: str | Path, data: bytes, overwrite: bool = True, instead: Iterable[Path] = (),
                mode: int | None = None) -> Path:
    """Write `data` (an encoded MP4, the bot's poster frames) whole or not at all, into a file beside `path` that then
    takes its name; the path written. The one atomic writer of t2v and the bot.

    `overwrite`: renamed over `path`, so a link there is replaced, never written through, and an interrupted write
    leaves what was there. Otherwise the name is claimed at the end, exclusively (a hard link, which fails if the
    name exists, so two writers never share one): if `path` appeared since the caller looked, the first free name
    of `instead` is taken. Mode 0666 less the umask, as any new file, or `mode` exactly. A write that fails (a full
    disk) is a WriteError naming `path`; nothing of it is left. Writers of one path, in threads or processes, each
    write their own part file: the last rename wins whole."""
    path = Path(path)
    part = None
    try:
        part, descriptor = _part_file(path)
        if mode is not None:
            os.fchmod(descriptor, mode)
        with os.fdopen(descriptor, "wb") as file:
            file.write(data)
        if overwrite:
            os.replace(part, path)
            return path
        return _claim(part, chain([path], instead))
    except OSError as exc:
        raise WriteError(f"could not write {path} ({exc.strerror or exc}); nothing was written there") from exc
    finally:
        if part is not None:  # only this call's own part: another writer's is not ours to remove
            part.unlink(missing_ok=True)


def _part_file(path: Path) -> tuple[Path, int]:
    """A new part file beside `path`, `.<name>.<pid>-<random>.part` (t2v.weights.export names its parts so too),
    created exclusively with mode 0666 less the umask; (its path, an open descriptor for writing)."""
    stem = path.name.encode()[:200].decode(errors="ignore")  # the name within a file system's 255 bytes
    while True:
        part = path.with_name(f".{stem}.{os.getpid()}-{secrets.token_hex(4)}.part")
        try:
            return part, os.open(part, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:  # 2⁻³² odds, or a part left behind by an earlier process of this pid
            continue


NO_HARD_LINKS = {errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.ENOSYS}  # FAT, exFAT, some network mounts


def _claim(part: Path, names: Iterable[Path]) -> Path:
    """Give the finished `part` the first of `names` that nothing holds (not even a link): a hard link where the file
    system has them (the name appears whole), else a name created empty and exclusively, then renamed over."""
    for name in names:
        try:
            os.link(part, name, follow_symlinks=False)
        except FileExistsError:
            continue
        except OSError as exc:
            if exc.errno not in NO_HARD_LINKS:
                raise
            try:
                os.close(os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
            except FileExistsError:
                continue
            os.replace(part, name)
        return name
    raise FileExistsError(errno.EEXIST, "every name offered is taken", str(part))
