"""What the command line checks before any work: output paths, devices, dtypes, compile backends, model sources,
LoRA files.

Each check returns its problem as one line — the option, the value and what would be right — or None, so a
command can name every bad value at once and stop before it loads a model (minutes with real weights).
"""

from __future__ import annotations

import errno
import itertools
import math
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from t2v.config import LORA_SCALE_RANGE, TINY_RANDOM
from t2v.errors import WeightsError, current_user
from t2v.kernels import fp8
from t2v.loader import DTYPES, FP8, check_source, missing_device
from t2v.weights.lora import lora_file, lora_keys

Problem = str | None


def nearest_folder(path: Path) -> tuple[Path, OSError | None]:
    """The nearest existing path at or above `path` (where a missing folder would be created), and why this process
    may not create files there (tried: permissions, ACLs, read-only mounts): NotADirectoryError for a file, None when
    it may. The one writability check of t2v's options and the bot's settings, each wording its own answer."""
    existing = path.absolute()
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        return existing, NotADirectoryError(errno.ENOTDIR, "not a folder", str(existing))
    try:
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as exc:
        return existing, exc
    return existing, None


def _writable(option: str, value: Path, folder: Path) -> Problem:
    """Whether this process may create files where `value` goes: `folder` (or the nearest existing folder above
    it, where missing ones would be made)."""
    existing, error = nearest_folder(folder)
    if isinstance(error, NotADirectoryError):
        return f"{option} {value}: {existing} is a file, not a folder; name a folder to write into"
    if error is not None:
        return (f"{option} {value}: cannot write into {existing} as user {current_user()} ({error.strerror}); "
                "name a writable place")
    return None


def output_file(option: str, path: Path) -> Problem:
    """A file to write: not a folder, in a folder that exists and that this process may write into."""
    if path.is_dir():
        return f"{option} {path}: is a folder; name the file to write in it, e.g. {path / 'video.mp4'}"
    folder = path.parent
    if not folder.is_dir():
        above = folder
        while not above.exists() and above != above.parent:
            above = above.parent
        if not above.is_dir():  # -o panda.mp4/x.mp4, panda.mp4 a video
            return f"{option} {path}: {above} is a file, not a folder; name a file in a folder that exists"
        return f"{option} {path}: the folder {folder} does not exist; create it first, or name a file elsewhere"
    return _writable(option, path, folder)


NAME_MAX, PATH_MAX = 255, 4096  # bytes: Linux's limits on one name and on a whole path


def path_length(value: str) -> Problem:
    """Why a path is not one to use: not UTF-8 (a name of bytes that are not text), or longer than the file system
    takes (every check of it would fail with 'File name too long')."""
    try:
        value.encode()
    except UnicodeEncodeError as exc:  # argv's undecodable bytes arrive as lone surrogates
        return (f"{os.fsencode(value)!r} is not UTF-8 text (byte {os.fsencode(exc.object[exc.start])[0]:#x}); name it "
                "in UTF-8, as t2v reads and prints names")
    longest = max(Path(value).parts, key=lambda part: len(part.encode()), default="")
    if len(longest.encode()) > NAME_MAX:
        return f"the name {longest[:20]}… is {len(longest.encode())} bytes long; file systems take {NAME_MAX} at most"
    if len(value.encode()) > PATH_MAX:
        return f"is {len(value.encode())} bytes long; paths may be {PATH_MAX} at most"
    return None


def not_there(option: str, path: Path, overwrite: str) -> Problem:
    """A file to write that does not exist yet (nor as a link): nothing of the user's is replaced unasked."""
    if (path.exists() or path.is_symlink()) and not path.is_dir():  # a folder: output_file says what to do
        return f"{option} {path}: exists; pass {overwrite} to replace it, or name another file"
    return None


def numbered(path: Path) -> Iterator[Path]:
    """`path`, then name-2.ext, name-3.ext, ... beside it: the names a new video takes in turn."""
    yield path
    for number in itertools.count(2):
        yield path.with_name(f"{path.stem}-{number}{path.suffix}")


def free_file(path: Path) -> Path:
    """The first of `numbered(path)` that nothing (not even a link) holds now."""
    return next(free for free in numbered(path) if not (free.exists() or free.is_symlink()))


def mp4_file(option: str, path: Path) -> Problem:
    """An MP4 file to write (output_file's checks too): the name ends in .mp4, since the file is H.264 in MP4
    whatever its name says (a .gif or .webm name would hold an MP4 that nothing opening it expects)."""
    if path.suffix.lower() != ".mp4" and not path.is_dir():
        suggestion = path.with_suffix(".mp4") if path.suffix else f"{path}.mp4 (or {path / 'video.mp4'} in a folder)"
        return f"{option} {path}: t2v writes H.264 MP4 videos; name a .mp4 file, e.g. {suggestion}"
    return output_file(option, path)


def output_folder(option: str, path: Path) -> Problem:
    """A folder to write into, created with its parents if missing: not a file, under a writable folder."""
    return _writable(option, path, path)


def compile_backend(option: str, name: str) -> Problem:
    """A torch.compile backend this torch has (inductor; eager and aot_eager for CPU smoke tests): a misspelt one
    would otherwise fail every compile and leave the run eager, reported as compiled."""
    import torch._dynamo

    backends = torch._dynamo.list_backends(exclude_tags=())  # eager and aot_eager too (tagged "debug")
    if name in backends:
        return None
    return f"{option} {name}: not a torch.compile backend; use one of {', '.join(backends)}"


def device(option: str, name: str) -> Problem:
    """A device t2v runs on here: cpu, or cuda / cuda:N with that GPU present."""
    problem = missing_device(name, f"{option} cpu")
    return None if problem is None else f"{option} {name or repr(name)}: {problem}"


def dtype(option: str, name: str | None, device_name: str | None = None) -> Problem:
    """A dtype name load_pipeline (on `device_name`) or, with no device, convert knows (None: the device's default).

    fp8 is a precision to compute in, on GPUs with fp8 tensor cores; convert stores no fp8."""
    if name is None or name in DTYPES:
        return None
    if name not in FP8:
        known = [*DTYPES, *(FP8 if device_name is not None else ())]
        return f"{option} {name}: not a dtype t2v knows; use one of {', '.join(known)}"
    if device_name is None:
        return f"{option} {name}: fp8 is a precision to compute in, not to store; use float16 here"
    if device("--device", device_name) is not None:  # a device that is not there: its own check says so
        return None
    reason = fp8.unavailable(device_name)
    return None if reason is None else f"{option} {name}: {reason}"


def model_source(option: str, source: str) -> Problem:
    """A model source whose layout is known, whose configuration reads and whose weight files are there and not
    empty (their contents are read, and checked, when it loads)."""
    if not source.strip():
        return f"{option} is empty: name a model folder, or {TINY_RANDOM}"
    problem = path_length(source)
    if problem is not None:
        return f"{option} {source[:40]}…: {problem}"
    try:
        check_source(source)
    except WeightsError as exc:
        return f"{option} {source}: {exc}"
    return None


def split_lora(value: str) -> tuple[Path, float]:
    """'PATH[:SCALE]' → (path, scale, 1 when not given); a path that exists as written is taken whole. ValueError
    for an existing PATH whose SCALE is not a number."""
    path, sep, tail = value.rpartition(":")
    if sep and not Path(value).exists():
        try:
            return Path(path), float(tail)
        except ValueError:
            if Path(path).exists():
                raise ValueError(f"the scale {tail!r} is not a number; write PATH or PATH:SCALE, "
                                 f"e.g. {path}:0.8") from None
    return Path(value), 1.0


def lora(option: str, value: str) -> Problem:
    """A LoRA file this process may read (for a folder: diffusers' file in it) whose keys name LoRA weights, and
    a scale in LORA_SCALE_RANGE; whether it fits the model is known once the model is loaded (t2v.weights.lora)."""
    if not value.strip():
        return f"{option} is empty: name a LoRA .safetensors file, or leave {option} out"
    problem = path_length(value)
    if problem is not None:
        return f"{option} {value[:40]}…: {problem}"
    try:
        path, scale = split_lora(value)
    except ValueError as exc:
        return f"{option} {value}: {exc}"
    if not math.isfinite(scale):
        return f"{option} {value}: the scale {scale} is not a finite number"
    low, high = LORA_SCALE_RANGE
    if not low < scale <= high:
        return (f"{option} {value}: the scale {scale:g} is out of range; a style's scale is above {low:g} and at most "
                f"{high:g} (1: as trained)")
    try:
        names = lora_keys(path)
    except WeightsError as exc:  # LoraError included
        return f"{option} {value}: {exc}"
    if not any("lora" in name for name in names):
        return f"{option} {value}: {lora_file(path)} holds no LoRA weights (no key names lora); is it a model file?"
    return None
