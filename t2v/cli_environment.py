"""The environment's settings for the libraries `python -m t2v` loads (torch, huggingface_hub, ...), as far as they can
stop it before its first line: a value such a library refuses while it is imported is a traceback of dozens of lines
(HF_HUB_ETAG_TIMEOUT=abc, TORCH_LOGS=nonsense), or an abort with a C++ stack (PYTORCH_CUDA_ALLOC_CONF=
expandable_segments, its `:True` left out). Imports nothing heavy: it runs before torch does.
"""

from __future__ import annotations

import os
import re
import traceback

from t2v.errors import current_user

# the settings of the libraries t2v loads, by the prefixes of their names
PREFIXES = ("HF_", "HUGGINGFACE_", "TRANSFORMERS_", "TORCH", "PYTORCH_", "TRITON_", "CUDA_", "OMP_", "MKL_",
            "TOKENIZERS_", "TQDM_")  # tqdm (torch imports it) reads TQDM_MININTERVAL and the like as its class loads
ALLOCATOR_SETTINGS = ("PYTORCH_CUDA_ALLOC_CONF", "PYTORCH_ALLOC_CONF")  # torch's caching allocator's


def allocator_problem(environ: dict[str, str] | None = None) -> str | None:
    """A torch allocator setting with an entry that is no `key:value` (`expandable_segments`, its `:True` left out):
    torch's C++ reader of it fails an internal assert at load and aborts the process (torch 2.x). Only that shape is
    refused here; whatever else torch makes of a value is torch's to say."""
    environ = os.environ if environ is None else environ
    for name in ALLOCATOR_SETTINGS:
        value = environ.get(name, "")
        bare = [entry.strip() for entry in _entries(value) if entry.strip() and ":" not in entry]
        if bare:
            return (f"{name}={value!r}: {bare[0]!r} has no value; torch reads key:value pairs separated by commas "
                    "(e.g. expandable_segments:True) and would stop at load; correct it, or unset it")
    return None


def _entries(value: str) -> list[str]:
    """`value` split at its commas outside brackets (roundup_power2_divisions:[256:1,512:2] is one entry)."""
    entries, depth, start = [], 0, 0
    for index, char in enumerate(value):
        depth += {"[": 1, "]": -1}.get(char, 0)
        if char == "," and depth <= 0:
            entries.append(value[start:index])
            start = index + 1
    return [*entries, value[start:]]


def refused_setting(exc: BaseException, environ: dict[str, str] | None = None) -> str | None:
    """The line for an import that failed on a library's setting (`exc`, the ValueError or OSError raised while
    importing): the setting whose value the error names, the library, and what it said; None when no setting is named
    (its traceback says more). An OSError names a setting whose path it failed on (TORCHINDUCTOR_CACHE_DIR=/dev/null,
    a folder this user may not create: the error's file is the path or a folder above it)."""
    environ = os.environ if environ is None else environ
    said = _first_sentence(str(exc))
    settings = [(name, value) for name, value in sorted(environ.items()) if name.startswith(PREFIXES) and value.strip()]
    named = [f"{name}={value}" for name, value in settings
             if re.search(rf"(?<![\w.]){re.escape(value.strip())}(?![\w.])", said)]
    if isinstance(exc, OSError) and isinstance(exc.filename, str):
        named = [f"{name}={value}" for name, value in settings if _on_the_way(exc.filename, value.strip())] or named
    if not named:
        return None
    library = _library(exc)
    by = f" by {library}" if library else ""
    if isinstance(exc, OSError):
        return (f"python -m t2v could not start: {' or '.join(named)} cannot be used{by} ({type(exc).__name__}: "
                f"{said}); name a folder user {current_user()} may create and write, or unset it")
    return (f"python -m t2v could not start: {' or '.join(named)} is refused{by} ({type(exc).__name__}: {said}); "
            "correct it, or unset it")


def _on_the_way(failed: str, value: str) -> bool:
    """Whether the path an OSError `failed` on is the path `value` names or, where the value is a path of folders, one
    of the folders in it (os.makedirs of the value stops at the first folder it cannot make); never the root."""
    try:
        path, target = os.path.abspath(failed), os.path.abspath(os.path.expanduser(value))
        above = "/" in value and path != os.path.dirname(path) and os.path.commonpath([path, target]) == path
    except ValueError:  # not a path
        return False
    return path == target or above


def _first_sentence(message: str) -> str:
    """A library's message on one line, up to the end of its first sentence (torch's goes on for 20 lines)."""
    text = " ".join(message.split())
    end = re.search(r"\.(\s|$)", text)
    return text[: end.start() + 1] if end else text


def _library(exc: BaseException) -> str | None:
    """The installed package whose code raised `exc` (the deepest frame under site-packages)."""
    found = None
    for frame in traceback.extract_tb(exc.__traceback__):
        parts = frame.filename.replace("\\", "/").split("/site-packages/", 1)
        if len(parts) == 2:
            found = parts[1].split("/", 1)[0]
    return found
