"""LoRA files in the layouts diffusers reads — made with peft and diffusers' own save path — and the oracle:
diffusers' TextToVideoSDPipeline with the LoRA loaded by its own `load_lora_weights`.

Since diffusers 0.32 that call fails for this pipeline (`load_lora_into_unet` calls `unet.load_lora_adapter`,
which UNet3DConditionModel lacks: it never got the PeftAdapterMixin every other diffusers UNet has). The oracle
gives it that mixin and nothing else, so diffusers' own code reads, converts, scales and fuses the LoRA; 0.31,
whose loader still worked for this pipeline, gives the same output within 3e-6 (docs/lora.md).
"""

from __future__ import annotations

import copy
from pathlib import Path

import torch
from diffusers import TextToVideoSDPipeline
from diffusers.loaders.peft import PeftAdapterMixin
from peft import LoraConfig, get_peft_model_state_dict, inject_adapter_in_model

# every kind of layer peft can adapt in UNet3DConditionModel: Linear (attention, feed-forward, the temporal
# transformers' projections — Conv1d here), Conv2d (resnets, samplers, conv_in/out), Conv3d (temporal convs)
ALL_UNET = (r".*(to_q|to_k|to_v|to_out\.0|ff\.net\.0\.proj|ff\.net\.2|proj_in|proj_out"
            r"|resnets\.\d+\.(conv1|conv2|conv_shortcut|time_emb_proj)|temp_convs\.\d+\.conv1\.2|temp_convs\.\d+\.conv[234]\.3|conv_in|conv_out"
            r"|samplers\.0\.conv|linear_[12])$")
ALL_TEXT = ["q_proj", "k_proj", "v_proj", "out_proj", "fc1", "fc2"]


def lora_layers(module: torch.nn.Module, targets, seed: int, **config) -> tuple[dict, LoraConfig]:
    """peft's state dict of random LoRA layers (A and B both random) on a copy of `module`, and its config."""
    lora_config = LoraConfig(target_modules=targets, init_lora_weights=False, **config)
    torch.manual_seed(seed)
    adapted = inject_adapter_in_model(lora_config, copy.deepcopy(module))
    return get_peft_model_state_dict(adapted), lora_config


def save_lora(root: Path, pipe: TextToVideoSDPipeline, unet=ALL_UNET, text=None, metadata: bool = True,
              seed: int = 0, unet_config: dict | None = None, text_config: dict | None = None) -> Path:
    """`root/pytorch_lora_weights.safetensors` as diffusers' save_lora_weights writes it (with the adapters'
    LoraConfig in the header when `metadata`)."""
    unet_layers, unet_lora = lora_layers(pipe.unet, unet, seed, **(unet_config or {"r": 4, "lora_alpha": 4}))
    text_layers, text_lora = (lora_layers(pipe.text_encoder, text, seed + 1, **(text_config or {"r": 2,
                                                                                                 "lora_alpha": 2}))
                              if text else ({}, None))
    extra = {"unet_lora_adapter_metadata": unet_lora.to_dict(),
             **({"text_encoder_lora_adapter_metadata": text_lora.to_dict()} if text else {})} if metadata else {}
    TextToVideoSDPipeline.save_lora_weights(root, unet_lora_layers=unet_layers,
                                            text_encoder_lora_layers=text_layers or None, **extra)
    return root / "pytorch_lora_weights.safetensors"


def diffusers_with_lora(pipe: TextToVideoSDPipeline, lora, scale: float, fused: bool = True):
    """A copy of `pipe` with the LoRA loaded by diffusers' load_lora_weights, fused at `scale` (as
    `fuse_lora(lora_scale=scale)`) or left as peft's branches weighted `scale` (`set_adapters`)."""
    pipe = copy.deepcopy(pipe)
    pipe.unet.__class__ = type("UNet3DConditionModel", (type(pipe.unet), PeftAdapterMixin), {})
    pipe.load_lora_weights(lora if not isinstance(lora, Path) or lora.is_dir() else lora.parent,
                           adapter_name="style", **({"weight_name": lora.name} if isinstance(lora, Path)
                                                    and lora.is_file() else {}))
    if fused:
        pipe.fuse_lora(lora_scale=scale)
        pipe.unload_lora_weights()
    else:
        pipe.set_adapters(["style"], adapter_weights=[scale])
    return pipe


def random_lora(config, seed: int = 0, rank: int = 2, scale: float = 0.1) -> dict[str, torch.Tensor]:
    """A peft-layout LoRA on every layer of our networks for `config` that a LoRA may adapt, under diffusers'
    module names, for a model with no diffusers twin such as tiny-random."""
    from t2v.weights.lora import targets

    generator = torch.Generator().manual_seed(seed)
    state = {}
    for network, found in targets(config).items():
        for module, target in found.items():
            out, *rest = target.theirs
            state[f"{network}.{module}.lora_A.weight"] = scale * torch.randn(rank, *rest, generator=generator)
            state[f"{network}.{module}.lora_B.weight"] = scale * torch.randn(out, rank, *[1] * (len(rest) - 1),
                                                                             generator=generator)
    return state
