"""Random-weight diffusers text-to-video directories written by diffusers' and transformers' own classes.

Tiny widths, real structure: CrossAttnDownBlock3D ×3 + DownBlock3D, `attention_head_dim` as the head size,
a four-level KL-f8 VAE, a CLIPTextModel with the blocks the penultimate-layer encoder uses. The tokenizer is
transformers' CLIPTokenizer built offline from open_clip's BPE vocabulary, pad token "!" (id 0) as published.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import open_clip
import torch
from diffusers import AutoencoderKL, DDIMScheduler, TextToVideoSDPipeline, UNet3DConditionModel
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

TEXT = {"hidden_size": 32, "intermediate_size": 128, "num_attention_heads": 2, "num_hidden_layers": 2,
        "vocab_size": 49408, "max_position_embeddings": 77, "hidden_act": "gelu"}
VAE = {"block_out_channels": (16, 32, 32, 32), "layers_per_block": 1, "norm_num_groups": 8, "latent_channels": 4,
       "down_block_types": ("DownEncoderBlock2D",) * 4, "up_block_types": ("UpDecoderBlock2D",) * 4}
# the published 256² model's structure (ali-vilab/text-to-video-ms-1.7b), narrow
UNET_256 = {"block_out_channels": (16, 32, 64, 64), "layers_per_block": 2, "attention_head_dim": 8,
            "norm_num_groups": 8, "cross_attention_dim": 32, "sample_size": 32}
# zeroscope_v2_576w: the same architecture, another width pattern here, one resnet per level
UNET_576 = {"block_out_channels": (16, 32, 32, 64), "layers_per_block": 1, "attention_head_dim": 16,
            "norm_num_groups": 8, "cross_attention_dim": 32, "sample_size": 32}
SCHEDULER = {"beta_start": 0.00085, "beta_end": 0.012, "beta_schedule": "scaled_linear", "clip_sample": False,
             "set_alpha_to_one": False, "steps_offset": 1}


def clip_tokenizer() -> CLIPTokenizer:
    """CLIPTokenizer over open_clip's vocabulary and merges (its special tokens under transformers' names)."""
    bpe = open_clip.SimpleTokenizer()
    names = {"<start_of_text>": "<|startoftext|>", "<end_of_text>": "<|endoftext|>"}
    vocab = {names.get(k, k): v for k, v in bpe.encoder.items()}
    merges = [pair for pair, _ in sorted(bpe.bpe_ranks.items(), key=lambda kv: kv[1])]
    return CLIPTokenizer(vocab=vocab, merges=merges, pad_token="!", model_max_length=77)


def _randomise(module: torch.nn.Module, scale: float) -> torch.nn.Module:
    """Perturb every tensor, so zero-initialised output layers carry signal too."""
    with torch.no_grad():
        for tensor in module.state_dict().values():
            if tensor.is_floating_point():
                tensor.add_(torch.randn_like(tensor) * scale)
    return module.eval()


def diffusers_pipeline(unet: dict, seed: int = 0) -> TextToVideoSDPipeline:
    """TextToVideoSDPipeline with random weights, fp32 on the CPU, progress bar off."""
    torch.manual_seed(seed)
    pipe = TextToVideoSDPipeline(
        vae=_randomise(AutoencoderKL(**VAE), 0.02),
        text_encoder=_randomise(CLIPTextModel(CLIPTextConfig(**TEXT)), 0.02),
        tokenizer=clip_tokenizer(),
        unet=_randomise(UNet3DConditionModel(**unet), 0.05),
        scheduler=DDIMScheduler(**SCHEDULER))
    pipe.set_progress_bar_config(disable=True)
    return pipe


def write_diffusers_dir(root: Path, pipe: TextToVideoSDPipeline, fp16_variant: bool = True) -> Path:
    """save_pretrained as published: fp32 safetensors, plus the `*.fp16.safetensors` variant."""
    pipe.save_pretrained(root)
    if fp16_variant:
        for name in ("unet", "vae", "text_encoder"):  # a half copy: casting in place would round the pipeline's
            copy.deepcopy(getattr(pipe, name)).to(torch.float16).save_pretrained(root / name, variant="fp16")
    return root


def edit_config(root: Path, file: str, **changes) -> None:
    """Change fields of one config file in place."""
    path = root / file
    data = json.loads(path.read_text())
    data.update(changes)
    path.write_text(json.dumps(data))
