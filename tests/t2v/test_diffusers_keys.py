"""The ModelScope ↔ diffusers key mapping: diffusers/transformers modules loaded through it compute what ours do."""

import dataclasses

import pytest
import torch
from diffusers import AutoencoderKL as DiffusersVAE
from diffusers import UNet3DConditionModel
from transformers import CLIPTextConfig, CLIPTextModel

from t2v import diffusers_keys
from t2v.config import ModelConfig, TextConfig, UNetConfig, VAEConfig
from t2v.loader import random_state_dicts
from t2v.unet import UNet3D

# num_heads=8 because diffusers hard-codes 8 heads in `transformer_in`; the third level has no attention,
# so both CrossAttn*Block3D and plain Down/UpBlock3D are covered.
CONFIG = ModelConfig(
    unet=UNetConfig(dim=32, context_dim=64, dim_mult=(1, 2, 2), num_heads=8, head_dim=16, num_res_blocks=1,
                    attn_scales=(1.0, 0.5)),
    vae=VAEConfig(ch=32, ch_mult=(1, 2), num_res_blocks=1),
    text=TextConfig(width=64, heads=2, layers=3),
)


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())


def diffusers_unet(cfg: UNetConfig) -> UNet3DConditionModel:
    attn = [2.0**-i in cfg.attn_scales for i in range(len(cfg.dim_mult))]
    return UNet3DConditionModel(
        sample_size=8, in_channels=cfg.in_dim, out_channels=cfg.out_dim, layers_per_block=cfg.num_res_blocks,
        block_out_channels=tuple(cfg.dim * m for m in cfg.dim_mult), cross_attention_dim=cfg.context_dim,
        down_block_types=tuple("CrossAttnDownBlock3D" if a else "DownBlock3D" for a in attn),
        up_block_types=tuple("CrossAttnUpBlock3D" if a else "UpBlock3D" for a in reversed(attn)),
        attention_head_dim=cfg.head_dim, norm_num_groups=cfg.norm_groups).eval()


def diffusers_vae(cfg: VAEConfig) -> DiffusersVAE:
    levels = len(cfg.ch_mult)
    return DiffusersVAE(
        in_channels=3, out_channels=3, latent_channels=cfg.z_channels, norm_num_groups=cfg.norm_groups,
        down_block_types=("DownEncoderBlock2D",) * levels, up_block_types=("UpDecoderBlock2D",) * levels,
        block_out_channels=tuple(cfg.ch * m for m in cfg.ch_mult), layers_per_block=cfg.num_res_blocks).eval()


def hf_text(cfg: TextConfig) -> CLIPTextModel:
    return CLIPTextModel(CLIPTextConfig(
        hidden_size=cfg.width, intermediate_size=int(cfg.width * cfg.mlp_ratio), num_attention_heads=cfg.heads,
        num_hidden_layers=cfg.layers - cfg.skip_last_layers, vocab_size=cfg.vocab_size,
        max_position_embeddings=cfg.context_length, hidden_act="gelu")).eval()


@pytest.fixture(scope="module")
def ours():
    from t2v.loader import assemble

    states = random_state_dicts(CONFIG, seed=3)
    torch.manual_seed(4)  # the last UNet conv is random too (not zero), so the output carries every path
    states["unet"] = {k: v + 0.01 * torch.randn_like(v) if v.is_floating_point() else v
                      for k, v in states["unet"].items()}
    return states, assemble(CONFIG, states, {n: f"random:{n}" for n in states})


def test_the_mapping_is_one_to_one_and_its_inverse_is_exact(ours):
    states, _ = ours
    theirs = diffusers_keys.to_diffusers(CONFIG, states)
    back = diffusers_keys.from_diffusers(CONFIG, theirs)
    for name, state in states.items():
        assert back[name].keys() == state.keys()
        assert all(torch.equal(back[name][k], v) for k, v in state.items()), name


def test_the_published_unet_maps_1480_keys_onto_1480():
    with torch.device("meta"):
        shapes = {k: tuple(v.shape) for k, v in UNet3D(UNetConfig()).state_dict().items()}
    keymap = diffusers_keys.unet_keymap(UNetConfig(), shapes)
    assert len(shapes) == len(set(keymap.names.values())) == 1480
    assert keymap.names["input_blocks.0.1.proj_in.weight"] == "transformer_in.proj_in.weight"
    assert keymap.names["output_blocks.8.3.conv.weight"] == "up_blocks.2.upsamplers.0.conv.weight"
    assert keymap.names["middle_block.3.temopral_conv.conv4.3.bias"] == "mid_block.temp_convs.1.conv4.3.bias"
    assert keymap.names["input_blocks.4.0.skip_connection.weight"] == "down_blocks.1.resnets.0.conv_shortcut.weight"
    assert len(keymap.shapes) == 34  # the temporal transformers' Conv1d projections


def test_diffusers_unet_loaded_through_the_mapping_predicts_the_same_noise(ours):
    states, pipe = ours
    model = diffusers_unet(CONFIG.unet)
    model.load_state_dict(diffusers_keys.to_diffusers(CONFIG, {"unet": states["unet"]})["unet"], strict=True)
    x = torch.randn(2, 4, 3, 16, 8)
    t = torch.tensor([999, 10])
    context = torch.randn(2, 77, CONFIG.unet.context_dim)
    with torch.no_grad():
        expected = pipe.unet(x, t, context)
        got = model(x, t, encoder_hidden_states=context).sample
    assert _rel(got, expected) <= 1e-4


def test_diffusers_vae_loaded_through_the_mapping_decodes_and_encodes_the_same(ours):
    states, pipe = ours
    model = diffusers_vae(CONFIG.vae)
    model.load_state_dict(diffusers_keys.to_diffusers(CONFIG, {"vae": states["vae"]})["vae"], strict=True)
    z, image = torch.randn(2, 4, 8, 8), torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        assert _rel(model.decode(z).sample, pipe.vae.decode(z)) <= 1e-4
        assert _rel(model.encode(image).latent_dist.mean, pipe.vae.encode(image)[0]) <= 1e-4


def test_transformers_clip_loaded_through_the_mapping_embeds_the_same(ours):
    states, pipe = ours
    model = hf_text(CONFIG.text)
    mapped = diffusers_keys.to_diffusers(CONFIG, {"text_encoder": states["text_encoder"]})["text_encoder"]
    model.load_state_dict(diffusers_keys.fit_text_prefix(mapped, model), strict=True)
    ids = pipe.tokenizer(["a panda eating bamboo", ""]).ids
    with torch.no_grad():
        assert _rel(model(ids).last_hidden_state, pipe.text_encoder(ids)) <= 1e-4


def test_a_state_dict_that_does_not_fit_is_refused_with_the_keys_named(ours):
    states, _ = ours
    bad = dict(states["vae"])
    bad.pop("decoder.conv_out.bias")
    with pytest.raises(KeyError, match=r"missing \['decoder.conv_out.bias'\]"):
        diffusers_keys.keymaps(CONFIG)["vae"].to_diffusers(bad)


def test_a_config_without_temporal_attention_still_maps_every_key():
    cfg = dataclasses.replace(CONFIG.unet, temporal_attention=False)
    with torch.device("meta"):
        shapes = {k: tuple(v.shape) for k, v in UNet3D(cfg).state_dict().items()}
        model = diffusers_unet(cfg)
    names = diffusers_keys.unet_keymap(cfg, shapes).names
    theirs = {k for k in model.state_dict() if "temp_attentions" not in k and not k.startswith("transformer_in")}
    assert set(names.values()) == theirs
