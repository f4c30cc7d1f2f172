"""What the command line checks before any work: output paths, devices, dtypes, compile backends, model sources,
LoRA files.

Each check returns its problem as one line — the option, the value and what would be right — or None, so a
command can name every bad value at once and stop before it loads a model (minutes with real weights).
"""

from __future__ import annotations

import difflib
import errno
import itertools
import json
import math
import os
import struct
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from t2v import ellipsis, unexpanded
from t2v.config import LORA_SCALE_RANGE, TINY_RANDOM
from t2v.errors import WeightsError, current_user
from t2v.kernels import fp8
from t2v.loader import MODEL_FOLDER, check_keys, check_source, detect_layout
from t2v.precision import DTYPES, FP8, missing_device
from t2v.sizes import bytes_text
from t2v.weights import export
from t2v.weights.files import HEAD_BYTES, LFS_POINTER, TORCH_ZIP, safetensors_like, what_it_is
from t2v.weights.lora import lora_file, lora_keys

Problem = str | None


def nearest_folder(path: Path) -> tuple[Path, OSError | None]:
    """The nearest existing path at or above `path` (where a missing folder would be created), and why this process
    may not create files there (tried: permissions, ACLs, read-only mounts): NotADirectoryError for a file,
    PermissionError for a folder this process may not enter (returned: the last one above `path` it can see), None
    when it may. The one writability check of t2v's options and the bot's settings, each wording its own answer."""
    existing, denied = path.absolute(), None
    while existing != existing.parent:
        try:
            if existing.exists():
                break
        except PermissionError as exc:  # a folder above it may not be entered (Python 3.11's exists() raises)
            denied = exc
        existing = existing.parent
    if denied is not None:  # `existing` is the folder this process may not enter: it may not create files there
        return existing, denied
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


def _dangling_link(path: Path) -> Path | None:
    """The symbolic link at or above `path` that points nowhere: a folder made there fails ('File exists': the
    link's name is taken), and 'create it first' cannot be followed."""
    for part in (path, *path.parents):
        try:
            if part.is_symlink() and not part.exists():
                return part
        except OSError:  # a folder this process may not enter: the writability check says so
            return None
    return None


def _dangling(option: str, value: Path, link: Path) -> str:
    """The line for a path through a link that points nowhere."""
    return (f"{option} {shown(value)}: {link} is a link to {os.readlink(link)}, which does not exist; create that "
            "folder, or name another place")


def output_file(option: str, path: Path) -> Problem:
    """A file to write: not a folder, in a folder that exists and that this process may write into."""
    if path.is_dir():
        return f"{option} {path}: is a folder; name the file to write in it, e.g. {free_file(path / 'video.mp4')}"
    folder = path.parent
    if (link := _dangling_link(folder)) is not None:
        return _dangling(option, path, link)
    if not folder.is_dir():
        above = folder
        while not above.exists() and above != above.parent:
            above = above.parent
        if not above.is_dir():  # -o panda.mp4/x.mp4, panda.mp4 a video
            return f"{option} {path}: {above} is a file, not a folder; name a file in a folder that exists"
        return f"{option} {path}: the folder {folder} does not exist; create it first, or name a file elsewhere"
    return _writable(option, path, folder)


NAME_MAX, PATH_MAX = 255, 4096  # bytes: Linux's limits on one name and on a whole path
NAME_SHOWN = 21  # characters of a name too long that its line shows, "…" included
VALUE_SHOWN = 40  # characters of a path value too long that its line shows, "…" included


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
        return (f"the name {ellipsis.clip(longest, NAME_SHOWN)} is {len(longest.encode())} bytes long; file systems "
                f"take {NAME_MAX} at most")
    if len(value.encode()) > PATH_MAX:
        return f"is {len(value.encode())} bytes long; paths may be {PATH_MAX} at most"
    return None


def unreachable(value: str | Path) -> Problem:
    """Why a path cannot be looked at: a folder above it this process may not enter (another user's 0700 home), where
    Python 3.11's exists() and is_dir() raise instead of answering; None when it can be."""
    path = Path(value).absolute()
    try:
        path.lstat()
    except PermissionError:
        folder = next((above for above in path.parents if _visible(above)), path.anchor)
        return (f"permission denied: user {current_user()} may not enter {folder}; let that user in (chown, or chmod "
                f"o+x {folder}) or name a path elsewhere")
    except OSError:  # not there (yet), or a name too long: the other checks say so
        return None
    return None


def _visible(path: Path) -> bool:
    """Whether this process may look at `path` itself (stat it)."""
    try:
        path.lstat()
    except PermissionError:
        return False
    except OSError:
        return True
    return True


def shown(value: str | Path) -> str:
    """A value as a line names it: quoted when empty or padded with spaces, which would not show."""
    value = str(value)
    return value if value and value == value.strip() else repr(value)


def _too_long(option: str, value: str, problem: str) -> str:
    """path_length's `problem` with the option and as much of the value as a line shows: none where the problem
    names it already (not UTF-8: its bytes), else the value cut to VALUE_SHOWN characters (t2v.ellipsis)."""
    try:
        value.encode()
    except UnicodeEncodeError:
        return f"{option} {problem}"
    return f"{option} {shown(ellipsis.clip(value, VALUE_SHOWN))}: {problem}"


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


def folder_named(option: str, value: str, overwrite: str) -> Problem:
    """A file to write named as typed with a slash at its end (`-o x.mp4/`, `-o clip/`): the slash names a folder, and
    Path drops it (Path('x.mp4/') is x.mp4), so the checks of the file alone would pass and the video go to a file
    the user named as a folder, or replace one with `overwrite`. A folder that is there is answered as output_file
    answers one; None for a name without the slash."""
    if not value.endswith(("/", "/.")):
        return None
    path = Path(value)
    if path.is_dir():
        return f"{option} {value}: is a folder; name the file to write in it, e.g. {free_file(path / 'video.mp4')}"
    said = f"{option} {value}: a trailing slash names a folder, and"
    mp4 = path.suffix.lower() == ".mp4"
    if path.exists():
        if mp4:
            return (f"{said} {path} is a file, not a folder; to replace that file with the video, drop the slash and "
                    f"pass {overwrite}, or name another file")
        return f"{said} {path} is a file, not a folder; name a .mp4 file instead, e.g. {path.with_suffix('.mp4')}"
    if mp4:
        return f"{said} there is no folder {path}; drop the slash to write the video to {path}"
    return (f"{said} there is no folder {path}; name a .mp4 file instead, e.g. {path.with_suffix('.mp4')}, or create "
            f"the folder first and name a file in it, e.g. {path / 'video.mp4'}")


def mp4_file(option: str, path: Path) -> Problem:
    """An MP4 file to write (output_file's checks too): the name ends in .mp4, since the file is H.264 in MP4
    whatever its name says (a .gif or .webm name would hold an MP4 that nothing opening it expects); `-` is not
    standard output."""
    if str(path) == "-":
        return f"{option} -: t2v writes the video to a file, not to standard output; name a .mp4 file, e.g. video.mp4"
    if path.name.lower() == ".mp4":  # `-o "$name.mp4"` with $name empty or unset: no name before the extension
        return (f"{option} {shown(path)}: names no file before .mp4 (an empty shell variable?); name one, e.g. "
                f"{path.with_name('video.mp4')}")
    if path.suffix.lower() != ".mp4" and not path.is_dir():
        trimmed = path.with_name(path.name.rstrip(". ")) if path.name.rstrip(". ") else path  # x.mp4. and "x.mp4 "
        if trimmed.suffix.lower() == ".mp4":
            suggestion = str(trimmed)
        elif trimmed.suffix:
            suggestion = str(trimmed.with_suffix(".mp4"))
        else:
            suggestion = f"{trimmed}.mp4 (or {path / 'video.mp4'} in a folder)"
        return f"{option} {shown(path)}: t2v writes H.264 MP4 videos; name a .mp4 file, e.g. {suggestion}"
    return output_file(option, path)


def output_folder(option: str, path: Path) -> Problem:
    """A folder to write into, created with its parents if missing: not a file, nor a link that points nowhere,
    under a writable folder."""
    link = _dangling_link(path)
    return _writable(option, path, path) if link is None else _dangling(option, path, link)


def compile_backend(option: str, name: str) -> Problem:
    """A torch.compile backend this torch has (inductor; eager and aot_eager for CPU smoke tests): a misspelt one
    would otherwise fail every compile and leave the run eager, reported as compiled."""
    import torch._dynamo

    backends = torch._dynamo.list_backends(exclude_tags=())  # eager and aot_eager too (tagged "debug")
    if name in backends:
        return None
    return f"{option} {shown(name)}: not a torch.compile backend; use one of {', '.join(backends)}"


def device(option: str, name: str) -> Problem:
    """A device t2v runs on here: cpu, or cuda / cuda:N with that GPU present."""
    problem = missing_device(name, f"{option} cpu")
    return None if problem is None else f"{option} {shown(name)}: {problem}"


def dtype(option: str, name: str | None, device_name: str | None = None) -> Problem:
    """A dtype name load_pipeline (on `device_name`) or, with no device, convert knows (None: the device's default).

    fp8 is a precision to compute in, on GPUs with fp8 tensor cores; convert stores no fp8."""
    if name is None or name in DTYPES:
        return None
    if name not in FP8:
        known = [*DTYPES, *(FP8 if device_name is not None else ())]
        return f"{option} {shown(name)}: not a dtype t2v knows; use one of {', '.join(known)}"
    if device_name is None:
        return f"{option} {name}: fp8 is a precision to compute in, not to store; use float16 here"
    if device("--device", device_name) is not None:  # a device that is not there: its own check says so
        return None
    reason = fp8.unavailable(device_name)
    return None if reason is None else f"{option} {name}: {reason}"


def half_precision(name: str | None, device_name: str) -> bool | None:
    """Whether a load with the dtype `name` on `device_name` is in half precision (None: a dtype or device that is
    not known, which their own checks name): a diffusers folder's *.fp16.* files are read then."""
    if name is None:
        return None if device(" ", device_name) else device_name != "cpu"
    if name in FP8:
        return True
    return None if name not in DTYPES else DTYPES[name] != DTYPES["float32"]


def model_source(option: str, source: str, half: bool | None = None) -> Problem:
    """A model source whose layout is known, whose configuration and t2v_defaults.json read, and whose weight files
    (those a load in `half` precision reads; None: either) are there, readable, whole (weights_file: their headers and
    ends are read, not their tensors) and hold the keys and shapes the networks want (check_keys: safetensors headers,
    torch pickles memory-mapped). A setting (an upper-case name: the bot's T2V_MODEL) is shown as NAME=value, an option
    as `--model value`."""
    if not source.strip():
        return f"{option} is empty: name a model folder, or {TINY_RANDOM}"
    problem = path_length(source)
    if problem is not None:
        return _too_long(option, source, problem)
    named = f"{option}={shown(source)}" if option.isupper() else f"{option} {shown(source)}"
    problem = unexpanded.problem(source) or _near_tiny_random(source)
    if problem is not None:
        return f"{named}: {problem}"
    if source != TINY_RANDOM and Path(source).is_file():  # before check_source, which would offer a download into it
        return _a_file(option, named, Path(source))
    try:
        files = check_source(source, half)
        damaged = [problem for problem in map(weights_file, files) if problem]
        if not damaged:
            check_keys(source, half)
    except WeightsError as exc:
        return f"{named}: {exc}"
    return f"{named}: {'; '.join(damaged)}; {_fetch_again(source, len(damaged))}" if damaged else None


def _near_tiny_random(source: str) -> Problem:
    """A source that is no path here and reads like the preset's name (TINY-RANDOM, tiny_random): the preset was
    meant, not a folder to download into. A source under a folder this process may not enter is answered first:
    nothing else can be told of it."""
    try:
        if source == TINY_RANDOM or Path(source).exists():
            return None
    except PermissionError:
        closed, _ = nearest_folder(Path(source))
        return (f"permission denied: user {current_user()} may not enter {closed}, so it cannot read {source}; let "
                f"that user in (chown, or chmod o+x {closed}) or move the model to a folder it may read")
    if difflib.SequenceMatcher(None, source.lower().replace("_", "-"), TINY_RANDOM).ratio() < 0.85:
        return None
    return f"there is no folder {shown(source)} here; did you mean {TINY_RANDOM} (the random-weight preset)?"


def _fetch_again(source: str, count: int) -> str:
    """How to replace damaged weight files of `source`: write the export again, or download them again."""
    layout = detect_layout(source)
    if layout == "export":
        return export.REDO
    repo = " --repo OWNER/NAME" if layout == "diffusers" else ""
    them = "it" if count == 1 else "them"
    return f"delete {them} and download {them} again (`python -m t2v download {source}{repo}` fetches what is missing)"


def _a_file(option: str, named: str, path: Path) -> str:
    """A model source that names a file, not the model's folder: the folder it is in when that holds a model."""
    looked_at = "" if path.is_absolute() else f" ({path.absolute()})"
    to = "set it to" if option.isupper() else "name"
    folder = path.absolute().parent
    try:
        layout = detect_layout(folder)
    except WeightsError:
        return f"{named} is a file{looked_at}; {to} the folder that holds the model's files ({MODEL_FOLDER})"
    return f"{named} is a file{looked_at}; {to} the folder it is in, {folder}, which holds a model ({layout} layout)"


TORCH_LEGACY = b"\x80\x02\x8a\x0al\xfc\x9cF\xf9 j\xa8P\x19"  # the format before: a pickled magic number first
SAFETENSORS_HEADER_MAX = 100_000_000  # bytes: safetensors refuses a longer header


def weights_file(path: Path) -> Problem:
    """Why a weight file is not whole, told from its header and its end (never its tensors, which may be GBs): a
    .safetensors file whose header is not JSON or whose tensors end past the file; any other a torch zip archive
    (torch_load memory-maps it, which torch's legacy format cannot be) with its end record and tensor list there."""
    try:
        size = path.stat().st_size
        with open(path, "rb") as file:
            head = file.read(HEAD_BYTES)
            if head.startswith(LFS_POINTER):
                return f"{path} is a Git LFS pointer ({bytes_text(size)}), not the weights it stands for"
            if path.suffix == ".safetensors":
                return _safetensors_problem(path, file, head, size)
        return _torch_problem(path, head, size)
    except OSError as error:
        return f"{path} could not be read ({error.strerror or error})"


def _torch_problem(path: Path, head: bytes, size: int) -> Problem:
    """A torch checkpoint's zip archive opened: its end record and central directory read, not its tensors."""
    try:
        with zipfile.ZipFile(path):
            return None
    except (zipfile.BadZipFile, EOFError, ValueError, struct.error):
        pass
    if head.startswith(TORCH_ZIP) and not zipfile.is_zipfile(path):  # no end record: the file stops short
        return (f"{path} is truncated: {bytes_text(size)}, and the end of its zip archive, where a whole torch "
                "checkpoint lists its tensors, is missing")
    if head.startswith(TORCH_ZIP):
        return f"{path} is damaged: {bytes_text(size)}, and the tensor list at the end of its zip archive is unreadable"
    if head.startswith(TORCH_LEGACY):
        return (f"{path} is in torch's legacy format (before torch 1.6), which t2v cannot memory-map; the published "
                "files are zip archives")
    return f"{path} is not a torch checkpoint ({bytes_text(size)}): it is {what_it_is(head)}, not a zip archive"


def _safetensors_problem(path: Path, file: BinaryIO, head: bytes, size: int) -> Problem:
    """A .safetensors file's 8-byte header length, its JSON header, and its tensors' data ending where the file does."""
    length = int.from_bytes(head[:8], "little")
    if not safetensors_like(head) or length > SAFETENSORS_HEADER_MAX:  # the header is a JSON object
        return (f"{path} is not a safetensors file ({bytes_text(size)}; it does not start with a header length and a "
                "JSON header)")
    if 8 + length > size:
        return f"{path} is truncated: {bytes_text(size)}, its header alone says {bytes_text(8 + length)}"
    try:
        file.seek(8)
        header = json.loads(file.read(length))
        ends = [int(entry["data_offsets"][1]) for key, entry in header.items() if key != "__metadata__"]
    except (UnicodeDecodeError, json.JSONDecodeError, AttributeError, KeyError, TypeError, IndexError, ValueError):
        return f"{path} is damaged: its header is not the JSON list of tensors a safetensors file starts with"
    expected = 8 + length + max(ends, default=0)
    if expected > size:
        return f"{path} is truncated: {bytes_text(size)}, its header says {bytes_text(expected)}"
    if expected < size:
        return f"{path} is damaged: {bytes_text(size)}, its header says {bytes_text(expected)}"
    return None


def split_lora(value: str) -> tuple[Path, float]:
    """'PATH[:SCALE]' → (path, scale, 1 when not given); a path that exists as written is taken whole. ValueError
    for an existing PATH whose SCALE is not a number, and for no PATH at all (`:0.8`)."""
    path, sep, tail = value.rpartition(":")
    if sep and not Path(value).exists():
        if not path:  # Path('') is the current folder, whose pytorch_lora_weights.safetensors would be taken
            raise ValueError("names no file before the scale; write PATH:SCALE, e.g. style.safetensors:0.8")
        try:
            return Path(path), float(tail)
        except ValueError:
            if Path(path).exists():
                raise ValueError(f"the scale {tail!r} is not a number; write PATH or PATH:SCALE, "
                                 f"e.g. {path}:0.8") from None
    return Path(value), 1.0


_SCALES = "a style's scale is above {:g} and at most {:g} (1: as trained)".format(*LORA_SCALE_RANGE)


def lora(option: str, value: str) -> Problem:
    """A LoRA file this process may read (for a folder: diffusers' file in it) whose keys name LoRA weights, and
    a scale in LORA_SCALE_RANGE; whether it fits the model is known once the model is loaded (t2v.weights.lora)."""
    if not value.strip():
        return f"{option} is empty: name a LoRA .safetensors file, or leave {option} out"
    problem = path_length(value)
    if problem is not None:
        return _too_long(option, value, problem)
    problem = unexpanded.problem(value) or unreachable(value.rpartition(":")[0] or value)
    if problem is not None:
        return f"{option} {value}: {problem}"
    try:
        path, scale = split_lora(value)
    except ValueError as exc:
        return f"{option} {value}: {exc}"
    if not math.isfinite(scale):
        return f"{option} {value}: the scale {scale} is not a finite number; {_SCALES}"
    if not LORA_SCALE_RANGE[0] < scale <= LORA_SCALE_RANGE[1]:
        return f"{option} {value}: the scale {scale:g} is out of range; {_SCALES}"
    try:
        names = lora_keys(path)
    except WeightsError as exc:  # LoraError included
        return f"{option} {value}: {exc}"
    if not any("lora" in name for name in names):
        return f"{option} {value}: {lora_file(path)} holds no LoRA weights (no key names lora); is it a model file?"
    return None
