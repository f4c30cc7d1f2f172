"""Random weights saved in exactly the published ModelScope layout, for loader and fidelity tests."""

from __future__ import annotations

import json
import sys
import types
from collections import OrderedDict
from pathlib import Path

import numpy as np
import torch
from open_clip.model import CLIP, CLIPTextCfg, CLIPVisionCfg

from t2v.config import UNetConfig
from t2v.unet import UNet3D
from tests.t2v.reference import load_reference

# A small UNet that keeps every structural feature of the real one: inner width != channels on the first
# temporal transformer, attention at some scales only, a skip conv where widths change, 3 resolutions.
SMALL_UNET = UNetConfig(dim=32, context_dim=64, dim_mult=(1, 2, 2), num_heads=4, head_dim=16, num_res_blocks=1,
                        attn_scales=(1.0, 0.5))


def reference_unet(cfg: UNetConfig, seed: int = 0, scale: float = 0.15) -> torch.nn.Module:
    """ModelScope's own UNetSD with every tensor randomised (the published init zeroes the output layers)."""
    unet_sd = load_reference("unet_sd")
    torch.manual_seed(seed)
    ref = unet_sd.UNetSD(in_dim=cfg.in_dim, dim=cfg.dim, y_dim=768, context_dim=cfg.context_dim, out_dim=cfg.out_dim,
                         dim_mult=list(cfg.dim_mult), num_heads=cfg.num_heads, head_dim=cfg.head_dim,
                         num_res_blocks=cfg.num_res_blocks, attn_scales=list(cfg.attn_scales), dropout=0.1,
                         temporal_attention=cfg.temporal_attention).eval()
    with torch.no_grad():
        for tensor in ref.state_dict().values():
            tensor.copy_(torch.randn_like(tensor) * scale)
    return ref


def reference_vae(ch: int = 128, seed: int = 0) -> torch.nn.Module:
    """ModelScope's AutoencoderKL with the published ddconfig (optionally narrower), randomised."""
    ddconfig = {"double_z": True, "z_channels": 4, "resolution": 256, "in_channels": 3, "out_ch": 3, "ch": ch,
                "ch_mult": [1, 2, 4, 4], "num_res_blocks": 2, "attn_resolutions": [], "dropout": 0.0}
    torch.manual_seed(seed)
    ref = load_reference("autoencoder").AutoencoderKL(ddconfig, 4).eval()
    with torch.no_grad():
        for tensor in ref.state_dict().values():
            tensor.copy_(torch.randn_like(tensor) * 0.05)
    return ref


def openclip_model(width: int, layers: int = 24, seed: int = 0) -> CLIP:
    """A full open_clip CLIP (tiny vision tower included) whose text tower has the ViT-H-14 shape rules."""
    torch.manual_seed(seed)
    return CLIP(embed_dim=width, vision_cfg=CLIPVisionCfg(layers=1, width=64, head_width=32, patch_size=16,
                                                          image_size=32),
                text_cfg=CLIPTextCfg(width=width, heads=max(1, width // 64), layers=layers)).eval()


class _FakeModelCheckpoint:
    """Stands for pytorch_lightning's ModelCheckpoint callback pickled inside the published VAE file."""

    def __init__(self) -> None:
        self.best_model_score = np.float64(0.25)
        self.kwargs = {"monitor": "val/rec_loss"}


def save_lightning_checkpoint(vae_state: dict[str, torch.Tensor], path: Path, extra: dict | None = None) -> None:
    """A whole Lightning LDM checkpoint: foreign classes, numpy scalars, non-VAE keys, `first_stage_model.*`."""
    module = types.ModuleType("pytorch_lightning.callbacks.model_checkpoint")
    _FakeModelCheckpoint.__module__ = module.__name__
    _FakeModelCheckpoint.__qualname__ = _FakeModelCheckpoint.__name__ = "ModelCheckpoint"
    module.ModelCheckpoint = _FakeModelCheckpoint
    names = ["pytorch_lightning", "pytorch_lightning.callbacks", module.__name__]
    saved = {name: sys.modules.get(name) for name in names}
    for name in names[:-1]:
        sys.modules[name] = types.ModuleType(name)
    sys.modules[module.__name__] = module
    try:
        state = OrderedDict({"model.diffusion_model.input_blocks.0.0.weight": torch.randn(8, 4, 3, 3)})
        state.update({f"first_stage_model.{k}": v for k, v in vae_state.items()})
        state["cond_stage_model.model.logit_scale"] = torch.tensor(4.6)
        ckpt = {"epoch": 6, "global_step": np.int64(845000), "state_dict": state,
                "callbacks": {"ModelCheckpoint": _FakeModelCheckpoint()}, "pytorch-lightning_version": "1.4.2"}
        ckpt.update(extra or {})
        torch.save(ckpt, path)
    finally:
        for name, previous in saved.items():
            if previous is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = previous


def write_modelscope_dir(root: Path, unet_cfg: UNetConfig = SMALL_UNET, max_frames: int = 4, vae_ch: int = 128,
                         seed: int = 0) -> Path:
    """configuration.json + text2video_pytorch_model.pth + VQGAN_autoencoder.pth + open_clip_pytorch_model.bin."""
    root.mkdir(parents=True, exist_ok=True)
    config = {"framework": "pytorch", "task": "text-to-video-synthesis", "pipeline": {
        "type": "latent-text-to-video-synthesis"}, "model": {"type": "latent-text-to-video-synthesis", "model_args": {
            "ckpt_clip": "open_clip_pytorch_model.bin", "ckpt_unet": "text2video_pytorch_model.pth",
            "ckpt_autoencoder": "VQGAN_autoencoder.pth", "max_frames": max_frames, "tiny_gpu": 1},
        "model_cfg": {"unet_in_dim": 4, "unet_dim": unet_cfg.dim, "unet_y_dim": 768,
                      "unet_context_dim": unet_cfg.context_dim, "unet_out_dim": 4,
                      "unet_dim_mult": list(unet_cfg.dim_mult), "unet_num_heads": unet_cfg.num_heads,
                      "unet_head_dim": unet_cfg.head_dim, "unet_res_blocks": unet_cfg.num_res_blocks,
                      "unet_attn_scales": list(unet_cfg.attn_scales), "unet_dropout": 0.1,
                      "temporal_attention": "True", "num_timesteps": 1000, "mean_type": "eps",
                      "var_type": "fixed_small", "loss_type": "mse"}}}
    (root / "configuration.json").write_text(json.dumps(config, indent=2))
    # the reference decoder hard-codes a 1024-wide context, so the small-context UNet comes from our own class
    # (same keys and shapes as UNetSD, proven in test_fidelity) with every tensor randomised
    torch.manual_seed(seed)
    unet = OrderedDict((k, torch.randn_like(v) * 0.15) for k, v in UNet3D(unet_cfg).state_dict().items())
    torch.save(unet, root / "text2video_pytorch_model.pth")
    save_lightning_checkpoint(reference_vae(vae_ch, seed).state_dict(), root / "VQGAN_autoencoder.pth")
    torch.save(openclip_model(unet_cfg.context_dim, seed=seed).state_dict(), root / "open_clip_pytorch_model.bin")
    return root
