"""The three networks of a config, uninitialised on the meta device or with seeded random weights."""

from __future__ import annotations

import torch

from t2v.autoencoder import AutoencoderKL
from t2v.config import ModelConfig
from t2v.text_encoder import TextEncoder
from t2v.unet import UNet3D


def build_modules(config: ModelConfig, device: str | torch.device = "meta") -> dict[str, torch.nn.Module]:
    """'unet', 'vae' and 'text_encoder', uninitialised on the meta device unless asked otherwise."""
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
