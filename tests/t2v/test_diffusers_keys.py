"""The ModelScope ↔ diffusers key mapping: diffusers/transformers modules loaded through it compute what ours do."""

import dataclasses

import pytest
import torch

from t2v.bench import twin
from t2v.config import UNetConfig
from t2v.networks import random_state_dicts
from t2v.unet import UNet3D
from t2v.weights import keys
from tests.t2v.helpers import relative_error

CONFIG = twin.TINY
diffusers_unet, diffusers_vae, hf_text = twin.unet, twin.vae, twin.text_encoder


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
    theirs = keys.to_diffusers(CONFIG, states)
    maps = keys.keymaps(CONFIG)
    back = {name: maps[name].from_diffusers(state) for name, state in theirs.items()}
    for name, state in states.items():
        assert back[name].keys() == state.keys()
        assert all(torch.equal(back[name][k], v) for k, v in state.items()), name


def test_the_published_unet_maps_1480_keys_onto_1480():
    with torch.device("meta"):
        shapes = {k: tuple(v.shape) for k, v in UNet3D(UNetConfig()).state_dict().items()}
    keymap = keys.unet_keymap(UNetConfig(), shapes)
    assert len(shapes) == len(set(keymap.names.values())) == 1480
    assert keymap.names["input_blocks.0.1.proj_in.weight"] == "transformer_in.proj_in.weight"
    assert keymap.names["output_blocks.8.3.conv.weight"] == "up_blocks.2.upsamplers.0.conv.weight"
    assert keymap.names["middle_block.3.temopral_conv.conv4.3.bias"] == "mid_block.temp_convs.1.conv4.3.bias"
    assert keymap.names["input_blocks.4.0.skip_connection.weight"] == "down_blocks.1.resnets.0.conv_shortcut.weight"
    assert len(keymap.shapes) == 34  # the temporal transformers' Conv1d projections


def test_diffusers_unet_loaded_through_the_mapping_predicts_the_same_noise(ours):
    states, pipe = ours
    model = diffusers_unet(CONFIG.unet)
    model.load_state_dict(keys.to_diffusers(CONFIG, {"unet": states["unet"]})["unet"], strict=True)
    x = torch.randn(2, 4, 3, 16, 8)
    t = torch.tensor([999, 10])
    context = torch.randn(2, 77, CONFIG.unet.context_dim)
    with torch.no_grad():
        expected = pipe.unet(x, t, context)
        got = model(x, t, encoder_hidden_states=context).sample
    assert relative_error(got, expected) <= 1e-4


def test_diffusers_vae_loaded_through_the_mapping_decodes_and_encodes_the_same(ours):
    states, pipe = ours
    model = diffusers_vae(CONFIG.vae)
    model.load_state_dict(keys.to_diffusers(CONFIG, {"vae": states["vae"]})["vae"], strict=True)
    z, image = torch.randn(2, 4, 4, 4), torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert relative_error(model.decode(z).sample, pipe.vae.decode(z)) <= 1e-4
        assert relative_error(model.encode(image).latent_dist.mean, pipe.vae.encode(image)[0]) <= 1e-4


def test_the_twin_tokenizer_gives_open_clips_ids(ours):
    _, pipe = ours
    prompts = ["A panda eating bamboo on a rock.", "", "Hello, WORLD café 123 " * 20]
    ids = twin.tokenizer()(prompts, padding="max_length", max_length=77, truncation=True,
                                     return_tensors="pt").input_ids
    assert torch.equal(ids, pipe.tokenizer(prompts).ids)


def test_transformers_clip_loaded_through_the_mapping_embeds_the_same(ours):
    states, pipe = ours
    model = hf_text(CONFIG.text)
    mapped = keys.to_diffusers(CONFIG, {"text_encoder": states["text_encoder"]})["text_encoder"]
    model.load_state_dict(twin.fit_text_prefix(mapped, model), strict=True)
    ids = pipe.tokenizer(["a panda eating bamboo", ""]).ids
    with torch.no_grad():
        assert relative_error(model(ids).last_hidden_state, pipe.text_encoder(ids)) <= 1e-4


def test_a_state_dict_that_does_not_fit_is_refused_with_the_keys_named(ours):
    states, _ = ours
    bad = dict(states["vae"])
    bad.pop("decoder.conv_out.bias")
    with pytest.raises(KeyError, match=r"missing \['decoder.conv_out.bias'\]"):
        keys.keymaps(CONFIG)["vae"].to_diffusers(bad)


def test_a_config_without_temporal_attention_still_maps_every_key():
    cfg = dataclasses.replace(CONFIG.unet, temporal_attention=False)
    with torch.device("meta"):
        shapes = {k: tuple(v.shape) for k, v in UNet3D(cfg).state_dict().items()}
        model = diffusers_unet(cfg)
    names = keys.unet_keymap(cfg, shapes).names
    theirs = {k for k in model.state_dict() if "temp_attentions" not in k and not k.startswith("transformer_in")}
    assert set(names.values()) == theirs
