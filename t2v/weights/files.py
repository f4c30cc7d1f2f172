"""What every layout shares: safe reading of pickled checkpoints, safetensors in and out, strict key/shape checks.

Every error names the file, what is wrong with it, and where the official files come from; a file this process
may not read is "permission denied" for the user named, never "corrupt". Files written here are for other users
too (the Docker image's uid 10001, the systemd unit's videobot user): mode 0644 (FILE_MODE), a new export's folder
0755 (FOLDER_MODE).
"""

from __future__ import annotations

import json
import logging
import os
import pickle
import re
import shlex
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from t2v import ellipsis
from t2v.errors import WeightsError

log = logging.getLogger(__name__)

OFFICIAL_REPO = "ali-vilab/modelscope-damo-text-to-video-synthesis"
_REPO_PART = r"[A-Za-z0-9_](?:[A-Za-z0-9_.-]*[A-Za-z0-9_])?"  # letters, digits, - _ .; no - or . at either end
# a Hugging Face repo id, owner/name, by the Hub's own rules (huggingface_hub's validate_repo_id): no "--" or ".."
# anywhere, no ".git" at the end, a name of 96 characters at most
REPO_ID = rf"(?!.*(?:--|\.\.))(?!.*\.git$)(?=[^/]*/[^/]{{1,96}}$){_REPO_PART}/{_REPO_PART}"
REPO_RULES = "letters, digits, - _ . (none of - . at either end of a part, no -- or .., not ending in .git)"
# a repo's page on the Hub, as a browser's address bar shows it: https://huggingface.co/OWNER/NAME[/tree/main/...]
HUB_URL = re.compile(r"https?://(?:www\.)?(?:huggingface\.co|hf\.co)/([^/?#]+/[^/?#]+)(?:[/?#].*)?", re.IGNORECASE)
HUB_OWNERS = ("ali-vilab", "damo-vilab", "cerspense")  # who publishes this architecture's weights on the Hub


def where_from(folder: str | Path = "DIR") -> str:
    """Where the official files come from, with the command that downloads them into the model's `folder` (DIR where
    no folder is known)."""
    return (f"the official files are in the Hugging Face repo {OFFICIAL_REPO} "
            f"(download them with `python -m t2v download {shlex.quote(str(folder))}`)")


WHERE_FROM = where_from()
FILE_MODE = 0o644  # rw-r--r--: safetensors itself writes 0600, which the service's user cannot read
FOLDER_MODE = 0o755  # rwxr-xr-x: a new export's folder, which the service's user must open to read its files


def hub_repo(address: str) -> str | None:
    """The repo id (OWNER/NAME) a Hugging Face web address names (https://huggingface.co/OWNER/NAME/tree/main), or
    None for anything else: t2v takes the id, and a folder for the files."""
    found = HUB_URL.fullmatch(address.strip())
    return found[1] if found and re.fullmatch(REPO_ID, found[1]) else None


def download_command(repo: str) -> str:
    """The command that fetches the Hugging Face repo `repo` (OWNER/NAME) into a folder of its name under weights/."""
    return f"python -m t2v download weights/{repo.partition('/')[2]} --repo {repo}"


def web_address(value: str) -> bool:
    """Whether a value given for a folder is a web address (https://…), which no folder here is named."""
    return re.match(r"[A-Za-z][A-Za-z0-9+.-]*://", value.strip()) is not None


HEAD_BYTES = 64  # bytes read to tell what a file is
LFS_POINTER = b"version https://git-lfs"  # what a Git clone without git-lfs holds in place of a large file
TORCH_ZIP = b"PK\x03\x04"  # torch.save's format since torch 1.6: a zip archive, its tensor list at its end
ZIP = b"PK"  # any zip archive's first bytes (an empty one is only its end record, PK\x05\x06)
PICKLE = b"\x80"  # torch's legacy format and plain pickles: the PROTO opcode first


def safetensors_like(head: bytes) -> bool:
    """Whether a file's first bytes start as a safetensors file does: an 8-byte header length, then the JSON
    header's '{'."""
    return len(head) > 8 and head[8:9] == b"{"


def what_it_is(head: bytes) -> str:
    """A few words on what a file starting with `head` (its first HEAD_BYTES) is, where weights were expected: a
    Git LFS pointer, a web page, text (quoted, cut), or bytes."""
    if head.startswith(LFS_POINTER):
        return "a Git LFS pointer, not the file it stands for (`git lfs pull` fetches it)"
    try:
        text = head.decode("utf-8-sig")
    except UnicodeDecodeError as exc:  # a multi-byte character cut at HEAD_BYTES bytes is still text
        text = head[:exc.start].decode("utf-8-sig") if exc.start > len(head) - 4 else ""
    if text and all(c.isprintable() or c in "\t\r\n" for c in text):
        if text.lstrip().lower().startswith(("<!doctype html", "<html")):
            return "a web page (HTML: a download saved the page, not the file)"
        shown = " ".join(text.split())
        if not shown:
            return "blank text (spaces and line ends only)"
        return f"text ({ellipsis.clip(shown, 33)!r})"
    return f"binary data starting {head[:8]!r}"


def check_readable(path: Path, hint: str) -> None:
    """WeightsError unless `path` is a file this process may open: missing (then `hint`) or permission denied."""
    try:
        with open(path, "rb"):
            pass
    except PermissionError as exc:
        raise WeightsError.permission_denied(path) from exc
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError) as exc:
        raise WeightsError(f"{path} is missing; {hint}") from exc


# ---------------------------------------------------------------------------------------------------------------
# Safe unpickling of the Lightning VAE checkpoint (no pytorch_lightning, no arbitrary globals executed)
# ---------------------------------------------------------------------------------------------------------------

_ALLOWED_GLOBALS = {
    ("collections", "OrderedDict"), ("torch._utils", "_rebuild_tensor_v2"), ("torch._utils", "_rebuild_parameter"),
    ("torch", "Size"), ("torch", "device"), ("builtins", "set"), ("builtins", "frozenset"), ("builtins", "slice"),
    ("_codecs", "encode"), ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
    ("numpy", "dtype"),
}
_ALLOWED_MODULE_PREFIXES = ("torch.storage", "torch.serialization")


class _Inert:
    """Stand-in for any class or function the checkpoint names but we do not trust: it swallows its arguments."""

    def __init__(self, *args: Any, **kwargs: Any):
        self.args, self.kwargs = args, kwargs

    def __setstate__(self, state: Any) -> None:
        self.state = state

    def __call__(self, *args: Any, **kwargs: Any) -> _Inert:
        return _Inert(*args, **kwargs)  # a looked-up "function" stays inert when called


def _allowed(module: str, name: str) -> bool:
    if (module, name) in _ALLOWED_GLOBALS:
        return True
    storage_type = module == "torch" and name.endswith("Storage")
    return storage_type or module.startswith(_ALLOWED_MODULE_PREFIXES) or (module, name) == ("torch", "bfloat16")


class _RestrictedUnpickler(pickle.Unpickler):
    """Resolves only tensor/storage rebuilders and a few harmless builtins; everything else becomes `_Inert`."""

    def find_class(self, module: str, name: str) -> Any:
        if _allowed(module, name) or (module == "torch" and isinstance(getattr(torch, name, None), torch.dtype)):
            return super().find_class(module, name)
        log.debug("checkpoint global %s.%s replaced by an inert stand-in", module, name)
        return type(name, (_Inert,), {"__module__": f"inert.{module}"})


class RestrictedPickle:
    """A `pickle_module` for torch.load that uses the restricted unpickler."""

    Unpickler = _RestrictedUnpickler
    load = staticmethod(pickle.load)
    __name__ = "t2v_restricted_pickle"


def torch_load(path: Path, trusted_layout: bool, hint: str = WHERE_FROM) -> Any:
    """torch.load with weights_only for plain state dicts, or the restricted unpickler for Lightning files; errors
    name the file and `hint` (where a whole copy comes from)."""
    check_readable(path, hint)
    try:
        if trusted_layout:
            return torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        return torch.load(path, map_location="cpu", weights_only=False, pickle_module=RestrictedPickle, mmap=True)
    except PermissionError as exc:
        raise WeightsError.permission_denied(path) from exc
    except Exception as exc:  # corrupt, truncated or not a torch file
        raise WeightsError(f"{path} could not be read ({type(exc).__name__}: {exc}); the file is corrupt or "
                           f"truncated — {hint}") from exc


def read_json(path: Path, hint: str) -> dict[str, Any]:
    """A JSON object from `path`; WeightsError naming the file and `hint` (what to do) otherwise."""
    check_readable(path, hint)
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise WeightsError(f"{path} is not valid JSON ({exc}); {hint}") from exc
    if not isinstance(data, dict):
        raise WeightsError(f"{path} must hold a JSON object; {hint}")
    return data


# ---------------------------------------------------------------------------------------------------------------
# safetensors
# ---------------------------------------------------------------------------------------------------------------

def read_safetensors(path: Path, device: str = "cpu", hint: str = WHERE_FROM) -> dict[str, torch.Tensor]:
    """Memory-mapped safetensors read; errors name the file and `hint` (what to do about it)."""
    check_readable(path, hint)  # safetensors calls a file it may not open "missing"
    try:
        return load_file(str(path), device=device)
    except (SafetensorError, OSError, ValueError) as exc:
        raise WeightsError(f"{path} could not be read ({exc}); the file is corrupt or truncated — {hint}") from exc


def safetensors_shapes(path: Path, hint: str = WHERE_FROM) -> dict[str, torch.Tensor]:
    """Every tensor a safetensors file holds, as an empty meta tensor of its shape: read from its header alone, so a
    state dict's keys and shapes can be checked before its gigabytes are read."""
    check_readable(path, hint)
    try:
        with safe_open(str(path), "pt") as file:
            return {key: torch.empty(file.get_slice(key).get_shape(), device="meta") for key in file.keys()}  # noqa: SIM118 (no __iter__)
    except (SafetensorError, OSError, ValueError) as exc:
        raise WeightsError(f"{path} could not be read ({exc}); the file is corrupt or truncated — {hint}") from exc


def as_meta(state: Mapping[Any, Any], source: str, hint: str = WHERE_FROM) -> dict[str, torch.Tensor]:
    """Each tensor as an empty meta tensor of its shape: a state dict read memory-mapped (torch.load's mmap) checked
    without its data being read. WeightsError naming `source` for an entry that is no plain tensor (a step count, a
    nested dict: a checkpoint wrapped otherwise than the layout's), as the load would refuse it."""
    meta = {}
    for key, value in state.items():
        if not isinstance(key, str) or type(value) is not torch.Tensor or value.is_quantized:
            what = type(value).__name__ if type(value) is not torch.Tensor else f"{value.dtype} tensor"
            raise WeightsError(f"{source} holds {key!r} of type {what} where a plain tensor was expected (a file "
                               f"saved otherwise than the published one); {hint}")
        meta[key] = torch.empty(value.shape, device="meta")
    return meta


def write_safetensors(state: Mapping[str, torch.Tensor], path: Path, dtype: torch.dtype | None) -> None:
    """Write a state dict (optionally cast floating tensors to `dtype`) as contiguous safetensors, mode 0644."""
    out = {k: (v.to(dtype) if dtype is not None and v.is_floating_point() else v).contiguous()
           for k, v in state.items()}
    save_file(out, str(path))
    os.chmod(path, FILE_MODE)


def write_text(path: Path, text: str) -> None:
    """Write a text file (a manifest, a config) for other users to read, mode 0644."""
    path.write_text(text)
    os.chmod(path, FILE_MODE)


# ---------------------------------------------------------------------------------------------------------------
# Strict checks
# ---------------------------------------------------------------------------------------------------------------

def preview_keys(keys: Iterable[str], limit: int = 8) -> str:
    """The first `limit` keys in order, then "… and N more"."""
    keys = sorted(keys)
    more = f" … and {len(keys) - limit} more" if len(keys) > limit else ""
    return ", ".join(keys[:limit]) + more


def check_state_dict(state: Mapping[str, torch.Tensor], module: torch.nn.Module, source: str,
                     hint: str = WHERE_FROM) -> None:
    """Raise WeightsError naming missing/extra keys and wrong shapes of `state` against `module`; `hint`: what to do
    about it (where the right files come from)."""
    expected = {k: tuple(v.shape) for k, v in module.state_dict().items()}
    missing, extra = expected.keys() - state.keys(), state.keys() - expected.keys()
    shapes = {k: (tuple(state[k].shape), expected[k]) for k in expected.keys() & state.keys()
              if tuple(state[k].shape) != expected[k]}
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing keys ({preview_keys(missing)})")
    if extra:
        problems.append(f"{len(extra)} unexpected keys ({preview_keys(extra)})")
    if shapes:
        shown = "; ".join(f"{k}: file {got}, model {want}" for k, (got, want) in sorted(shapes.items())[:6])
        problems.append(f"{len(shapes)} wrong shapes ({shown})")
    if problems:
        raise WeightsError(f"{source} does not match the model: {'; '.join(problems)}. "
                           f"Is it the right file for this model? {hint}")


def load_into(module: torch.nn.Module, state: Mapping[str, torch.Tensor], source: str) -> torch.nn.Module:
    """Strictly check, then load (assigning tensors, so a meta-device module is materialised without a copy)."""
    check_state_dict(state, module, source)
    module.load_state_dict(dict(state), strict=True, assign=True)
    return module
