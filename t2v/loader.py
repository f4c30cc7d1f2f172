"""`load_pipeline(source)`: recognise a checkpoint layout, build the networks, load them strictly; and `convert`.

Layouts: ModelScope's published directory, diffusers' (t2v.diffusers_format), our safetensors export, tiny-random.
Default width/height/frames per model: t2v.presets.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path
from typing import Any

import torch

from t2v import presets, weights
from t2v.autoencoder import AutoencoderKL
from t2v.config import (
    TINY_RANDOM,
    ModelConfig,
    SamplerDefaults,
    TextConfig,
    UNetConfig,
    VAEConfig,
    from_modelscope_json,
    tiny_config,
)
from t2v.diffusers_format import read_diffusers
from t2v.errors import WeightsError
from t2v.pipeline import VideoPipeline
from t2v.text_encoder import TextEncoder, unused_checkpoint_keys
from t2v.unet import UNet3D

log = logging.getLogger(__name__)

EXPORT_FORMAT = 1
DTYPES = {"float32": torch.float32, "fp32": torch.float32, "float16": torch.float16, "fp16": torch.float16,
          "bfloat16": torch.bfloat16, "bf16": torch.bfloat16}
MODELSCOPE_FILES = {"unet": "ckpt_unet", "vae": "ckpt_autoencoder", "text_encoder": "ckpt_clip"}
MODELSCOPE_DEFAULTS = {"ckpt_unet": "text2video_pytorch_model.pth", "ckpt_autoencoder": "VQGAN_autoencoder.pth",
                       "ckpt_clip": "open_clip_pytorch_model.bin"}


def parse_dtype(dtype: torch.dtype | str | None, device: torch.device) -> torch.dtype:
    """A torch dtype from a name; default float32 on CPU and float16 on GPUs (ModelScope's own autocast dtype).

    Measured on the real-size network: fp16 latents are within 2e-3 of fp32, bf16 only within 1.5e-2.
    """
    if dtype is None:
        return torch.float32 if device.type == "cpu" else torch.float16
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype not in DTYPES:
        raise ValueError(f"dtype {dtype!r} is not one of {', '.join(DTYPES)}")
    return DTYPES[dtype]


def build_modules(config: ModelConfig, device: str | torch.device = "meta") -> dict[str, torch.nn.Module]:
    """The three networks, uninitialised on the meta device unless asked otherwise."""
    with torch.device(device):
        return {"unet": UNet3D(config.unet), "vae": AutoencoderKL(config.vae), "text_encoder": TextEncoder(config.text)}


def random_state_dicts(config: ModelConfig, seed: int = 0,
                       device: str | torch.device = "cpu") -> dict[str, dict[str, torch.Tensor]]:
    """Seeded random weights for every network (PyTorch's default initialisation), drawn on `device` (a GPU draws
    the 1.8B weights in seconds; other values than the CPU's) and returned on the CPU."""
    device = torch.device(device)
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        modules = build_modules(config, device=device)
    return {name: {k: v.cpu() for k, v in module.state_dict().items()} for name, module in modules.items()}


def assemble(config: ModelConfig, states: dict[str, dict[str, torch.Tensor]], sources: dict[str, str],
             device: str | torch.device = "cpu", dtype: torch.dtype | str | None = None) -> VideoPipeline:
    """Strictly load each network's state dict, then move it to the device and dtype."""
    device = torch.device(device)
    dtype = parse_dtype(dtype, device)
    modules = build_modules(config)
    for name, module in modules.items():
        weights.load_into(module, states[name], sources[name])
        module.to(device=device, dtype=dtype).requires_grad_(False)
    return VideoPipeline(config, modules["unet"], modules["vae"], modules["text_encoder"], device, dtype)


def detect_layout(source: str | Path) -> str:
    """'tiny-random', 'modelscope', 'export' or 'diffusers'; anything else raises naming what was looked for."""
    if str(source) == TINY_RANDOM:
        return TINY_RANDOM
    path = Path(source)
    if not path.is_dir():
        raise WeightsError(f"model source {str(source)!r} is neither '{TINY_RANDOM}' nor an existing directory")
    if (path / weights.EXPORT_MANIFEST).is_file():
        return "export"
    if (path / "configuration.json").is_file():
        return "modelscope"
    if (path / "model_index.json").is_file():
        return "diffusers"
    raise WeightsError(f"{path} is not a known model layout: expected configuration.json (ModelScope), "
                       f"{weights.EXPORT_MANIFEST} (`python -m t2v convert` export) or model_index.json (diffusers); "
                       f"{weights.WHERE_FROM}")


def read_modelscope(path: Path) -> tuple[ModelConfig, dict[str, dict[str, torch.Tensor]], dict[str, str]]:
    """Config and state dicts from a ModelScope directory as published."""
    try:
        raw = json.loads((path / "configuration.json").read_text())
        config = from_modelscope_json(raw)
    except (json.JSONDecodeError, ValueError) as exc:
        raise WeightsError(f"{path / 'configuration.json'} is not a valid ModelScope configuration: {exc}") from exc
    args = raw["model"]["model_args"]
    files = {name: path / args.get(key, MODELSCOPE_DEFAULTS[key]) for name, key in MODELSCOPE_FILES.items()}
    states = {"unet": weights.read_modelscope_unet(files["unet"]),
              "vae": weights.read_modelscope_vae(files["vae"]),
              "text_encoder": weights.read_openclip_text(files["text_encoder"], unused_checkpoint_keys(config.text))}
    return config, states, {name: str(file) for name, file in files.items()}


def _config_from_dict(data: dict[str, Any]) -> ModelConfig:
    def part(cls: type, values: dict[str, Any]) -> Any:
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})

    sections = {"unet": UNetConfig, "vae": VAEConfig, "text": TextConfig, "sampler": SamplerDefaults}
    return ModelConfig(**{k: part(sections[k], v) if k in sections else v for k, v in data.items()})


def read_export(path: Path, device: str) -> tuple[ModelConfig, dict[str, dict[str, torch.Tensor]], dict[str, str]]:
    """Config and memory-mapped state dicts from our safetensors export."""
    manifest_path = path / weights.EXPORT_MANIFEST
    try:
        manifest = json.loads(manifest_path.read_text())
        config = _config_from_dict(manifest["config"])
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise WeightsError(f"{manifest_path} is not a valid export manifest ({exc!r}); "
                           "re-run `python -m t2v convert`") from exc
    if manifest.get("format") != EXPORT_FORMAT:
        raise WeightsError(f"{manifest_path} has format {manifest.get('format')!r}; this version reads {EXPORT_FORMAT}")
    files = {name: path / file for name, file in weights.EXPORT_FILES.items()}
    load_device = device if device.startswith("cuda") else "cpu"
    states = {name: weights.read_safetensors(file, load_device) for name, file in files.items()}
    return config, states, {name: str(file) for name, file in files.items()}


def read_source(source: str | Path, device: str = "cpu", prefer_half: bool = False):
    """(config, state dicts, file names) for any supported source; `prefer_half` picks diffusers' fp16 files."""
    layout = detect_layout(source)
    if layout == TINY_RANDOM:
        config = tiny_config()
        return config, random_state_dicts(config), {name: f"{TINY_RANDOM}:{name}" for name in weights.EXPORT_FILES}
    path = Path(source)
    if layout == "diffusers":
        return read_diffusers(path, device, prefer_half)
    config, states, sources = read_modelscope(path) if layout == "modelscope" else read_export(path, device)
    return presets.for_directory(config, path, by_name=layout == "modelscope"), states, sources


def load_pipeline(source: str | Path, device: str | torch.device = "cpu", dtype: torch.dtype | str | None = None,
                  width: int | None = None, height: int | None = None, frames: int | None = None) -> VideoPipeline:
    """Load a ModelScope or diffusers directory, a `t2v convert` export, or 'tiny-random' onto `device`.

    width/height/frames override the model's default request size (t2v.presets lists where defaults come from).
    """
    half = parse_dtype(dtype, torch.device(device)) != torch.float32
    config, states, sources = read_source(source, str(device), prefer_half=half)
    config = presets.with_overrides(config, width, height, frames)
    pipe = assemble(config, states, sources, device, dtype)
    log.info("loaded %s (%s) on %s as %s", source, config.name, pipe.device, pipe.dtype)
    if config.is_random:
        log.warning("model %s has random weights: its output is noise", source)
    return pipe


def convert(source: str | Path, destination: str | Path, dtype: torch.dtype | str | None = "float16",
            width: int | None = None, height: int | None = None, frames: int | None = None) -> Path:
    """Write any supported source as our export: a manifest (config and defaults) and one safetensors per network."""
    half = dtype is not None and parse_dtype(dtype, torch.device("cpu")) != torch.float32
    config, states, sources = read_source(source, prefer_half=half)
    config = presets.with_overrides(config, width, height, frames)
    modules = build_modules(config)
    for name, module in modules.items():
        weights.check_state_dict(states[name], module, sources[name])
    out = Path(destination)
    out.mkdir(parents=True, exist_ok=True)
    cast = None if dtype is None else parse_dtype(dtype, torch.device("cpu"))
    for name, file in weights.EXPORT_FILES.items():
        weights.write_safetensors(states[name], out / file, cast)
    manifest = {"format": EXPORT_FORMAT, "source": str(source), "dtype": str(cast or "as-is"),
                "config": dataclasses.asdict(config)}
    (out / weights.EXPORT_MANIFEST).write_text(json.dumps(manifest, indent=2))
    log.info("converted %s to %s (%s)", source, out, cast)
    return out
