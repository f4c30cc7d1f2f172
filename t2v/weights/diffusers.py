"""Reading a diffusers text-to-video directory (ali-vilab/text-to-video-ms-1.7b, cerspense/zeroscope_v2_*) onto ours.

Layout (model-spec §6.1): model_index.json; unet/ (UNet3DConditionModel), vae/ (AutoencoderKL), text_encoder/
(transformers CLIPTextModel with the 23 blocks the penultimate-layer encoder uses), tokenizer/, scheduler/ —
each with its config.json (scheduler/scheduler_config.json). Weights per component, the first file found of
`<name>.safetensors`, `<name>.fp16.safetensors` (the other way round when the pipeline runs in half precision),
sharded `<name>.safetensors.index[.fp16].json`, then the `.bin` pickles read with torch.load(weights_only=True);
<name> is diffusion_pytorch_model (unet, vae), model (text_encoder safetensors) or pytorch_model (its .bin).

The configs are turned into our ModelConfig, and anything our modules cannot compute exactly is refused with
every mismatching field named, its value and what is expected (`ArchitectureError`). Keys are renamed with
t2v.weights.keys (diffusers → ours); the text encoder's q/k/v are re-joined into open_clip's in_proj, so
transformers is never imported. tokenizer/ is not read for tokens: we use open_clip's bundled BPE, which pads
with id 0 as ModelScope trained; a tokenizer whose pad token is not "!" (id 0) only earns a warning, because
diffusers would then pad differently from the model's training (model-spec §6.1). Default size and length:
t2v.presets (applied by t2v.loader).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import torch

from t2v.config import ModelConfig, SamplerDefaults, TextConfig, UNetConfig, VAEConfig
from t2v.errors import ArchitectureError, WeightsError
from t2v.weights import keys
from t2v.weights.files import WHERE_FROM, as_meta, read_json, read_safetensors, safetensors_shapes, torch_load

log = logging.getLogger(__name__)

COMPONENTS = {"unet": ("diffusion_pytorch_model", "diffusion_pytorch_model"),
              "vae": ("diffusion_pytorch_model", "diffusion_pytorch_model"),
              "text_encoder": ("model", "pytorch_model")}  # (safetensors stem, .bin stem)
CONFIG_FILES = {"unet": "unet/config.json", "vae": "vae/config.json", "text_encoder": "text_encoder/config.json",
                "scheduler": "scheduler/scheduler_config.json"}
# fields that must hold exactly this value when present (absent → diffusers' default, which is this value)
FIXED = {
    "unet": {"_class_name": "UNet3DConditionModel", "act_fn": "silu", "norm_eps": 1e-5, "num_attention_heads": None,
             "downsample_padding": 1, "mid_block_scale_factor": 1, "time_cond_proj_dim": None,
             # keys of older configs (model-spec §6.1) that current diffusers hard-codes to these values
             "flip_sin_to_cos": True, "freq_shift": 0, "center_input_sample": False, "use_linear_projection": True,
             "only_cross_attention": False, "upcast_attention": False, "resnet_time_scale_shift": "default",
             "class_embed_type": None, "num_class_embeds": None, "time_embedding_type": "positional",
             "mid_block_type": "UNetMidBlock3DCrossAttn"},
    "vae": {"_class_name": "AutoencoderKL", "in_channels": 3, "out_channels": 3, "act_fn": "silu",
            "latent_channels": 4, "shift_factor": None, "latents_mean": None, "latents_std": None,
            "use_quant_conv": True, "use_post_quant_conv": True, "mid_block_add_attention": True},
    "text_encoder": {"model_type": "clip_text_model", "hidden_act": "gelu", "layer_norm_eps": 1e-5,
                     "vocab_size": 49408},
    "scheduler": {"beta_schedule": "scaled_linear", "prediction_type": "epsilon", "trained_betas": None,
                  "clip_sample": False, "thresholding": False, "rescale_betas_zero_snr": False},
}
UNET_BLOCKS = {"CrossAttnDownBlock3D": "CrossAttnUpBlock3D", "DownBlock3D": "UpBlock3D"}


AGAIN = "delete it and download it again (`python -m t2v download {root} --repo OWNER/NAME` fetches what is missing)"
MISSING_CONFIG = ("a diffusers text-to-video directory has unet/, vae/, text_encoder/ and scheduler/ configs; "
                  f"{WHERE_FROM}")


class _Checker:
    """Collects 'file: field = value, expected …' lines and raises them all at once."""

    def __init__(self, root: Path):
        self.root, self.problems = root, []

    def need(self, part: str, cfg: dict[str, Any], key: str, ok: bool, expected: str) -> None:
        if not ok:
            self.problems.append(f"{CONFIG_FILES[part]}: {key} = {json.dumps(cfg.get(key))}, expected {expected}")

    def fixed(self, part: str, cfg: dict[str, Any]) -> None:
        for key, want in FIXED[part].items():
            self.need(part, cfg, key, key not in cfg or cfg[key] == want, json.dumps(want))

    def raise_if_any(self) -> None:
        if self.problems:  # one line, as every error t2v gives
            raise ArchitectureError(f"{self.root} is not a ModelScope text-to-video network that t2v can run "
                                    f"exactly: {'; '.join(self.problems)}")


def _is_int(value: Any, low: int = 1) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= low


def _int(cfg: dict[str, Any], key: str, default: int) -> int:
    """cfg[key] when it is a positive integer, else `default` (the bad value is reported separately)."""
    return cfg[key] if _is_int(cfg.get(key)) else default


def _widths(check: _Checker, part: str, cfg: dict[str, Any], groups_key: str) -> tuple[int, tuple[int, ...]]:
    """(base width, integer multipliers) from block_out_channels; every width must be a multiple of the first."""
    chans = cfg.get("block_out_channels")
    ok = isinstance(chans, list) and len(chans) > 0 and all(_is_int(c) for c in chans)
    check.need(part, cfg, "block_out_channels", ok and all(c % chans[0] == 0 for c in chans),
               "a list of positive integers, each a multiple of the first")
    if not ok:
        return 1, (1,)
    groups = cfg.get(groups_key)
    check.need(part, cfg, groups_key, _is_int(groups) and all(c % groups == 0 for c in chans),
               f"an integer dividing every block_out_channels entry {chans}")
    return chans[0], tuple(c // chans[0] for c in chans)


def _unet(check: _Checker, cfg: dict[str, Any]) -> UNetConfig:
    """UNetConfig from unet/config.json; `attention_head_dim` is the real head size (model-spec §6.1 trap)."""
    check.fixed("unet", cfg)
    dim, mult = _widths(check, "unet", cfg, "norm_num_groups")
    down = cfg.get("down_block_types")
    levels_ok = isinstance(down, list) and len(down) == len(mult) and all(d in UNET_BLOCKS for d in down)
    check.need("unet", cfg, "down_block_types", levels_ok,
               f"{len(mult)} entries (one per block_out_channels) of {sorted(UNET_BLOCKS)}")
    down = down if levels_ok else []
    mirror = [UNET_BLOCKS[d] for d in reversed(down)]
    check.need("unet", cfg, "up_block_types", not levels_ok or cfg.get("up_block_types") == mirror,
               f"{json.dumps(mirror)} (the mirror of down_block_types)")
    head = cfg.get("attention_head_dim")
    check.need("unet", cfg, "attention_head_dim", _is_int(head) and all(dim * m % head == 0 for m in mult),
               "one integer dividing every block_out_channels entry")
    for key in ("in_channels", "out_channels", "layers_per_block", "cross_attention_dim"):
        check.need("unet", cfg, key, _is_int(cfg.get(key)), "a positive integer")
    attn = tuple(2.0**-i for i, kind in enumerate(down) if kind == "CrossAttnDownBlock3D")
    return UNetConfig(in_dim=_int(cfg, "in_channels", 4), dim=dim, context_dim=_int(cfg, "cross_attention_dim", 1024),
                      out_dim=_int(cfg, "out_channels", 4), dim_mult=mult, num_heads=8,  # transformer_in: 8 heads
                      head_dim=head if _is_int(head) else 64, num_res_blocks=_int(cfg, "layers_per_block", 2),
                      attn_scales=attn, temporal_attention=True, norm_groups=_int(cfg, "norm_num_groups", 32))


def _vae(check: _Checker, cfg: dict[str, Any]) -> VAEConfig:
    """VAEConfig from vae/config.json (SD's KL-f8 family: all down/up blocks the plain encoder/decoder ones)."""
    check.fixed("vae", cfg)
    ch, mult = _widths(check, "vae", cfg, "norm_num_groups")
    for key, kind in (("down_block_types", "DownEncoderBlock2D"), ("up_block_types", "UpDecoderBlock2D")):
        check.need("vae", cfg, key, cfg.get(key) == [kind] * len(mult), f"{len(mult)} × {kind!r}")
    check.need("vae", cfg, "layers_per_block", _is_int(cfg.get("layers_per_block")), "a positive integer")
    return VAEConfig(ch=ch, ch_mult=mult, num_res_blocks=_int(cfg, "layers_per_block", 2),
                     z_channels=4, embed_dim=4, norm_groups=_int(cfg, "norm_num_groups", 32))


def _text(check: _Checker, cfg: dict[str, Any]) -> TextConfig:
    """TextConfig from text_encoder/config.json: N transformers layers = our N + 1 stored minus the skipped last."""
    check.fixed("text_encoder", cfg)
    arch = cfg.get("architectures")
    check.need("text_encoder", cfg, "architectures", arch is None or arch == ["CLIPTextModel"], '["CLIPTextModel"]')
    width, heads, inner = cfg.get("hidden_size"), cfg.get("num_attention_heads"), cfg.get("intermediate_size")
    check.need("text_encoder", cfg, "hidden_size", _is_int(width), "a positive integer")
    width = width if _is_int(width) else 1024
    check.need("text_encoder", cfg, "num_attention_heads", _is_int(heads) and width % heads == 0,
               f"an integer dividing hidden_size {width}")
    check.need("text_encoder", cfg, "intermediate_size", _is_int(inner), "a positive integer")
    for key in ("num_hidden_layers", "max_position_embeddings"):
        check.need("text_encoder", cfg, key, _is_int(cfg.get(key)), "a positive integer")
    return TextConfig(width=width, heads=heads if _is_int(heads) else 16,
                      layers=_int(cfg, "num_hidden_layers", 23) + 1, vocab_size=_int(cfg, "vocab_size", 49408),
                      context_length=_int(cfg, "max_position_embeddings", 77),
                      mlp_ratio=inner / width if _is_int(inner) else 4.0, skip_last_layers=1)


def _sampler(check: _Checker, cfg: dict[str, Any]) -> SamplerDefaults:
    """Betas from scheduler_config.json; our samplers use ModelScope's grids whatever the scheduler class."""
    check.fixed("scheduler", cfg)
    for key in ("beta_start", "beta_end"):
        value = cfg.get(key)
        check.need("scheduler", cfg, key, isinstance(value, float | int) and 0 < value < 1, "a number in (0, 1)")
    check.need("scheduler", cfg, "num_train_timesteps", _is_int(cfg.get("num_train_timesteps", 1000), 2),
               "an integer ≥ 2")
    spacing = (cfg.get("timestep_spacing", "leading"), cfg.get("steps_offset", 1), cfg.get("set_alpha_to_one", False))
    if spacing != ("leading", 1, False):
        log.info("scheduler (spacing, offset, alpha-to-one) %s differs from ModelScope's; t2v samples on "
                 "ModelScope's grid", spacing)
    base = SamplerDefaults()
    start, end = cfg.get("beta_start", base.beta_start), cfg.get("beta_end", base.beta_end)
    return SamplerDefaults(num_timesteps=_int(cfg, "num_train_timesteps", base.num_timesteps),
                           beta_start=float(start) if isinstance(start, float | int) else base.beta_start,
                           beta_end=float(end) if isinstance(end, float | int) else base.beta_end)


def read_config(root: Path) -> ModelConfig:
    """ModelConfig from the four configs, or ArchitectureError listing every field that does not fit."""
    cfgs = {part: read_json(root / file, MISSING_CONFIG) for part, file in CONFIG_FILES.items()}
    check = _Checker(root)
    unet, vae, text = _unet(check, cfgs["unet"]), _vae(check, cfgs["vae"]), _text(check, cfgs["text_encoder"])
    sampler = _sampler(check, cfgs["scheduler"])
    check.need("unet", cfgs["unet"], "cross_attention_dim", unet.context_dim == text.width,
               f"{text.width} (text_encoder hidden_size)")
    for key in ("in_channels", "out_channels"):
        check.need("unet", cfgs["unet"], key, cfgs["unet"].get(key) == 4, "4 (vae latent_channels)")
    inner = cfgs["text_encoder"].get("intermediate_size")
    check.need("text_encoder", cfgs["text_encoder"], "intermediate_size", int(text.width * text.mlp_ratio) == inner,
               f"a size open_clip's MLP reproduces from hidden_size {text.width}")
    scale = cfgs["vae"].get("scaling_factor", 0.18215)
    check.need("vae", cfgs["vae"], "scaling_factor", isinstance(scale, float) and scale > 0, "a positive number")
    check.raise_if_any()
    return ModelConfig(unet=unet, vae=vae, text=text, sampler=sampler, frames=16, width=8 * _sample_size(cfgs),
                       height=8 * _sample_size(cfgs), latent_scale=scale, name=root.resolve().name)


def _sample_size(cfgs: dict[str, dict[str, Any]]) -> int:
    size = cfgs["unet"].get("sample_size")
    return size if _is_int(size) and size % 8 == 0 and 8 <= size <= 128 else 32


def check_tokenizer(root: Path) -> None:
    """Warn when the tokenizer's pad token is not "!" (id 0): we pad with 0 as ModelScope; diffusers would not."""
    pad = None
    for name in ("special_tokens_map.json", "tokenizer_config.json"):  # the first file that names a pad token wins
        path = root / "tokenizer" / name
        try:
            pad = json.loads(path.read_text()).get("pad_token") if path.is_file() else None
        except (OSError, json.JSONDecodeError, AttributeError) as exc:
            log.warning("%s could not be read (%s); the tokenizer files are not used anyway", path, exc)
        if pad is not None:
            break
    pad = pad.get("content") if isinstance(pad, dict) else pad
    if pad is None:
        log.info("%s names no pad token; t2v pads with id 0 as ModelScope (open_clip's tokenizer)", root / "tokenizer")
    elif pad != "!":
        log.warning("%s pads with %r; t2v pads with id 0 (\"!\") as ModelScope was trained (open_clip's tokenizer), "
                    "so diffusers' output for this directory differs at padded positions", root / "tokenizer", pad)


def _variants(prefer_half: bool) -> tuple[str, str]:
    return (".fp16", "") if prefer_half else ("", ".fp16")


def _index_shards(index: Path) -> list[Path]:
    """The shard files a `*.index[.variant].json` names (its `weight_map` values), in order."""
    data = read_json(index, WHERE_FROM)
    shards = data.get("weight_map")
    if not isinstance(shards, dict):
        raise WeightsError(f"{index} has no weight_map")
    return [index.parent / name for name in dict.fromkeys(shards.values())]


def weight_files(folder: Path, part: str, prefer_half: bool) -> list[Path]:
    """The file(s) holding one component's weights, by the preference order in the module docstring."""
    safe, pickled = COMPONENTS[part]
    for ext, stem in (("safetensors", safe), ("bin", pickled)):
        for variant in _variants(prefer_half):
            single = folder / f"{stem}{variant}.{ext}"
            if single.is_file():
                return [single]
            index = folder / f"{stem}.{ext}.index{variant}.json"
            if index.is_file():
                return _index_shards(index)
    raise WeightsError(f"{folder} has no weights: looked for {safe}[.fp16].safetensors (or a sharded index) and "
                       f"{pickled}[.fp16].bin; {WHERE_FROM}")


def _read_file(path: Path, device: str, hint: str) -> dict[str, torch.Tensor]:
    if path.suffix == ".bin":
        state = torch_load(path, trusted_layout=True, hint=hint)  # weights_only=True: plain tensors only
        if not isinstance(state, dict):
            raise WeightsError(f"{path} holds a {type(state).__name__}, not a state dict")
        return state
    return read_safetensors(path, device, hint)


def read_component(root: Path, part: str, device: str, prefer_half: bool,
                   headers: bool = False) -> tuple[dict[str, torch.Tensor], str]:
    """(diffusers-named state dict, file names) of unet, vae or text_encoder; with `headers`, meta tensors of the
    shapes the files give without their data read (a safetensors header; a .bin's pickle, memory-mapped)."""
    files = weight_files(root / part, part, prefer_half)
    hint = AGAIN.format(root=root)
    state: dict[str, torch.Tensor] = {}
    for path in files:
        if not headers:
            state.update(_read_file(path, device, hint))
        else:
            state.update(safetensors_shapes(path, hint) if path.suffix == ".safetensors"
                         else as_meta(_read_file(path, "cpu", hint), str(path), hint))
    if part == "text_encoder":  # buffers older transformers saved, and a projection our encoder does not use
        state = {k: v for k, v in state.items() if not k.endswith(("position_ids", "text_projection.weight"))}
    return state, ", ".join(str(path) for path in files)


def read_diffusers(root: Path, device: str = "cpu", prefer_half: bool = False, headers: bool = False):
    """(config, our state dicts, file names) from a diffusers directory; default size and length as its configs.
    With `headers`: meta tensors of the files' keys and shapes, their data never read."""
    config = read_config(root)
    if not headers:
        check_tokenizer(root)
    load_device = device if device.startswith("cuda") else "cpu"
    maps = keys.keymaps(config)
    states, sources = {}, {}
    for part in COMPONENTS:
        theirs, sources[part] = read_component(root, part, load_device, prefer_half, headers)
        try:
            states[part] = maps[part].from_diffusers(theirs)
        except (KeyError, RuntimeError, ValueError) as exc:  # a key missing; tensors that do not join or reshape
            raise WeightsError(f"{sources[part]} does not fit its config: {exc.args[0] if exc.args else exc}; "
                               f"{AGAIN.format(root=root)}") from exc
    log.info("read diffusers directory %s (%s)", root, config.name)
    return config, states, sources
