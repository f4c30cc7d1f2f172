"""Our own export (`python -m t2v convert`): a JSON manifest with the config, and one safetensors file per network.

The manifest holds the whole ModelConfig, default size and length included, so an export needs no other file;
the safetensors files are memory-mapped when loaded, which makes a cold start fast.
"""

from __future__ import annotations

import dataclasses
import json
import os
import secrets
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError

from t2v.config import ModelConfig, SamplerDefaults, TextConfig, UNetConfig, VAEConfig
from t2v.errors import WeightsError, WriteError
from t2v.weights.files import FOLDER_MODE, read_json, read_safetensors, write_safetensors, write_text

FORMAT = 1  # the manifest's "format"; a reader refuses any other
MANIFEST = "t2v_model.json"
FILES = {"unet": "unet.safetensors", "vae": "vae.safetensors", "text_encoder": "text_encoder.safetensors"}
REDO = "re-run `python -m t2v convert` to write a complete export"


def config_from_dict(data: dict[str, Any]) -> ModelConfig:
    """The ModelConfig that `dataclasses.asdict` wrote (lists back to tuples)."""
    def part(cls: type, values: dict[str, Any]) -> Any:
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})

    sections = {"unet": UNetConfig, "vae": VAEConfig, "text": TextConfig, "sampler": SamplerDefaults}
    return ModelConfig(**{k: part(sections[k], v) if k in sections else v for k, v in data.items()})


def read_export(path: Path, device: str) -> tuple[ModelConfig, dict[str, dict[str, torch.Tensor]], dict[str, str]]:
    """(config, memory-mapped state dicts, file names) of an export; tensors land on `device` if it is a GPU."""
    config, files = export_files(path)
    load_device = device if device.startswith("cuda") else "cpu"
    states = {name: read_safetensors(file, load_device, REDO) for name, file in files.items()}
    return config, states, {name: str(file) for name, file in files.items()}


def export_files(path: Path) -> tuple[ModelConfig, dict[str, Path]]:
    """(config, the file of each network) of an export, its manifest checked."""
    manifest_path = path / MANIFEST
    manifest = read_json(manifest_path, REDO)
    try:
        config = config_from_dict(manifest["config"])
    except (KeyError, TypeError) as exc:
        raise WeightsError(f"{manifest_path} is not a valid export manifest ({exc!r}); {REDO}") from exc
    if manifest.get("format") != FORMAT:
        raise WeightsError(f"{manifest_path} has format {manifest.get('format')!r}; this version reads {FORMAT}")
    return config, {name: path / file for name, file in FILES.items()}


def write_export(config: ModelConfig, states: dict[str, dict[str, torch.Tensor]], folder: Path,
                 dtype: torch.dtype | None, source: str) -> Path:
    """Write the manifest and the three safetensors files (mode 0644) into `folder` (created if needed), whole or not
    at all: into a new folder, then moved into place (see `_staging`). A write that fails (a full disk) is a
    WriteError naming `folder`; what was written of the new export is removed, and so are the folders above it that
    were made for it (a Ctrl-C too)."""
    staging, made, written = None, _missing_parents(Path(os.path.abspath(folder))), False
    try:
        staging = _staging(Path(os.path.abspath(folder)))  # "." has a name this way
        staging.mkdir()
        os.chmod(staging, FOLDER_MODE)  # as its files' FILE_MODE: the service's user opens it whatever the umask
        for name, file in FILES.items():
            write_safetensors(states[name], staging / file, dtype)
        manifest = {"format": FORMAT, "source": source, "dtype": str(dtype or "as-is"),
                    "config": dataclasses.asdict(config)}
        write_text(staging / MANIFEST, json.dumps(manifest, indent=2))
        _move_into(staging, folder)
        written = True
    except (OSError, SafetensorError) as exc:
        cause = exc.strerror if isinstance(exc, OSError) and exc.strerror else " ".join(str(exc).split())
        raise WriteError(f"could not write the export to {folder} ({type(exc).__name__}: {cause}); what was "
                         "written of it is removed") from exc
    finally:
        if staging is not None:  # gone already where it became the folder
            shutil.rmtree(staging, ignore_errors=True)
        if not written:
            _remove_empty(made)
    return folder


def _missing_parents(folder: Path) -> list[Path]:
    """The folders above `folder` (absolute) that are not there yet, the deepest first: those `_staging` will make."""
    missing = []
    for parent in folder.parents:
        if parent.exists():
            break
        missing.append(parent)
    return missing


def _remove_empty(folders: list[Path]) -> None:
    """Remove `folders` (the deepest first) that an export made and left empty; one that holds anything stays, and
    so do those above it."""
    for made in folders:
        try:
            made.rmdir()
        except FileNotFoundError:  # never made: the failure came first
            continue
        except OSError:  # not empty (another program wrote there), or not ours to remove
            return


def _staging(folder: Path) -> Path:
    """A new folder's name to write an export into first, on the file system of `folder`: beside it when it is yet
    to be made (its parents are made now), else inside it (other files may be there)."""
    if folder.is_dir():
        return folder / f".t2v-export.{os.getpid()}-{secrets.token_hex(4)}.part"
    folder.parent.mkdir(parents=True, exist_ok=True)
    stem = folder.name.encode()[:200].decode(errors="ignore")  # within a file system's 255 bytes
    return folder.with_name(f".{stem}.{os.getpid()}-{secrets.token_hex(4)}.part")


def _move_into(staging: Path, folder: Path) -> None:
    """`staging` becomes `folder`, or, where that exists (an earlier export, other files), its files move in: an
    earlier manifest goes first and the new one comes last, so a manifest always describes the files beside it."""
    if not folder.is_dir():
        staging.rename(folder)
        return
    (folder / MANIFEST).unlink(missing_ok=True)
    for file in (*FILES.values(), MANIFEST):
        os.replace(staging / file, folder / file)
