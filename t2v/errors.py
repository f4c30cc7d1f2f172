"""Every exception t2v raises on purpose (torch-free, so callers can catch them without loading a model).

    T2VError
    ├── InvalidRequest (ValueError)       a value t2v was handed outside what it takes (a request's field, frames
    │                                     to encode, a dtype, a strength, a window), or a render asked of a pipeline
    │                                     busy with another or moved off its device; the message names both
    ├── GenerationCancelled               `should_cancel()` said stop; `step` of `total` steps were finished
    ├── WeightsError (ValueError)         a model source that is missing, unreadable or does not fit the network
    │   ├── ArchitectureError             a diffusers directory whose configs describe a network t2v cannot run
    │   └── LoraError                     a LoRA adapter (a style) unreadable, of a kind t2v cannot apply, or
    │                                     for another network; or a style asked of a pipeline that cannot take it
    ├── VideoTooLargeError (ValueError)   even the smallest MP4 encode is over the byte limit
    ├── UnsupportedDevice (ValueError)    a device this machine lacks, or a precision it cannot compute in (fp8)
    ├── NonFiniteOutput                   a render whose latents or pixels hold NaN or inf (a LoRA scale, fp16
    │                                     overflow): no video is made of it
    ├── WriteError (OSError)              an output (an MP4, an export) that could not be written: a full disk, a
    │                                     lost mount; the message names it and the cause, and nothing half-written
    │                                     is left
    └── DownloadError                     a checkpoint the Hugging Face Hub did not hand over (out of reach,
                                          refused, not a model); the message says which files to copy by hand

GenerationCancelled and VideoTooLargeError pickle by their fields: a Ray worker raises them in another process.
Map errors to messages by type; every message already names the bad value and what would be right. A message shown
as a line (the command line's `error:`, the bot's settings) passes through `visible`: a value typed with a newline or
an escape sequence in it is shown, not obeyed.
"""

from __future__ import annotations

import os
import pwd
import re
from pathlib import Path

HIDDEN_RE = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\u2028\u2029]")


def visible(text: str) -> str:
    """text on one line with each control character (tab and line breaks too) and bidi control written as its escape
    (\\n, \\x1b, \\u202e): a value someone typed, named in a line about it, shows what is wrong with it (a newline a
    quoted .env value carried, a pasted escape sequence) instead of breaking the line, moving the cursor or hiding."""
    return HIDDEN_RE.sub(lambda found: found.group().encode("unicode_escape").decode("ascii"), text)


class T2VError(Exception):
    """The base of t2v's own errors."""


class InvalidRequest(T2VError, ValueError):
    """A value handed to t2v outside what it takes: a request's field, a call's argument (frames to encode, a dtype,
    a strength); the message names the value and what would be right."""


class GenerationCancelled(T2VError):
    """Raised when `should_cancel()` returned True; `step` is the number of finished steps."""

    def __init__(self, step: int, total: int):
        super().__init__(f"generation cancelled after {step}/{total} steps")
        self.step, self.total = step, total

    def __reduce__(self) -> tuple:
        """Pickle by (step, total)."""
        return type(self), (self.step, self.total)


class WeightsError(T2VError, ValueError):
    """A checkpoint that is missing, unreadable, or does not fit the model."""

    @classmethod
    def permission_denied(cls, path: Path) -> WeightsError:
        """A file or folder this process may not read: say so, for whom — never "corrupt"."""
        return cls(f"{path}: permission denied for user {current_user()}; make it readable to that user "
                   "(e.g. chmod a+r, or a+rx for a folder) or run as a user who may read it")


def current_user() -> str:
    """'name (uid N)' of the effective user; a container's user may have a uid and no name."""
    uid = os.geteuid()
    try:
        return f"{pwd.getpwuid(uid).pw_name} (uid {uid})"
    except KeyError:
        return f"uid {uid}"


class ArchitectureError(WeightsError):
    """A diffusers directory whose configs describe a network t2v cannot run exactly."""


class LoraError(WeightsError):
    """A LoRA adapter that cannot be read or applied to this model; the message names the keys that do not fit."""


class VideoTooLargeError(T2VError, ValueError):
    """Even the lowest-bitrate encode tried is over the byte limit."""

    def __init__(self, size: int, max_bytes: int) -> None:
        super().__init__(f"smallest encode is {size} bytes, over the limit of {max_bytes} bytes")
        self.size = size
        self.max_bytes = max_bytes

    def __reduce__(self) -> tuple:
        """Pickle by (size, max_bytes)."""
        return type(self), (self.size, self.max_bytes)


class UnsupportedDevice(T2VError, ValueError):
    """A device this machine lacks (cuda without a GPU), or a precision or kernel asked for on a device that has no
    hardware for it (fp8 on the CPU, or on a GPU older than Ada); the message names the device and what would be
    needed."""


class NonFiniteOutput(T2VError):
    """A render whose final latents or decoded pixels hold NaN or inf; `stage` says which ("latents", "frames")."""

    def __init__(self, stage: str) -> None:
        super().__init__(f"the render produced non-finite values (NaN or inf) in its {stage}, which would make a "
                         "black video; likely causes: a LoRA style at too large a scale, or float16 overflow "
                         "(float32 or bfloat16 avoids it)")
        self.stage = stage

    def __reduce__(self) -> tuple:
        """Pickle by stage."""
        return type(self), (self.stage,)


class WriteError(T2VError, OSError):
    """An output file or folder that could not be written (a full disk, a lost mount); the message names it and the
    cause. What was half-written has been removed."""


class DownloadError(T2VError):
    """A checkpoint the Hugging Face Hub did not hand over (out of reach, refused, not a model); the message says why
    and which files to copy by hand instead."""
