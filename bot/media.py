"""The media directory: delivered MP4s of public jobs, one `<job id>.mp4` each, for the showcase and the gallery,
each with its poster frame `<job id>.jpg` (the middle frame as a JPEG: what the gallery shows before the video plays,
and the image of a shared link's preview).

Every public video is saved when it is delivered (a nomination may come days later, when Discord's attachment
URL has expired), and its poster is made then; a video kept before posters existed gets one the first time it is
asked for (`poster`). Private videos are never written; 🗑 Delete and the retention sweep remove a video with its
poster. Writes go to a temporary file (`.<job id>-XXXX.part`) renamed into place, so the gallery never serves half a
video; one a crash left behind is removed by the retention sweep (bot/retention.py) once it is PART_MAX_AGE_S old, and
so is a poster whose video is gone (an older version's, or a crash between `delete`'s two removals).
A video is found by its job's id alone, so a database that starts again beside an older media directory (a new one,
an older backup) would hand out the ids of kept videos again: at each start, the files of ids above the database's
last are moved aside (`set_aside`) before any job can show them as its own.
The videos are public, and the files and the folders the bot makes for them are readable by every user (FILE_MODE,
FOLDER_MODE), whatever the umask (systemd's unit sets 0077): a web server or a backup running as another user can read
them.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from fractions import Fraction
from pathlib import Path

log = logging.getLogger(__name__)

FILE_MODE = 0o644  # rw-r--r--: a kept MP4 or poster, whatever the umask
FOLDER_MODE = 0o755  # rwxr-xr-x: a folder made for them
POSTER_SUFFIX = "jpg"  # a kept video's poster frame, beside it
PART_SUFFIX = "part"  # a write in progress (`_write`: t2v.video.write_whole's `.<name>.<pid>-<random>.part`), or
#                      one a crash left behind
ASIDE_PREFIX = "orphaned-"  # `set_aside`'s folders: `orphaned-<UTC time>`, never swept
SWEPT_NAMED = 20  # of the files one sweep removed, named in its log line; the rest counted ("and 37 more")
PART_MAX_AGE_S = 3600.0  # a temporary file (or a poster without its video) this old is a crash's leftover: a write
#                          takes seconds, never an hour


@dataclass(frozen=True)
class SetAside:
    """What `set_aside` moved, by job id, and the folder it moved them to."""

    folder: Path
    videos: list[int]
    posters: list[int]


@dataclass(frozen=True)
class Swept:
    """What one sweep removed: videos and posters by job id, temporary files by name."""

    videos: list[int]
    posters: list[int]  # with their videos, and those whose video was gone
    parts: list[str]


class MediaStore:
    """MP4 files by job id under one directory; the blocking file work runs in a thread."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)
        self._unposterable: set[int] = set()  # jobs whose video gave no poster: not tried again until saved again
        self._posters_made: dict[int, asyncio.Future[Path | None]] = {}  # posters being made now, by job

    def path(self, job_id: int) -> Path:
        """Where the video of this job is (or would be) kept."""
        if job_id < 1:
            raise ValueError(f"job ids start at 1, got {job_id}")
        return self.root / f"{job_id}.mp4"

    def poster_path(self, job_id: int) -> Path:
        """Where the poster frame of this job's video is (or would be) kept."""
        return self.path(job_id).with_suffix(f".{POSTER_SUFFIX}")

    def has(self, job_id: int) -> bool:
        """Whether the video of this job is kept."""
        return self.path(job_id).is_file()

    async def save(self, job_id: int, video: bytes) -> Path:
        """Write the job's MP4 atomically (replacing an older one) and make its poster; returns the MP4's path. A
        poster that cannot be made is logged, never raised: the video is kept all the same."""
        path = await asyncio.to_thread(self._write, self.path(job_id), video)
        log.info("job %d: kept %d bytes at %s", job_id, len(video), path)
        self._unposterable.discard(job_id)
        await self._make_poster(job_id)
        return path

    async def poster(self, job_id: int) -> Path | None:
        """The poster of the job's kept video, made now if the video was kept without one; None when there is no
        video or its poster cannot be made."""
        poster = self.poster_path(job_id)
        if poster.is_file():
            return poster
        if job_id in self._unposterable or not self.has(job_id):
            return None
        making = self._posters_made.get(job_id)
        if making is None:  # one decode a job, however many requests ask at once (a gallery page, its tiles)
            making = self._posters_made[job_id] = asyncio.ensure_future(self._make_poster(job_id))
            making.add_done_callback(lambda _: self._posters_made.pop(job_id, None))
        return await asyncio.shield(making)

    async def delete(self, job_id: int) -> bool:
        """Remove the job's MP4 and its poster; False when there was no MP4."""
        path = self.path(job_id)
        try:
            await asyncio.to_thread(path.unlink)
        except FileNotFoundError:
            return False
        await asyncio.to_thread(self.poster_path(job_id).unlink, missing_ok=True)
        log.info("job %d: removed %s and its poster", job_id, path)
        return True

    async def _make_poster(self, job_id: int) -> Path | None:
        """Decode the kept MP4's middle frame and write it as the job's poster; None (logged) when that fails."""
        try:
            jpeg = await asyncio.to_thread(poster_jpeg, self.path(job_id))
            poster = await asyncio.to_thread(self._write, self.poster_path(job_id), jpeg)
        except Exception:
            log.exception("job %d: no poster frame could be made from %s", job_id, self.path(job_id))
            self._unposterable.add(job_id)
            await asyncio.to_thread(self.poster_path(job_id).unlink, missing_ok=True)  # an older video's
            return None
        if not self.has(job_id):  # deleted while decoding: `delete` removed the video before the poster we wrote
            await asyncio.to_thread(poster.unlink, missing_ok=True)
            log.info("job %d: its video was deleted while its poster frame was made; the poster is gone too", job_id)
            return None
        log.info("job %d: poster frame of %d bytes at %s", job_id, len(jpeg), poster)
        return poster

    async def sweep(self, older_than: float, keep: set[int], leftovers_before: float | None = None) -> Swept:
        """Remove the kept MP4s last written before `older_than` (a POSIX time), with their posters, except those of
        `keep`'s jobs; and, when `leftovers_before` is given, what a crash left behind last written before it: the
        temporary files of writes (`.*.part`) and the posters whose video is gone (one whose video is there always
        stays). Other files in the directory are left alone."""
        swept = await asyncio.to_thread(self._sweep, older_than, keep, leftovers_before)
        orphans = [job for job in swept.posters if job not in swept.videos]
        for message, names in (("removed the kept videos of %d jobs older than the retention (%s)", swept.videos),
                               ("removed %d poster frames whose videos were gone (%s)", orphans),
                               ("removed %d unfinished temporary files left by interrupted writes (%s)", swept.parts)):
            if names:
                log.info(message, len(names), _named(names))
        return swept

    def _sweep(self, older_than: float, keep: set[int], leftovers_before: float | None) -> Swept:
        videos: list[int] = []
        posters: list[int] = []
        parts: list[str] = []
        try:
            entries = list(os.scandir(self.root))
        except FileNotFoundError:
            return Swept(videos, posters, parts)
        for entry in entries:
            video, poster = _job_of(entry.name, "mp4"), _job_of(entry.name, POSTER_SUFFIX)
            if video is not None and video not in keep and _unlink_if_older(entry, older_than):
                videos.append(video)
                if _unlink(self.poster_path(video)):
                    posters.append(video)
            elif leftovers_before is None:
                continue
            elif poster is not None and not self.has(poster) and _unlink_if_older(entry, leftovers_before):
                posters.append(poster)  # an hour old and no video: a poster is written only beside its video
            elif _is_part(entry.name) and _unlink_if_older(entry, leftovers_before):
                parts.append(entry.name)
        return Swept(sorted(videos), sorted(posters), sorted(parts))

    async def set_aside(self, last_job_id: int, now: datetime) -> SetAside | None:
        """Move the videos and posters of job ids above `last_job_id` (the database's last: those jobs are yet to
        come, the files another database's) into a new folder `orphaned-<now, UTC>` of the media directory, so that
        no new job shows another's video; nothing is deleted, nothing else is touched (temporary files of writes
        included). None when there is none to move (no media directory, too). OSError when the directory cannot be
        read, or a file cannot be moved (those moved before stay moved)."""
        return await asyncio.to_thread(self._set_aside, last_job_id, now)

    def _set_aside(self, last_job_id: int, now: datetime) -> SetAside | None:
        try:
            names = sorted(entry.name for entry in os.scandir(self.root) if entry.is_file())
        except FileNotFoundError:
            return None
        moved: dict[str, list[int]] = {"mp4": [], POSTER_SUFFIX: []}
        strangers = [(name, suffix, job) for name in names for suffix in moved
                     if (job := _job_of(name, suffix)) is not None and job > last_job_id]
        if not strangers:
            return None
        folder = self._new_folder(ASIDE_PREFIX + now.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ"))
        for name, suffix, job in strangers:
            try:
                os.rename(self.root / name, folder / name)  # a new folder: nothing there to replace
            except FileNotFoundError:  # removed meanwhile
                continue
            moved[suffix].append(job)
        return SetAside(folder, moved["mp4"], moved[POSTER_SUFFIX])

    def _new_folder(self, name: str) -> Path:
        """A folder of the media directory made now, named `name` (`name-2`, … when that one is there already)."""
        folder, number = self.root / name, 1
        while True:
            try:
                folder.mkdir()
                break
            except FileExistsError:
                number += 1
                folder = self.root / f"{name}-{number}"
        os.chmod(folder, FOLDER_MODE)
        return folder

    @staticmethod
    def _write(path: Path, data: bytes) -> Path:
        from t2v.video import write_whole  # lazily, as av below: it imports av

        _make_folder(path.parent)
        return write_whole(path, data, mode=FILE_MODE)


def _is_part(name: str) -> bool:
    """Whether a file name is one of `_write`'s temporary files: `.<name>.<pid>-<random>.part`."""
    return name.startswith(".") and name.endswith(f".{PART_SUFFIX}")


def _named(names: list[int] | list[str]) -> str:
    """The first SWEPT_NAMED names, then how many more: "1, 2, 3 (and 37 more)"."""
    named = ", ".join(map(str, names[:SWEPT_NAMED]))
    return f"{named} (and {len(names) - SWEPT_NAMED} more)" if len(names) > SWEPT_NAMED else named


def _job_of(name: str, suffix: str) -> int | None:
    """The job id of a file named `<job id>.<suffix>` (the names `path` and `poster_path` give); None for another."""
    stem, _, rest = name.partition(".")
    if rest != suffix or not stem.isascii() or not stem.isdigit() or stem.startswith("0"):
        return None
    return int(stem)


def _unlink(path: Path) -> bool:
    """Remove a file; whether it was there."""
    try:
        path.unlink()
    except FileNotFoundError:
        return False
    return True


def _unlink_if_older(entry: os.DirEntry[str], before: float) -> bool:
    """Remove a file (not a folder) last written before `before`; whether it was removed."""
    try:
        if not entry.is_file() or entry.stat().st_mtime >= before:
            return False
        os.unlink(entry.path)
    except FileNotFoundError:  # deleted meanwhile (🗑 Delete, or a write that finished)
        return False
    return True


def poster_jpeg(video: Path) -> bytes:
    """The middle frame of an MP4 as a JPEG, decoded and encoded with PyAV (imported here: importing the bot loads
    no PyAV); a video whose length is not in its header gives its first frame."""
    import av

    with av.open(str(video)) as container:
        stream = container.streams.video[0]
        frame = next(itertools.islice(container.decode(stream), stream.frames // 2, None), None)
    if frame is None:
        raise ValueError(f"{video} has fewer video frames than its header says ({stream.frames})")
    encoder = av.CodecContext.create("mjpeg", "w")
    encoder.width, encoder.height, encoder.pix_fmt = frame.width, frame.height, "yuvj420p"
    encoder.time_base = Fraction(1, 25)  # one still image: any time base will do
    packets = encoder.encode(frame.reformat(format="yuvj420p")) + encoder.encode(None)
    return b"".join(bytes(packet) for packet in packets)


def _make_folder(folder: Path) -> None:
    """Create `folder` and its missing parents with FOLDER_MODE (not the umask's)."""
    missing = []
    while not folder.is_dir() and folder != folder.parent:
        missing.append(folder)
        folder = folder.parent
    for made in reversed(missing):
        try:
            made.mkdir()
        except FileExistsError:  # made meanwhile by someone else: theirs to set
            continue
        os.chmod(made, FOLDER_MODE)
