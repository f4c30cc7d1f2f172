"""Diffusers-format directories: loaded onto our modules, equal to diffusers' own pipeline, or refused by field."""

import json
import logging
import shutil

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from t2v import ArchitectureError, GenerationRequest, InvalidRequest, WeightsError, convert, load_pipeline
from t2v.loader import detect_layout
from t2v.weights.diffusers import CONFIG_FILES, check_tokenizer, read_config, weight_files
from tests.t2v.diffusers_dirs import edit_config
from tests.t2v.helpers import relative_error

PROMPT = "a panda eating bamboo on a rock"


@pytest.fixture(scope="module")
def ours_256(diffusers_256):
    return load_pipeline(diffusers_256[1])


@pytest.fixture(scope="module")
def ours_576(diffusers_576):
    return load_pipeline(diffusers_576[1])


@pytest.fixture
def configs_only(diffusers_256, tmp_path):
    """A copy of the 256² directory's config files (and tokenizer configs), no weights: for config checks."""
    root = tmp_path / "configs"
    for file in [*CONFIG_FILES.values(), "model_index.json", "tokenizer/tokenizer_config.json"]:
        (root / file).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(diffusers_256[1] / file, root / file)
    return root


@pytest.mark.parametrize(("which", "width", "height"), [("256", 256, 256), ("576", 576, 320)])
def test_a_diffusers_directory_generates_what_diffusers_generates(request, which, width, height):
    theirs_pipe, _ = request.getfixturevalue(f"diffusers_{which}")
    ours = request.getfixturevalue(f"ours_{which}")
    req = GenerationRequest(PROMPT, seed=3, steps=2, frames=2, width=width, height=height)
    noise = torch.randn(1, 4, 2, height // 8, width // 8, generator=torch.Generator().manual_seed(3))
    result = ours.generate(req, latents=noise)
    theirs = theirs_pipe(PROMPT, num_inference_steps=2, height=height, width=width, num_frames=2,
                         latents=noise.clone(), guidance_scale=9.0, output_type="latent").frames
    assert relative_error(result.latents, theirs) <= 1e-4
    with torch.no_grad():
        assert relative_error(ours.decode(result.latents), theirs_pipe.decode_latents(theirs)) <= 1e-4


def test_default_size_comes_from_the_model_and_zeroscope_is_recognised_by_name(ours_256, ours_576, diffusers_256):
    assert detect_layout(diffusers_256[1]) == "diffusers"
    assert (ours_256.config.width, ours_256.config.height, ours_256.config.frames) == (256, 256, 16)  # sample_size
    assert (ours_576.config.width, ours_576.config.height, ours_576.config.frames) == (576, 320, 24)
    assert ours_576.config.name == "zeroscope_v2_576w" and ours_576.config.unet.head_dim == 16


def test_explicit_defaults_beat_the_directory(diffusers_576):
    pipe = load_pipeline(diffusers_576[1], width=448, height=256, frames=30)
    assert (pipe.config.width, pipe.config.height, pipe.config.frames) == (448, 256, 30)
    with pytest.raises(InvalidRequest, match=r"width=500 must be a multiple of 64"):  # the caller's value, no
        load_pipeline(diffusers_576[1], width=500)  # WeightsError: the model is fine


def test_convert_writes_an_export_that_keeps_the_defaults_and_the_output(diffusers_576, ours_576, tmp_path):
    export = convert(diffusers_576[1], tmp_path / "export", dtype="float32")
    config = json.loads((export / "t2v_model.json").read_text())["config"]
    assert (config["width"], config["height"], config["frames"]) == (576, 320, 24)
    req = GenerationRequest(PROMPT, seed=4, steps=1, frames=2, width=64, height=64)
    a, b = load_pipeline(export).generate(req), ours_576.generate(req)
    # equal weights, but both sides are memory-mapped at different alignments, and the CPU kernels then take
    # other code paths (differences of 1e-6): equal within float rounding, not bit for bit
    assert relative_error(a.latents, b.latents) <= 1e-5
    assert np.abs(a.frames.astype(int) - b.frames).max() <= 1


def test_fp16_files_are_used_when_they_are_all_there_is(diffusers_256, ours_256, tmp_path):
    root = shutil.copytree(diffusers_256[1], tmp_path / "fp16-only")
    for part in ("unet", "vae", "text_encoder"):
        (weight_files(root / part, part, prefer_half=False)[0]).unlink()
        assert ".fp16." in weight_files(root / part, part, prefer_half=False)[0].name
    half = load_pipeline(root)
    assert half.dtype == torch.float32  # fp16 weights, fp32 compute on the CPU
    for name in ("unet", "vae", "text_encoder"):
        a, b = getattr(half, name).state_dict(), getattr(ours_256, name).state_dict()
        assert all(torch.equal(a[k], b[k].half().float()) for k in b), name


def test_half_precision_prefers_the_fp16_variant(diffusers_256):
    files = weight_files(diffusers_256[1] / "unet", "unet", prefer_half=True)
    assert [f.name for f in files] == ["diffusion_pytorch_model.fp16.safetensors"]


def test_bin_and_sharded_checkpoints_load_the_same_weights(diffusers_256, ours_256, tmp_path):
    root = shutil.copytree(diffusers_256[1], tmp_path / "legacy", ignore=shutil.ignore_patterns("*.fp16.*"))
    text = root / "text_encoder" / "model.safetensors"
    torch.save(load_file(text), root / "text_encoder" / "pytorch_model.bin")  # transformers' pickle name
    text.unlink()
    (root / "vae" / "diffusion_pytorch_model.safetensors").unlink()
    diffusers_256[0].vae.save_pretrained(root / "vae", max_shard_size="100KB")
    assert len(list((root / "vae").glob("*-of-*.safetensors"))) > 1
    pipe = load_pipeline(root)
    for name in ("vae", "text_encoder"):
        a, b = getattr(pipe, name).state_dict(), getattr(ours_256, name).state_dict()
        assert all(torch.equal(a[k], b[k]) for k in b), name


@pytest.mark.parametrize(("file", "change", "line"), [
    ("unet", {"_class_name": "UNet2DConditionModel"},
     'unet/config.json: _class_name = "UNet2DConditionModel", expected "UNet3DConditionModel"'),
    ("unet", {"down_block_types": ["CrossAttnDownBlock3D"] * 3 + ["DownBlockMotion"]},
     "unet/config.json: down_block_types = [\"CrossAttnDownBlock3D\", \"CrossAttnDownBlock3D\", "
     "\"CrossAttnDownBlock3D\", \"DownBlockMotion\"], expected 4 entries (one per block_out_channels) of "
     "['CrossAttnDownBlock3D', 'DownBlock3D']"),
    ("unet", {"up_block_types": ["CrossAttnUpBlock3D"] * 4}, "up_block_types = [\"CrossAttnUpBlock3D\", "),
    ("unet", {"block_out_channels": [16, 24, 64, 64]},
     "block_out_channels = [16, 24, 64, 64], expected a list of positive integers, each a multiple of the first"),
    ("unet", {"cross_attention_dim": 64}, "cross_attention_dim = 64, expected 32 (text_encoder hidden_size)"),
    ("unet", {"attention_head_dim": 12}, "attention_head_dim = 12, expected one integer dividing every"),
    ("unet", {"attention_head_dim": [8, 8, 8, 8]}, "attention_head_dim = [8, 8, 8, 8], expected one integer"),
    ("unet", {"layers_per_block": [2, 2, 2, 2]}, "layers_per_block = [2, 2, 2, 2], expected a positive integer"),
    ("unet", {"norm_num_groups": 5}, "norm_num_groups = 5, expected an integer dividing every block_out_channels"),
    ("unet", {"act_fn": "gelu"}, 'unet/config.json: act_fn = "gelu", expected "silu"'),
    ("unet", {"in_channels": 8}, "unet/config.json: in_channels = 8, expected 4 (vae latent_channels)"),
    ("vae", {"latent_channels": 16}, "vae/config.json: latent_channels = 16, expected 4"),
    ("vae", {"down_block_types": ["DownEncoderBlock2D"] * 3 + ["AttnDownEncoderBlock2D"]},
     "vae/config.json: down_block_types = [\"DownEncoderBlock2D\", \"DownEncoderBlock2D\", \"DownEncoderBlock2D\", "
     "\"AttnDownEncoderBlock2D\"], expected 4 × 'DownEncoderBlock2D'"),
    ("vae", {"norm_num_groups": 32}, "vae/config.json: norm_num_groups = 32, expected an integer dividing every"),
    ("text_encoder", {"hidden_act": "quick_gelu"}, 'text_encoder/config.json: hidden_act = "quick_gelu", '
                                                   'expected "gelu"'),
    ("text_encoder", {"num_attention_heads": 3}, "text_encoder/config.json: num_attention_heads = 3, expected an "
                                                 "integer dividing hidden_size 32"),
    ("text_encoder", {"num_hidden_layers": None}, "num_hidden_layers = null, expected a positive integer"),
    ("scheduler", {"beta_schedule": "linear"},
     'scheduler/scheduler_config.json: beta_schedule = "linear", expected "scaled_linear"'),
    ("scheduler", {"prediction_type": "v_prediction"}, 'prediction_type = "v_prediction", expected "epsilon"'),
])
def test_a_different_architecture_is_refused_naming_the_field(configs_only, file, change, line):
    edit_config(configs_only, CONFIG_FILES[file], **change)
    with pytest.raises(ArchitectureError) as err:
        read_config(configs_only)
    assert line in str(err.value)


def test_every_mismatch_is_named_at_once(configs_only):
    edit_config(configs_only, CONFIG_FILES["unet"], norm_eps=1e-6, layers_per_block=0)
    edit_config(configs_only, CONFIG_FILES["scheduler"], prediction_type="sample")
    with pytest.raises(ArchitectureError) as err:
        read_config(configs_only)
    said = str(err.value)  # was one line per field, "…exactly:\n  - unet/config.json: …"
    assert "\n" not in said and said.startswith(
        f"{configs_only} is not a ModelScope text-to-video network that t2v can run exactly: unet/config.json: "
        "norm_eps = 1e-06, expected 1e-05; ")
    assert said.count("; ") == 2 and "scheduler/scheduler_config.json: prediction_type = \"sample\"" in said


def test_a_missing_config_is_named(configs_only):
    (configs_only / "vae" / "config.json").unlink()
    with pytest.raises(WeightsError, match=r"vae/config.json is missing"):
        read_config(configs_only)


def test_a_tokenizer_that_does_not_pad_with_id_0_is_reported(configs_only, caplog):
    with caplog.at_level(logging.WARNING, logger="t2v.weights.diffusers"):
        check_tokenizer(configs_only)
    assert not caplog.records  # pad "!" as published
    edit_config(configs_only, "tokenizer/tokenizer_config.json", pad_token="<|endoftext|>")
    with caplog.at_level(logging.WARNING, logger="t2v.weights.diffusers"):
        check_tokenizer(configs_only)
    assert "pads with '<|endoftext|>'; t2v pads with id 0" in caplog.text


PUBLISHED = {  # ali-vilab/text-to-video-ms-1.7b (model-spec §6.1), fields that matter
    "unet/config.json": {"_class_name": "UNet3DConditionModel", "act_fn": "silu", "attention_head_dim": 64,
                         "block_out_channels": [320, 640, 1280, 1280], "cross_attention_dim": 1024,
                         "down_block_types": ["CrossAttnDownBlock3D"] * 3 + ["DownBlock3D"], "in_channels": 4,
                         "layers_per_block": 2, "norm_eps": 1e-05, "norm_num_groups": 32, "out_channels": 4,
                         "sample_size": 32, "up_block_types": ["UpBlock3D"] + ["CrossAttnUpBlock3D"] * 3,
                         "flip_sin_to_cos": True, "use_linear_projection": True, "upcast_attention": False},
    "vae/config.json": {"_class_name": "AutoencoderKL", "act_fn": "silu", "block_out_channels": [128, 256, 512, 512],
                        "down_block_types": ["DownEncoderBlock2D"] * 4, "in_channels": 3, "latent_channels": 4,
                        "layers_per_block": 2, "norm_num_groups": 32, "out_channels": 3, "sample_size": 512,
                        "scaling_factor": 0.18215, "up_block_types": ["UpDecoderBlock2D"] * 4},
    "text_encoder/config.json": {"architectures": ["CLIPTextModel"], "hidden_act": "gelu", "hidden_size": 1024,
                                 "intermediate_size": 4096, "layer_norm_eps": 1e-05, "max_position_embeddings": 77,
                                 "model_type": "clip_text_model", "num_attention_heads": 16, "num_hidden_layers": 23,
                                 "projection_dim": 512, "vocab_size": 49408},
    "scheduler/scheduler_config.json": {"_class_name": "DDIMScheduler", "beta_end": 0.012,
                                        "beta_schedule": "scaled_linear", "beta_start": 0.00085, "clip_sample": False,
                                        "num_train_timesteps": 1000, "prediction_type": "epsilon",
                                        "set_alpha_to_one": False, "steps_offset": 1, "thresholding": False},
}


def test_the_published_configs_describe_exactly_our_default_model(tmp_path):
    from t2v.config import ModelConfig

    for file, data in PUBLISHED.items():
        (tmp_path / file).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / file).write_text(json.dumps(data))
    config = read_config(tmp_path)
    default = ModelConfig()
    assert (config.unet, config.vae, config.text, config.sampler) == (default.unet, default.vae, default.text,
                                                                     default.sampler)
    assert (config.width, config.height, config.frames, config.latent_scale) == (256, 256, 16, 0.18215)


def test_the_cli_converts_a_diffusers_directory_with_new_defaults(diffusers_256, tmp_path, capsys):
    from t2v.cli import main

    out = tmp_path / "export"
    assert main(["convert", str(diffusers_256[1]), str(out), "--width", "448", "--frames", "24"]) == 0
    config = json.loads((out / "t2v_model.json").read_text())["config"]
    assert (config["width"], config["height"], config["frames"]) == (448, 256, 24)
    assert main(["convert", str(diffusers_256[1]), str(out), "--width", "100"]) == 2
    assert "--width 100 must be a multiple of 64" in capsys.readouterr().err
