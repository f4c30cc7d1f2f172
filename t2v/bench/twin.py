"""diffusers' TextToVideoSDPipeline built for one of our configs and loaded with our weights (for the benchmark).

Imports diffusers and transformers (the `bench` extra) inside functions only, so `import t2v` never needs them.
The tokenizer is transformers' CLIPTokenizer made from open_clip's own BPE vocabulary, so both pipelines see the
same token ids (pad id 0, as the published diffusers repo's pad token "!").
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Mapping
from pathlib import Path

import open_clip
import torch

from t2v.config import ModelConfig, TextConfig, UNetConfig, VAEConfig
from t2v.weights import keys

# The smallest config diffusers can mirror: its `transformer_in` has 8 heads hard-coded; the third level has no
# attention, so CrossAttn*Block3D and plain Down/UpBlock3D both occur.
TINY = ModelConfig(
    unet=UNetConfig(dim=32, context_dim=64, dim_mult=(1, 2, 2), num_heads=8, head_dim=16, num_res_blocks=1,
                    attn_scales=(1.0, 0.5)),
    vae=VAEConfig(ch=32, ch_mult=(1, 2, 2, 2), num_res_blocks=1),  # four levels: the ×8 latent scale
    text=TextConfig(width=64, heads=2, layers=3),
    name="tiny-diffusers-twin", is_random=True,
)


def unet(cfg: UNetConfig):
    """An uninitialised UNet3DConditionModel of the same shape (model-spec §6.1)."""
    from diffusers import UNet3DConditionModel

    attn = [2.0**-i in cfg.attn_scales for i in range(len(cfg.dim_mult))]
    return UNet3DConditionModel(
        sample_size=32, in_channels=cfg.in_dim, out_channels=cfg.out_dim, layers_per_block=cfg.num_res_blocks,
        block_out_channels=tuple(cfg.dim * m for m in cfg.dim_mult), cross_attention_dim=cfg.context_dim,
        down_block_types=tuple("CrossAttnDownBlock3D" if a else "DownBlock3D" for a in attn),
        up_block_types=tuple("CrossAttnUpBlock3D" if a else "UpBlock3D" for a in reversed(attn)),
        attention_head_dim=cfg.head_dim, norm_num_groups=cfg.norm_groups).eval()


def vae(cfg: VAEConfig):
    """An AutoencoderKL of the same shape (scaling factor 0.18215 by default)."""
    from diffusers import AutoencoderKL

    levels = len(cfg.ch_mult)
    return AutoencoderKL(
        in_channels=cfg.in_channels, out_channels=cfg.out_ch, latent_channels=cfg.z_channels,
        norm_num_groups=cfg.norm_groups, down_block_types=("DownEncoderBlock2D",) * levels,
        up_block_types=("UpDecoderBlock2D",) * levels, block_out_channels=tuple(cfg.ch * m for m in cfg.ch_mult),
        layers_per_block=cfg.num_res_blocks).eval()


def text_encoder(cfg: TextConfig):
    """A CLIPTextModel with only the blocks our penultimate-layer encoder uses (23 for ViT-H-14)."""
    from transformers import CLIPTextConfig, CLIPTextModel

    return CLIPTextModel(CLIPTextConfig(
        hidden_size=cfg.width, intermediate_size=int(cfg.width * cfg.mlp_ratio), num_attention_heads=cfg.heads,
        num_hidden_layers=cfg.layers - cfg.skip_last_layers, vocab_size=cfg.vocab_size,
        max_position_embeddings=cfg.context_length, hidden_act="gelu", projection_dim=cfg.width)).eval()


def tokenizer(context_length: int = 77):
    """transformers' CLIPTokenizer over open_clip's BPE (same ids as t2v.text_encoder.Tokenizer)."""
    from transformers import CLIPTokenizer

    bpe = open_clip.SimpleTokenizer()
    names = {"<start_of_text>": "<|startoftext|>", "<end_of_text>": "<|endoftext|>"}
    vocab = {names.get(k, k): v for k, v in bpe.encoder.items()}
    merges = [pair for pair, _ in sorted(bpe.bpe_ranks.items(), key=lambda kv: kv[1])]
    try:  # transformers ≥ 5 builds from the vocabulary and merges directly
        return CLIPTokenizer(vocab=vocab, merges=merges, pad_token="!", model_max_length=context_length)
    except TypeError:  # transformers 4.x wants files
        folder = Path(tempfile.mkdtemp(prefix="clip-bpe-"))
        (folder / "vocab.json").write_text(json.dumps(vocab))
        (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(" ".join(p) for p in merges) + "\n")
        return CLIPTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"), pad_token="!",
                             model_max_length=context_length)


def scheduler(config: ModelConfig):
    """DDIMScheduler as published: scaled_linear betas, leading spacing, steps_offset 1, no set_alpha_to_one."""
    from diffusers import DDIMScheduler

    s = config.sampler
    return DDIMScheduler(num_train_timesteps=s.num_timesteps, beta_start=s.beta_start, beta_end=s.beta_end,
                         beta_schedule="scaled_linear", clip_sample=False, set_alpha_to_one=False, steps_offset=1)


def fit_text_prefix(state: Mapping[str, torch.Tensor], module: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Drop `text_model.` when the installed transformers' CLIPTextModel has flat keys (transformers ≥ 5)."""
    flat = not any(k.startswith(keys.TEXT_PREFIX) for k in module.state_dict())
    return {(k.removeprefix(keys.TEXT_PREFIX) if flat else k): v for k, v in state.items()}


def modules(config: ModelConfig, states: Mapping[str, Mapping[str, torch.Tensor]]) -> dict[str, torch.nn.Module]:
    """The three diffusers/transformers networks holding our weights, loaded strictly through the key mapping."""
    mapped = keys.to_diffusers(config, states)
    with torch.device("meta"):  # no random initialisation: every weight comes from `states`
        nets = {"unet": unet(config.unet), "vae": vae(config.vae)}
    nets["text_encoder"] = text_encoder(config.text)  # on the CPU: it has non-persistent buffers (position ids)
    mapped["text_encoder"] = fit_text_prefix(mapped["text_encoder"], nets["text_encoder"])
    for name, net in nets.items():
        net.load_state_dict(mapped[name], strict=True, assign=True)
        left = [n for n, t in [*net.named_parameters(), *net.named_buffers()] if t.is_meta]
        if left:
            raise KeyError(f"diffusers {name} has tensors the mapping does not fill: {left[:5]}")
    return nets


def pipeline(config: ModelConfig, states: Mapping[str, Mapping[str, torch.Tensor]], device: str, dtype: torch.dtype):
    """TextToVideoSDPipeline with our weights on `device` in `dtype`, progress bar off."""
    from diffusers import TextToVideoSDPipeline

    nets = modules(config, states)
    pipe = TextToVideoSDPipeline(vae=nets["vae"], text_encoder=nets["text_encoder"], unet=nets["unet"],
                                 tokenizer=tokenizer(config.text.context_length), scheduler=scheduler(config))
    pipe.set_progress_bar_config(disable=True)
    return pipe.to(device, dtype)
