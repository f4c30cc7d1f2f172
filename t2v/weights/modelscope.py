"""ModelScope's published directory: configuration.json and three PyTorch checkpoints, as on the Hub.

configuration.json's `model.model_cfg` / `model.model_args` become a ModelConfig; the checkpoints are read with
torch.load (weights_only, or the restricted unpickler for the Lightning VAE file) and renamed by t2v.weights.keys.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from t2v.config import ModelConfig, SamplerDefaults, TextConfig, UNetConfig
from t2v.errors import WeightsError
from t2v.weights import keys
from t2v.weights.files import read_json, torch_load, where_from

FILES = {"unet": "ckpt_unet", "vae": "ckpt_autoencoder", "text_encoder": "ckpt_clip"}  # model_args key per network
DEFAULT_FILES = {"ckpt_unet": "text2video_pytorch_model.pth", "ckpt_autoencoder": "VQGAN_autoencoder.pth",
                 "ckpt_clip": "open_clip_pytorch_model.bin"}


def _truthy(value: Any) -> bool:
    """ModelScope writes `temporal_attention` as the string "True"."""
    return value is True or str(value).strip().lower() == "true"


def _unet_config(cfg: Mapping[str, Any]) -> UNetConfig:
    base = UNetConfig()
    return replace(
        base,
        in_dim=int(cfg.get("unet_in_dim", base.in_dim)),
        dim=int(cfg.get("unet_dim", base.dim)),
        context_dim=int(cfg.get("unet_context_dim", base.context_dim)),
        out_dim=int(cfg.get("unet_out_dim", base.out_dim)),
        dim_mult=tuple(int(m) for m in cfg.get("unet_dim_mult", base.dim_mult)),
        num_heads=int(cfg.get("unet_num_heads", base.num_heads)),
        head_dim=int(cfg.get("unet_head_dim", base.head_dim)),
        num_res_blocks=int(cfg.get("unet_res_blocks", base.num_res_blocks)),
        attn_scales=tuple(float(s) for s in cfg.get("unet_attn_scales", base.attn_scales)),
        temporal_attention=_truthy(cfg.get("temporal_attention", True)),
    )


def from_modelscope_json(data: dict[str, Any]) -> ModelConfig:
    """Build a ModelConfig from a ModelScope configuration.json (its `model.model_cfg` / `model.model_args`)."""
    try:
        model = data["model"]
        cfg, args = model["model_cfg"], model["model_args"]
    except (KeyError, TypeError) as exc:
        raise ValueError(f"configuration.json has no model.model_cfg / model.model_args section ({exc!r})") from exc
    unet = _unet_config(cfg)
    sampler = replace(SamplerDefaults(), num_timesteps=int(cfg.get("num_timesteps", SamplerDefaults.num_timesteps)))
    for key, expected in (("mean_type", "eps"), ("var_type", "fixed_small")):
        if key in cfg and cfg[key] != expected:
            raise ValueError(f"configuration.json model_cfg.{key} is {cfg[key]!r}; only {expected!r} is supported")
    # ModelScope hard-codes ViT-H-14 (24 blocks of width 1024, heads of 64); its width is the UNet's context width
    text = replace(TextConfig(), width=unet.context_dim, heads=max(1, unet.context_dim // 64))
    return ModelConfig(unet=unet, text=text, sampler=sampler, frames=int(args.get("max_frames", ModelConfig.frames)))


def read_unet(path: Path) -> dict[str, torch.Tensor]:
    """text2video_pytorch_model.pth: a bare state dict whose keys already match UNet3D (`temopral_conv` kept)."""
    state = torch_load(path, trusted_layout=True, hint=where_from(path.parent))
    if not isinstance(state, Mapping):
        raise WeightsError(f"{path} holds a {type(state).__name__}, not a UNet state dict; "
                           f"{where_from(path.parent)}")
    return dict(state)


def read_vae(path: Path) -> dict[str, torch.Tensor]:
    """VQGAN_autoencoder.pth: a whole Lightning LDM checkpoint; its `state_dict` holds the autoencoder."""
    ckpt = torch_load(path, trusted_layout=False, hint=where_from(path.parent))
    state = ckpt.get("state_dict", ckpt) if isinstance(ckpt, Mapping) else None
    if not isinstance(state, Mapping):
        raise WeightsError(f"{path} has no state_dict; expected a Lightning checkpoint. "
                           f"{where_from(path.parent)}")
    vae = keys.modelscope_vae(state)
    if not vae:
        raise WeightsError(f"{path} has no '{keys.VAE_PREFIX}*' keys, so it holds no autoencoder; "
                           f"{where_from(path.parent)}")
    return vae


def read_text_encoder(path: Path, cfg: TextConfig) -> dict[str, torch.Tensor]:
    """open_clip_pytorch_model.bin: a full CLIP, of which the encoder uses part of the text tower."""
    state = torch_load(path, trusted_layout=True, hint=where_from(path.parent))
    if not isinstance(state, Mapping):
        raise WeightsError(f"{path} holds a {type(state).__name__}, not a CLIP state dict; "
                           f"{where_from(path.parent)}")
    return keys.openclip_text(state, cfg)


def modelscope_files(path: Path) -> tuple[ModelConfig, dict[str, Path]]:
    """(config, the weight file of each network) that a ModelScope directory's configuration.json names."""
    raw = read_json(path / "configuration.json", where_from(path))
    try:
        config = from_modelscope_json(raw)
    except ValueError as exc:
        raise WeightsError(f"{path / 'configuration.json'} is not a valid ModelScope configuration: {exc}") from exc
    args = raw["model"]["model_args"]
    return config, {name: path / args.get(key, DEFAULT_FILES[key]) for name, key in FILES.items()}


def read_modelscope(path: Path) -> tuple[ModelConfig, dict[str, dict[str, torch.Tensor]], dict[str, str]]:
    """(config, state dicts, file names) from a ModelScope directory as published."""
    config, files = modelscope_files(path)
    states = {"unet": read_unet(files["unet"]), "vae": read_vae(files["vae"]),
              "text_encoder": read_text_encoder(files["text_encoder"], config.text)}
    return config, states, {name: str(file) for name, file in files.items()}
