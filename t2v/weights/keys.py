"""Every rename between a checkpoint's keys and our modules' keys, for every layout, with each irregularity named.

ModelScope's published files (read by t2v.weights.modelscope):
- UNet (`text2video_pytorch_model.pth`): its keys are our UNet3D's, because our modules keep ModelScope's
  attribute names, the typo `temopral_conv` (for "temporal") included — no rename.
- VAE (`VQGAN_autoencoder.pth`): a whole Lightning LDM checkpoint; the autoencoder is the `state_dict` entries
  under `first_stage_model.` (VAE_PREFIX), the rest (the LDM's UNet, the CLIP copy) is dropped.
- Text encoder (`open_clip_pytorch_model.bin`): a full OpenCLIP CLIP; `visual.*` and the text-side keys the
  penultimate-layer encoder never uses (projection, logit scale, the skipped last block) are dropped.

diffusers' layout (read by t2v.weights.diffusers; model-spec §6.2): UNet3D ↔ `UNet3DConditionModel`, KL
autoencoder ↔ `AutoencoderKL`, OpenCLIP text tower ↔ transformers' `CLIPTextModel` (keys `text_model.*`). The
KeyMaps are built by walking our modules' keys for a given config, so they are one-to-one by construction and
their inverse is exact. Tensor changes, each marked where it happens: the temporal transformers' Conv1d
projections and the VAE attention's 1×1 convolutions are Linear weights in diffusers (a squeeze of the trailing
1-sized axes, and back), `temopral_conv` becomes `temp_convs`, the decoder's `up` levels are numbered the other
way round, and OpenCLIP's fused `in_proj_weight/bias` splits into q/k/v.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import torch

from t2v.config import ModelConfig, TextConfig, UNetConfig
from t2v.networks import build_modules

# ModelScope's layout
VAE_PREFIX = "first_stage_model."  # the autoencoder inside the Lightning LDM checkpoint


def modelscope_vae(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The autoencoder's entries of a Lightning LDM state dict, without VAE_PREFIX."""
    return {k.split(VAE_PREFIX, 1)[1]: v for k, v in state.items() if isinstance(k, str) and VAE_PREFIX in k}


def openclip_text(state: Mapping[str, torch.Tensor], cfg: TextConfig) -> dict[str, torch.Tensor]:
    """The text-tower entries of a full OpenCLIP state dict that our penultimate-layer encoder uses."""
    skipped = range(cfg.layers - cfg.skip_last_layers, cfg.layers)  # "penultimate": these blocks never run
    unused = ("visual.", "text_projection", "logit_scale", *(f"transformer.resblocks.{i}." for i in skipped))
    return {k: v for k, v in state.items() if not (isinstance(k, str) and k.startswith(unused))}


# diffusers' layout
TEXT_PREFIX = "text_model."  # transformers' CLIPTextModel
_RESNET_RENAMES = {"in_layers.0": "norm1", "in_layers.2": "conv1", "emb_layers.1": "time_emb_proj",
                   "out_layers.0": "norm2", "out_layers.3": "conv2", "skip_connection": "conv_shortcut"}
_VAE_RENAMES = {"nin_shortcut": "conv_shortcut", "norm_out": "conv_norm_out", "mid.block_1": "mid_block.resnets.0",
                "mid.block_2": "mid_block.resnets.1", "mid.attn_1.norm": "mid_block.attentions.0.group_norm",
                "mid.attn_1.q": "mid_block.attentions.0.to_q", "mid.attn_1.k": "mid_block.attentions.0.to_k",
                "mid.attn_1.v": "mid_block.attentions.0.to_v", "mid.attn_1.proj_out": "mid_block.attentions.0.to_out.0",
                "downsample": "downsamplers.0", "upsample": "upsamplers.0"}
_TEXT_RENAMES = {"ln_1": "layer_norm1", "ln_2": "layer_norm2", "mlp.c_fc": "mlp.fc1", "mlp.c_proj": "mlp.fc2",
                 "attn.out_proj": "self_attn.out_proj"}


@dataclass
class KeyMap:
    """ours → diffusers key names, plus the keys whose tensors change shape or split into q/k/v."""

    names: dict[str, str] = field(default_factory=dict)
    shapes: dict[str, tuple[int, ...]] = field(default_factory=dict)  # our shape of each reshaped tensor
    splits: dict[str, tuple[str, str, str]] = field(default_factory=dict)  # fused in_proj → (q, k, v)
    prefix: str = ""  # every diffusers key starts with it; a state dict saved without it is accepted too

    def to_diffusers(self, state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Rename (and reshape/split) our state dict into diffusers' keys."""
        _check_keys(state.keys(), self.names.keys() | self.splits.keys(), "ours")
        out = {}
        for key, value in state.items():
            if key in self.splits:
                out.update(zip(self.splits[key], value.chunk(3, dim=0), strict=True))
            else:
                out[self.names[key]] = value.flatten(1) if key in self.shapes else value
        return out

    def from_diffusers(self, state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Rename (and reshape/concatenate) a diffusers state dict into our keys."""
        if self.prefix and not any(k.startswith(self.prefix) for k in state):
            state = {self.prefix + k: v for k, v in state.items()}
        theirs = {v: k for k, v in self.names.items()}
        expected = theirs.keys() | {name for names in self.splits.values() for name in names}
        _check_keys(state.keys(), expected, "diffusers")
        out = {key: torch.cat([state[n] for n in names]) for key, names in self.splits.items()}
        for name, key in theirs.items():
            value = state[name]
            out[key] = value.reshape(self.shapes[key]) if key in self.shapes else value
        return out

    def sources(self) -> dict[str, tuple[str, int | None]]:
        """diffusers key → (our key, which third of a fused in_proj it is; None for a whole tensor)."""
        out: dict[str, tuple[str, int | None]] = {theirs: (ours, None) for ours, theirs in self.names.items()}
        for ours, names in self.splits.items():
            out |= {name: (ours, part) for part, name in enumerate(names)}
        return out


def _check_keys(got: set[str] | Mapping, expected: set[str], side: str) -> None:
    missing, extra = set(expected) - set(got), set(got) - set(expected)
    if missing or extra:
        raise KeyError(f"{side} state dict does not fit the mapping: missing {sorted(missing)[:5]} "
                       f"({len(missing)}), unexpected {sorted(extra)[:5]} ({len(extra)})")


def _replace_prefix(key: str, prefixes: dict[str, str]) -> str:
    """Rename by the longest matching dotted prefix."""
    parts = key.split(".")
    for cut in range(len(parts), 0, -1):
        head = ".".join(parts[:cut])
        if head in prefixes:
            return ".".join([prefixes[head], *parts[cut:]])
    raise KeyError(f"no diffusers name for key {key!r}")


def _stage(ours: str, theirs: str, j: int, attn: bool, temporal: bool) -> dict[str, str]:
    """One ResBlock (+ spatial, temporal transformer) of a UNet level."""
    pairs = {f"{ours}.0": f"{theirs}.resnets.{j}",
             f"{ours}.0.temopral_conv": f"{theirs}.temp_convs.{j}"}  # ModelScope's typo, diffusers' plural
    if attn:
        pairs[f"{ours}.1"] = f"{theirs}.attentions.{j}"
        if temporal:
            pairs[f"{ours}.2"] = f"{theirs}.temp_attentions.{j}"
    return pairs


def unet_prefixes(cfg: UNetConfig) -> dict[str, str]:
    """Our UNet3D module prefixes → diffusers' UNet3DConditionModel prefixes (model-spec §6.2), from the config."""
    levels, tt, nrb = len(cfg.dim_mult), cfg.temporal_attention, cfg.num_res_blocks
    pairs = {"time_embed.0": "time_embedding.linear_1", "time_embed.2": "time_embedding.linear_2",
             "input_blocks.0.0": "conv_in", "input_blocks.0.1": "transformer_in",
             "out.0": "conv_norm_out", "out.2": "conv_out"}
    n = 1
    for i in range(levels):
        for j in range(nrb):
            pairs |= _stage(f"input_blocks.{n}", f"down_blocks.{i}", j, 2.0**-i in cfg.attn_scales, tt)
            n += 1
        if i != levels - 1:
            pairs[f"input_blocks.{n}.op"] = f"down_blocks.{i}.downsamplers.0.conv"
            n += 1
    mid = ["resnets.0", "attentions.0", *(["temp_attentions.0"] if tt else []), "resnets.1"]
    pairs |= {f"middle_block.{k}": f"mid_block.{name}" for k, name in enumerate(mid)}
    pairs |= {"middle_block.0.temopral_conv": "mid_block.temp_convs.0",
              f"middle_block.{len(mid) - 1}.temopral_conv": "mid_block.temp_convs.1"}
    for i in range(levels):
        attn = 2.0 ** -(levels - 1 - i) in cfg.attn_scales
        for j in range(nrb + 1):
            n = i * (nrb + 1) + j
            pairs |= _stage(f"output_blocks.{n}", f"up_blocks.{i}", j, attn, tt)
            if i != levels - 1 and j == nrb:
                pairs[f"output_blocks.{n}.{1 + (1 + tt) * attn}.conv"] = f"up_blocks.{i}.upsamplers.0.conv"
    return pairs


def _unet_name(key: str, prefixes: dict[str, str]) -> str:
    name = _replace_prefix(key, prefixes)
    head, sep, rest = name.partition(".resnets.")
    if sep:
        index, _, inner = rest.partition(".")
        for ours, theirs in _RESNET_RENAMES.items():
            if inner.startswith(ours + "."):
                inner = theirs + inner[len(ours):]
        name = f"{head}.resnets.{index}.{inner}"
    return name


def unet_keymap(cfg: UNetConfig, shapes: Mapping[str, tuple[int, ...]]) -> KeyMap:
    """KeyMap for UNet3D; `shapes` are our state dict's key → shape (temporal Conv1d projections become Linear)."""
    prefixes = unet_prefixes(cfg)
    names = {key: _unet_name(key, prefixes) for key in shapes}
    # the temporal transformers' proj_in/proj_out are Conv1d [o, i, 1] in ModelScope, Linear [o, i] in diffusers
    reshaped = {k: s for k, s in shapes.items() if len(s) == 3 and k.endswith(("proj_in.weight", "proj_out.weight"))}
    return KeyMap(names, reshaped)


def _vae_name(key: str, levels: int) -> str:
    parts = key.split(".")
    if parts[1] in ("down", "up"):  # decoder `up` is stored shallowest-first, diffusers' up_blocks deepest-first
        level = int(parts[2]) if parts[1] == "down" else levels - 1 - int(parts[2])
        parts[1:3] = [f"{parts[1]}_blocks", str(level)]
        if parts[3] == "block":
            parts[3] = "resnets"
    name = ".".join(parts)
    for ours, theirs in _VAE_RENAMES.items():
        name = name.replace(f".{ours}.", f".{theirs}.")
    return name


def vae_keymap(levels: int, shapes: Mapping[str, tuple[int, ...]]) -> KeyMap:
    """KeyMap for the KL autoencoder (LDM → diffusers names; 1×1-conv attention weights become Linear)."""
    names = {key: _vae_name(key, levels) for key in shapes}
    reshaped = {k: s for k, s in shapes.items() if ".attn_1." in k and len(s) == 4}  # 1×1 conv [o, i, 1, 1] ↔ Linear
    return KeyMap(names, reshaped)


def text_keymap(shapes: Mapping[str, tuple[int, ...]]) -> KeyMap:
    """KeyMap for the OpenCLIP text tower → CLIPTextModel (`in_proj_weight/bias` split into q/k/v).

    `text_model.` prefixes every key of transformers < 5's CLIPTextModel and of the published files; some copies
    are saved without it (from_diffusers adds it back).
    """
    keymap = KeyMap(prefix=TEXT_PREFIX)
    fixed = {"token_embedding.weight": "embeddings.token_embedding.weight",
             "positional_embedding": "embeddings.position_embedding.weight",
             "ln_final.weight": "final_layer_norm.weight", "ln_final.bias": "final_layer_norm.bias"}
    for key in shapes:
        if key in fixed:
            keymap.names[key] = TEXT_PREFIX + fixed[key]
            continue
        _, _, index, rest = key.split(".", 3)  # transformer.resblocks.{i}.rest
        layer = f"{TEXT_PREFIX}encoder.layers.{index}."
        if rest.startswith("attn.in_proj_"):
            kind = rest.rsplit("_", 1)[1]  # weight | bias
            keymap.splits[key] = tuple(f"{layer}self_attn.{p}_proj.{kind}" for p in "qkv")
            continue
        for ours, theirs in _TEXT_RENAMES.items():
            if rest.startswith(ours + "."):
                rest = theirs + rest[len(ours):]
        keymap.names[key] = layer + rest
    return keymap


def module_shapes(config: ModelConfig) -> dict[str, dict[str, tuple[int, ...]]]:
    """Our state dicts' key → shape for each network of `config` (built on the meta device: no memory)."""
    return {name: {k: tuple(v.shape) for k, v in module.state_dict().items()}
            for name, module in build_modules(config, "meta").items()}


def keymaps(config: ModelConfig) -> dict[str, KeyMap]:
    """One KeyMap per network ('unet', 'vae', 'text_encoder'), built from the config's module shapes."""
    shapes = module_shapes(config)
    return {"unet": unet_keymap(config.unet, shapes["unet"]),
            "vae": vae_keymap(len(config.vae.ch_mult), shapes["vae"]),
            "text_encoder": text_keymap(shapes["text_encoder"])}


def to_diffusers(config: ModelConfig, states: Mapping[str, Mapping[str, torch.Tensor]]) -> dict[str, dict]:
    """Our three state dicts → diffusers' `unet`, `vae`, `text_encoder` state dicts."""
    maps = keymaps(config)
    return {name: maps[name].to_diffusers(state) for name, state in states.items()}
