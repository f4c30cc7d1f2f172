"""LoRA adapters ("styles") in the layouts diffusers' `TextToVideoSDPipeline.load_lora_weights` reads, mapped onto
our UNet3D and OpenCLIP text encoder through t2v.weights.keys (diffusers' names → ours). docs/lora.md has the
evidence for each rule.

Layouts:
- peft, as `save_lora_weights` writes it: `unet.<module>.lora_A.weight` / `.lora_B.weight`, and
  `text_encoder.[text_model.]<module>.lora_A.weight` (transformers 5 saves without `text_model.`). The adapters'
  LoraConfig may sit in the safetensors header under `lora_adapter_metadata` (`{"unet.r": 4, "unet.lora_alpha":
  8, "unet.alpha_pattern": {…}, "text_encoder.r": …}`).
- diffusers' older names: `….processor.to_q_lora.down.weight` (to_k, to_v, to_out), `….lora.down|up.weight`,
  `….lora_linear_layer.down|up.weight`. Keys with neither a `unet.` nor a `text_encoder.` prefix are the UNet's,
  as diffusers ≤ 0.31 read them (later versions skip such a file without a word).
- kohya-ss: `lora_unet_<module, "." written "_">.lora_down.weight`, `.lora_up.weight`, `.alpha`; `lora_te_…` for
  the text encoder. Names are looked up among the real module names; diffusers' own rewrite knows only the
  spatial ones and silently drops the temporal layers' keys, which are applied here.

A layer adds scale · B @ A to its weight; scale = the user's × alpha / rank (peft; alpha / √rank with use_rslora).
alpha is the metadata's (alpha_pattern, else lora_alpha, matched as peft matches patterns), else the kohya
`.alpha`, else the rank itself (scale 1: what diffusers and peft assume of a file that names no alpha).
Refused with every misfit named, before anything is applied: keys that match no module, shapes that do not fit,
halves of a pair, NaN or inf values, and kinds t2v does not apply (DoRA, LoRA biases, LyCORIS LoHa/LoKr/Tucker,
embeddings).
"""

from __future__ import annotations

import json
import logging
import math
import os
import pickle
import re
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open

from t2v.config import ModelConfig
from t2v.errors import LoraError, WeightsError
from t2v.weights import keys
from t2v.weights.files import (
    HEAD_BYTES,
    PICKLE,
    ZIP,
    check_readable,
    preview_keys,
    read_safetensors,
    safetensors_like,
    what_it_is,
)

log = logging.getLogger(__name__)

LORA_FILES = ("pytorch_lora_weights.safetensors", "pytorch_lora_weights.bin")  # diffusers' names in a directory
METADATA_KEY = "lora_adapter_metadata"
NETWORKS = ("unet", "text_encoder")  # the file's prefixes, our networks' names
HINT = ("t2v applies LoRAs trained for ModelScope text-to-video (diffusers' UNet3DConditionModel and its CLIP text "
        "encoder); is this one for another model?")
_KOHYA = {"lora_unet_": "unet", "lora_te_": "text_encoder", "lora_te1_": "text_encoder"}
_KOHYA_PARTS = {"lora_down.weight": "down", "lora_up.weight": "up", "alpha": "alpha"}
_SUFFIXES = {"lora_A.weight": "down", "lora_B.weight": "up", "lora.down.weight": "down", "lora.up.weight": "up",
             "lora_linear_layer.down.weight": "down", "lora_linear_layer.up.weight": "up"}
_OLD_ATTENTION = re.compile(r"^(?P<module>.+)\.(?P<proj>to_q|to_k|to_v|to_out)_lora\.(?P<kind>down|up)\.weight$")
_OLD_NAMES = {"unet": {"to_q": "to_q", "to_k": "to_k", "to_v": "to_v", "to_out": "to_out.0"},
              "text_encoder": {"to_q": "q_proj", "to_k": "k_proj", "to_v": "v_proj", "to_out": "out_proj"}}
_UNSUPPORTED = {"DoRA magnitudes": ("dora_scale", "lora_magnitude_vector"), "LoRA biases": (".bias",),
                "LyCORIS factors": ("hada_", "lokr_", "lora_mid", "oft_"), "embedding adapters": ("lora_embedding",),
                "an SDXL second text encoder": ("lora_te2_", "text_encoder_2.")}
_NOT_ADAPTABLE = ("token_embedding.weight", "positional_embedding")  # peft adapts Linear and Conv layers only


@dataclass(frozen=True)
class LoraLayer:
    """One adapted weight: scale · up @ down added to our tensor `key` (or its third `part` of q, k, v)."""

    name: str  # the module as the file names it, "unet.down_blocks.0…to_q" (for messages)
    network: str  # "unet" | "text_encoder"
    key: str  # our state-dict key of the weight
    part: int | None  # which third of a fused in_proj weight (q, k, v); None: the whole tensor
    shape: tuple[int, ...]  # our shape of that tensor (or third)
    down: torch.Tensor  # A: [rank, in, *kernel]
    up: torch.Tensor  # B: [out, rank, 1, …]
    scale: float  # alpha / rank (alpha / √rank with rsLoRA), before the user's scale

    def delta(self, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """scale · up @ down in our shape (Conv1d's trailing 1 and convolution kernels included)."""
        down, up = self.down.to(device, dtype).flatten(1), self.up.to(device, dtype).flatten(1)
        return (self.scale * (up @ down)).reshape(self.shape)


@dataclass(frozen=True)
class LoraWeights:
    """A LoRA file read and checked against one model config: its layers, ready to fuse or attach."""

    name: str
    source: str
    layers: tuple[LoraLayer, ...]

    def networks(self) -> set[str]:
        """The networks it adapts: 'unet', 'text_encoder' or both."""
        return {layer.network for layer in self.layers}


@dataclass
class _Module:
    down: torch.Tensor | None = None
    up: torch.Tensor | None = None
    alpha: float | None = None
    keys: list[str] = field(default_factory=list)


def read_lora(source: str | Path | Mapping[str, torch.Tensor], config: ModelConfig,
              name: str | None = None) -> LoraWeights:
    """Read a LoRA file, a directory holding `pytorch_lora_weights.safetensors`, or a state dict, and map it onto
    the networks of `config`; LoraError naming every key that does not fit. Named `name`, else after the file (its
    stem) or the directory, else "lora"."""
    if name is not None and (not isinstance(name, str) or not name.strip()):  # set_lora(name) must find it again
        raise LoraError(f"LoRA name {name!r} must be a non-empty str, such as 'claymation' (or None: the file's stem)")
    state, metadata, label = _read(source)
    modules, problems = _parse(state)
    problems += _not_finite(state)
    foreign: list[str] = []
    layers = _layers(modules, _configs(metadata, label), config, problems, foreign)
    if not layers and not problems and not foreign:
        problems.append("it holds no LoRA layers")
    if problems or foreign:
        hint = f". {HINT}" if foreign else ""
        raise LoraError(f"{label} does not fit the model {config.name}: {'; '.join(foreign + problems)}{hint}")
    if name is None:  # the file's stem, or the folder's name for diffusers' pytorch_lora_weights in it ("." too)
        name = "lora" if isinstance(source, Mapping) else Path(source).stem if Path(source).is_file() else Path(
            source).resolve().name
    return LoraWeights(name, label, tuple(layers))


# what a bad LoRA path is told to name instead
_HINT = "name a LoRA .safetensors file, or a folder holding pytorch_lora_weights.safetensors"


def lora_file(path: Path) -> Path:
    """The file of a LoRA path: the path itself, or diffusers' file name in a directory; LoraError if none."""
    if not path.is_dir():
        return path
    for file in LORA_FILES:
        if (path / file).is_file():
            return path / file
    raise LoraError(f"{path} holds neither {' nor '.join(LORA_FILES)}")


def lora_keys(path: Path) -> list[str]:
    """The tensor names in the LoRA file of `path` (a file, or a folder holding diffusers' file), read without the
    tensors where the format allows; LoraError when it cannot be read or is not a state dict. For the checks made
    before a model loads (t2v.preflight), so a bad .bin is refused before a model's minutes of loading, as a bad
    .safetensors is."""
    file = lora_file(path)
    if file.suffix != ".safetensors":
        return list(_pickled_state(file))
    _check_readable(file)
    try:
        with safe_open(str(file), framework="pt") as f:
            return list(f.keys())
    except (SafetensorError, OSError) as exc:
        raise LoraError(f"{file} is not a readable safetensors file ({exc}); {_HINT}") from exc


def _check_readable(path: Path) -> None:
    """LoraError unless `path` is a file this process may open that holds something of the kind its name says: an
    empty one (a download or copy cut short), text or a web page saved under a LoRA's name, a safetensors file
    named .bin or the reverse, are said to be so, not as the reader's complaint ("header too small", "EOFError",
    "IndexError: pop from empty list")."""
    if path.is_symlink() and not path.exists():  # else "missing", while `ls` shows it there
        raise LoraError(f"{path} is a link to {os.readlink(path)}, which does not exist; {_HINT}")
    try:
        check_readable(path, _HINT)
        size = path.stat().st_size
        with open(path, "rb") as file:
            head = file.read(HEAD_BYTES)
    except WeightsError as exc:
        raise LoraError(str(exc)) from exc
    except OSError as exc:
        raise LoraError(f"{path} could not be read ({exc.strerror or exc}); {_HINT}") from exc
    if size == 0:
        raise LoraError(f"{path} is empty (0 bytes: a download or copy cut short?); {_HINT}")
    problem = _safetensors_head(path, head, size) if path.suffix == ".safetensors" else _torch_head(path, head)
    if problem is not None:
        raise LoraError(f"{path} {problem}; {_HINT}")


def _safetensors_head(path: Path, head: bytes, size: int) -> str | None:
    """What a .safetensors file is instead, told from its first bytes; None when it starts as one should."""
    if head.startswith((ZIP, PICKLE)):
        return f"is a torch checkpoint, not a safetensors file: name it {path.with_suffix('.bin').name}"
    if not safetensors_like(head):
        return (f"is not a readable safetensors file: it is {what_it_is(head)}, where a safetensors file starts "
                "with its header's length and a JSON header")
    length = int.from_bytes(head[:8], "little")
    if 8 + length > size:
        return f"is not a readable safetensors file: it is truncated ({size} bytes; its header alone says {8 + length})"
    return None


def _torch_head(path: Path, head: bytes) -> str | None:
    """What a .bin/.pt file is instead of a torch checkpoint (a zip archive holding data.pkl, or a legacy pickle),
    told from its first bytes and, for a zip archive, its list of files; None when it looks like one."""
    if safetensors_like(head):
        return f"is a safetensors file, not a torch checkpoint: name it {path.with_suffix('.safetensors').name}"
    if head.startswith(PICKLE):
        return None
    if not head.startswith(ZIP):
        return f"is not a torch checkpoint: it is {what_it_is(head)}, where torch.save writes a zip archive or a pickle"
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except (zipfile.BadZipFile, EOFError, OSError, ValueError):
        return ("is not a readable torch checkpoint: it starts as a zip archive, but the end of the archive, where "
                "torch lists its tensors, is missing or damaged (a download or copy cut short?)")
    if not any(name.endswith("/data.pkl") for name in names):
        held = ", ".join(names[:3]) + (" …" if len(names) > 3 else "") if names else "nothing"
        return f"is a zip archive that is not a torch checkpoint (it holds {held}; torch.save writes <name>/data.pkl)"
    return None


def _pickled_state(path: Path) -> dict[str, torch.Tensor]:
    """A .bin/.pt LoRA file's tensors, read with torch.load(weights_only=True) (diffusers' .bin: plain tensors only),
    which runs nothing the file names. A zip-format file (torch.save's since torch 1.6) is memory-mapped: only the
    tensors used are read, so a model of gigabytes named as a LoRA is refused for its keys without reading them; the
    legacy format cannot be mapped and is read whole."""
    _check_readable(path)
    try:
        mapped = zipfile.is_zipfile(path)
        state = torch.load(path, map_location="cpu", weights_only=True, mmap=mapped)
    except pickle.UnpicklingError as exc:
        raise LoraError(f"{path} is not a plain state dict of tensors (read with torch.load(weights_only=True), "
                        f"which runs nothing the file names); {_HINT}") from exc
    except Exception as exc:  # any file can be named: a damaged pickle meets torch.load as KeyError, EOFError, ...
        log.info("torch.load(%s) failed: %s: %s", path, type(exc).__name__, exc)
        raise LoraError(f"{path} is not a readable torch checkpoint: it starts as one but is damaged or cut short "
                        f"(torch.load could not read it); {_HINT}") from exc
    if not isinstance(state, dict):
        raise LoraError(f"{path} holds a {type(state).__name__}, not a state dict of LoRA tensors")
    return state


def _read(source: str | Path | Mapping[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], str | None, str]:
    """(tensors, the metadata's JSON, a label for messages)."""
    if isinstance(source, Mapping):
        return dict(source), None, "the LoRA state dict"
    if not isinstance(source, str | os.PathLike) or not str(source).strip():  # None: a TypeError from pathlib
        raise LoraError(f"LoRA source {source!r:.60} is not a path or a state dict; {_HINT} (str or Path), or pass "
                        "a state dict of its tensors")
    path = lora_file(Path(source))
    if path.suffix != ".safetensors":
        return _pickled_state(path), None, str(path)
    _check_readable(path)
    try:
        state = read_safetensors(path, hint=_HINT)
        with safe_open(str(path), framework="pt") as f:
            return state, (f.metadata() or {}).get(METADATA_KEY), str(path)
    except WeightsError as exc:
        raise LoraError(str(exc)) from exc
    except (SafetensorError, OSError, RuntimeError) as exc:
        raise LoraError(f"{path} could not be read as a LoRA file ({type(exc).__name__}: {exc}); {_HINT}") from exc


def _configs(metadata: str | None, label: str) -> dict[str, dict[str, Any]]:
    """The adapters' LoraConfig fields per network, from the header's `unet.r`, `text_encoder.lora_alpha` …; LoraError
    naming a field that peft would not have written (a rank that is no whole number, a pattern that is no regular
    expression), before it is used."""
    if metadata is None:
        return {}
    try:
        flat = json.loads(metadata)
    except json.JSONDecodeError as exc:
        raise LoraError(f"{label}: its {METADATA_KEY} header is not JSON ({exc}); {_METADATA_FIX}") from exc
    if not isinstance(flat, dict):
        raise LoraError(f"{label}: its {METADATA_KEY} header is a JSON {type(flat).__name__}, where diffusers writes "
                        f"an object such as {{\"unet.r\": 4, \"unet.lora_alpha\": 4}}; {_METADATA_FIX}")
    out: dict[str, dict[str, Any]] = {}
    for key, value in flat.items():
        network, _, name = key.partition(".")
        problem = _field_problem(name, value) if network in NETWORKS else None
        if problem is not None:
            raise LoraError(f"{label}: its {METADATA_KEY} header has {key} = {json.dumps(value):.60}, {problem}; "
                            f"{_METADATA_FIX}")
        out.setdefault(network, {})[name] = value
    return out


_METADATA_FIX = "save the LoRA again with diffusers' save_lora_weights, or without that header"


def _number(value: Any, whole: bool = False) -> bool:
    """A finite JSON number (not a bool); a whole one above 0 if `whole` (a rank)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return False
    return not whole or (value > 0 and value == int(value))


def _field_problem(name: str, value: Any) -> str | None:
    """What is wrong with one LoraConfig field of the header that t2v reads (None: nothing, or not one it reads)."""
    if name in ("r", "lora_alpha"):
        return None if _number(value, whole=name == "r") else (
            "not a whole number above 0" if name == "r" else "not a number")
    if name in ("use_rslora", "use_dora", "lora_bias"):
        return None if isinstance(value, bool) or value is None else "not true or false"
    if name not in ("rank_pattern", "alpha_pattern") or value is None:
        return None
    if not isinstance(value, dict):
        return "not an object of module-name patterns and their values"
    for pattern, given in value.items():
        try:
            re.compile(pattern)
        except re.error as exc:
            return f"whose pattern {pattern!r} is not a regular expression ({exc})"
        rank = name == "rank_pattern"
        if not _number(given, whole=rank):
            return f"whose value for {pattern!r} is {given!r}, not a {'whole number above 0' if rank else 'number'}"
    return None


def _parse(state: Mapping[str, torch.Tensor]) -> tuple[dict[tuple[str, str], _Module], list[str]]:
    """(network, module as named in the file) → its A, B and alpha; and one line per kind of key not understood."""
    unsupported = {kind: [k for k in state if any(mark in k for mark in marks)] for kind, marks in _UNSUPPORTED.items()}
    problems = [f"keys of {kind}, which t2v does not apply: {len(found)} ({preview_keys(found, 3)})"
                for kind, found in unsupported.items() if found]
    if problems:
        return {}, problems
    kohya = all(k.startswith(tuple(_KOHYA)) for k in state)
    prefixed = any(k.split(".", 1)[0] in NETWORKS for k in state)
    modules: dict[tuple[str, str], _Module] = {}
    unknown = []
    for key, tensor in state.items():
        found = _kohya_key(key) if kohya else _diffusers_key(key, prefixed)
        if found is None or not isinstance(tensor, torch.Tensor) or (found[2] == "alpha" and tensor.numel() != 1):
            unknown.append(key)
            continue
        network, module, kind = found
        entry = modules.setdefault((network, module), _Module())
        entry.keys.append(key)
        if kind == "alpha":
            entry.alpha = float(tensor)
        else:
            setattr(entry, kind, tensor)
    if unknown:
        problems.append(f"keys that are not LoRA weights in a layout diffusers reads: {len(unknown)} "
                        f"({preview_keys(unknown, 5)})")
    return modules, problems


def _not_finite(state: Mapping[str, torch.Tensor]) -> list[str]:
    """A line naming the keys holding NaN or inf (a training run that diverged, a damaged file), or none: fused, such
    a layer makes every render NaN, which would then be blamed on the scale."""
    bad = [key for key, tensor in state.items() if isinstance(tensor, torch.Tensor) and tensor.is_floating_point()
           and not torch.isfinite(tensor.float() if tensor.itemsize == 1 else tensor).all()]
    return [f"keys holding NaN or inf values: {len(bad)} ({preview_keys(bad, 5)})"] if bad else []


def _kohya_key(key: str) -> tuple[str, str, str] | None:
    name, _, part = key.partition(".")
    prefix = next(p for p in _KOHYA if name.startswith(p))
    return (_KOHYA[prefix], name[len(prefix):], _KOHYA_PARTS[part]) if part in _KOHYA_PARTS else None


def _diffusers_key(key: str, prefixed: bool) -> tuple[str, str, str] | None:
    network, _, rest = key.partition(".") if prefixed else ("unet", "", key)
    if network not in NETWORKS:
        return None
    rest = rest.replace(".processor.", ".")  # attention-processor names of diffusers' first LoRA layout
    old = _OLD_ATTENTION.match(rest)
    if old:
        return network, f"{old['module']}.{_OLD_NAMES[network][old['proj']]}", old["kind"]
    for suffix, kind in _SUFFIXES.items():
        if rest.endswith("." + suffix):
            return network, rest[:-len(suffix) - 1], kind
    return None


@dataclass(frozen=True)
class Target:
    """Where the weight of a layer a LoRA may adapt lives here."""

    key: str  # our state-dict key
    part: int | None  # which third of a fused in_proj weight (q, k, v); None: the whole tensor
    shape: tuple[int, ...]  # ours
    theirs: tuple[int, ...]  # diffusers' (Linear where we hold a Conv1d of kernel 1)


@lru_cache(maxsize=4)  # seconds for the real network (two module trees on the meta device); read-only
def targets(config: ModelConfig) -> dict[str, dict[str, Target]]:
    """Every layer a LoRA may adapt (peft's Linear and Conv layers), per network: its diffusers module name
    (the text encoder's without `text_model.`) → its Target."""
    shapes, maps = keys.module_shapes(config), keys.keymaps(config)
    out: dict[str, dict[str, Target]] = {}
    for network in NETWORKS:
        keymap, found = maps[network], {}
        for theirs, (ours, part) in keymap.sources().items():
            shape = shapes[network][ours]
            if not theirs.endswith(".weight") or len(shape) < 2 or ours.endswith(_NOT_ADAPTABLE):
                continue
            if part is not None:
                shape = (shape[0] // 3, *shape[1:])
            flat = (shape[0], math.prod(shape[1:])) if ours in keymap.shapes else shape
            found[theirs.removeprefix(keys.TEXT_PREFIX).removesuffix(".weight")] = Target(ours, part, shape, flat)
        out[network] = found
    return out


def _resolve(network: str, module: str, found: dict[str, Target], kohya_names: dict[str, str]) -> str | None:
    """The diffusers module name of a file's module name (dotted, `text_model.`-prefixed or kohya's)."""
    if network == "text_encoder":
        module = module.removeprefix(keys.TEXT_PREFIX)
    if module in found:
        return module
    return kohya_names.get(module.removeprefix("text_model_") if network == "text_encoder" else module)


def _pattern(patterns: Mapping[str, Any], module: str, default: Any) -> Any:
    """peft's rank_pattern/alpha_pattern lookup: the first pattern that matches the end of the module's name."""
    for pattern, value in patterns.items():
        if re.match(rf"(.*\.)?({pattern})$", module):
            return value
    return default


def _scale(entry: _Module, module: str, cfg: Mapping[str, Any] | None) -> tuple[float, str | None]:
    """(alpha / rank, or a problem): alpha from the metadata, the kohya `.alpha`, or the rank (scale 1)."""
    rank = entry.down.shape[0]
    if cfg is None:
        return (entry.alpha if entry.alpha is not None else rank) / rank, None
    if cfg.get("use_dora") or cfg.get("lora_bias"):
        return 0.0, f"{module}: its metadata asks for DoRA or LoRA biases, which t2v does not apply"
    wanted = _pattern(cfg.get("rank_pattern") or {}, module, cfg.get("r", 8))
    if wanted != rank:
        return 0.0, f"{module}: rank {rank} in the file, {wanted} in its metadata"
    alpha = _pattern(cfg.get("alpha_pattern") or {}, module, cfg.get("lora_alpha", 8))
    return alpha / (math.sqrt(rank) if cfg.get("use_rslora") else rank), None


def _fits(entry: _Module, target: Target) -> bool:
    down, up, weight = entry.down.shape, entry.up.shape, target.theirs
    return (len(down) == len(up) == len(weight) and down[1:] == weight[1:] and up[0] == weight[0]
            and up[1] == down[0] and all(size == 1 for size in up[2:]))


def _layers(modules: dict[tuple[str, str], _Module], configs: dict[str, dict[str, Any]], config: ModelConfig,
            problems: list[str], foreign: list[str]) -> list[LoraLayer]:
    """Check every module against the networks and build its layer; keys for another network go to `foreign`,
    other faults to `problems`, one line per kind."""
    adaptable = targets(config)
    kohya_names = {network: {name.replace(".", "_"): name for name in found} for network, found in adaptable.items()}
    layers, unmatched, misfit, unpaired, unscaled, unusable, seen = [], [], [], [], [], [], {}
    for (network, module), entry in modules.items():
        name = f"{network}.{module}"
        if entry.down is None or entry.up is None:
            unpaired += entry.keys
            continue
        resolved = _resolve(network, module, adaptable[network], kohya_names[network])
        if resolved is None:
            unmatched += entry.keys
            continue
        target = adaptable[network][resolved]
        twice = seen.setdefault((network, resolved), name)
        if twice != name:
            problems.append(f"{twice} and {name} are the same layer")
            continue
        if not _fits(entry, target):
            misfit.append(f"{name}: A {tuple(entry.down.shape)}, B {tuple(entry.up.shape)} for a weight "
                          f"{target.theirs}")
            continue
        if entry.down.shape[0] == 0 or not (entry.down.is_floating_point() and entry.up.is_floating_point()):
            unusable.append(f"{name}: rank {entry.down.shape[0]}, {entry.down.dtype} and {entry.up.dtype}")
            continue
        scale, problem = _scale(entry, resolved, configs.get(network) if configs else None)
        if problem:
            unscaled.append(problem)
            continue
        layers.append(LoraLayer(name, network, target.key, target.part, target.shape, entry.down, entry.up, scale))
    if unmatched:
        foreign.append(f"keys that match no layer of the model: {len(unmatched)} ({preview_keys(unmatched, 5)})")
    if misfit:
        foreign.append(f"layers whose shapes do not fit their weight: {len(misfit)} ({'; '.join(sorted(misfit)[:5])}"
                       f"{' …' if len(misfit) > 5 else ''})")
    if unusable:  # rank 0 divides alpha by 0; integers or booleans are no trained weights
        problems.append(f"layers of rank 0 or whose A and B are not floating-point numbers: {len(unusable)} "
                        f"({'; '.join(sorted(unusable)[:3])}{' …' if len(unusable) > 3 else ''})")
    if unscaled:  # one line, however many layers: a wrong `r` in the header misfits every one
        problems.append(f"layers its metadata does not fit: {len(unscaled)} ({'; '.join(sorted(unscaled)[:3])}"
                        f"{' …' if len(unscaled) > 3 else ''})")
    if unpaired:
        problems.append(f"keys without their A or B half: {len(unpaired)} ({preview_keys(unpaired, 5)})")
    return layers
