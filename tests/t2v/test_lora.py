"""LoRA styles generate what diffusers' TextToVideoSDPipeline + load_lora_weights (+ fuse_lora) generates, fused or
as branches, in every layout diffusers reads; they come off bit for bit, work on the compiled fast path, and a
LoRA for another model is refused, naming its keys, before any weight changes."""

import copy
import re

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from t2v import GenerationRequest, LoraError, load_pipeline
from t2v.weights.lora import read_lora
from tests.t2v.helpers import relative_error
from tests.t2v.lora_files import ALL_TEXT, ALL_UNET, diffusers_with_lora, random_lora, save_lora

PROMPT = "a panda eating bamboo on a rock"
SIZE = {"steps": 2, "frames": 2, "width": 64, "height": 64}
# the spatial layers, whose kohya names diffusers' converter rewrites right (it drops the temporal ones)
SPATIAL = (r".*((?<!temp_)attentions\.\d+\.transformer_blocks\.0\.(attn[12]\.to_[qkv]|attn[12]\.to_out\.0|ff\.net\.2)"
           r"|resnets\.\d+\.conv1)$")


def _noise() -> torch.Tensor:
    return torch.randn(1, 4, SIZE["frames"], SIZE["height"] // 8, SIZE["width"] // 8,
                       generator=torch.Generator().manual_seed(3))


def ours_latents(pipe) -> torch.Tensor:
    return pipe.generate(GenerationRequest(PROMPT, seed=3, **SIZE), latents=_noise()).latents


def their_latents(pipe) -> torch.Tensor:
    return pipe(PROMPT, num_inference_steps=SIZE["steps"], height=SIZE["height"], width=SIZE["width"],
                num_frames=SIZE["frames"], latents=_noise(), guidance_scale=9.0, output_type="latent").frames


def _weights(pipe) -> dict[str, torch.Tensor]:
    return {f"{name}.{key}": tensor.clone() for name in ("unet", "text_encoder")
            for key, tensor in getattr(pipe, name).state_dict().items()}


def _kohya(state: dict[str, torch.Tensor], alpha: float | None) -> dict[str, torch.Tensor]:
    """A peft-layout state dict under kohya-ss names (transformers 4's `text_model.` included)."""
    out = {}
    for key, tensor in state.items():
        network, rest = key.split(".", 1)
        module, kind = rest.split(".lora_")
        name = ("lora_unet_" if network == "unet" else "lora_te_text_model_") + module.replace(".", "_")
        out[f"{name}.lora_{'down' if kind.startswith('A') else 'up'}.weight"] = tensor
        if alpha is not None:
            out[f"{name}.alpha"] = torch.tensor(alpha)
    return out


@pytest.fixture(scope="module")
def theirs(diffusers_256):
    return diffusers_256[0]


@pytest.fixture(scope="module")
def plain(diffusers_256):
    return load_pipeline(diffusers_256[1])


@pytest.fixture
def ours(plain):
    """The diffusers directory on our pipeline, left without styles afterwards."""
    yield plain
    plain.set_lora(None)
    plain.styles.loaded.clear()


@pytest.fixture(scope="module")
def full_lora(theirs, tmp_path_factory):
    """Every layer peft can adapt, in both networks; header config with alpha ≠ rank, a rank and an alpha pattern,
    and rsLoRA (alpha / √rank) for the text encoder."""
    return save_lora(tmp_path_factory.mktemp("lora") / "full", theirs, ALL_UNET, ALL_TEXT,
                     unet_config={"r": 4, "lora_alpha": 8, "rank_pattern": {"conv_in": 2},
                                  "alpha_pattern": {"attn1.to_q": 3}},
                     text_config={"r": 2, "lora_alpha": 3, "use_rslora": True})


@pytest.fixture(scope="module")
def plain_latents(plain, theirs):
    ours, reference = ours_latents(plain), their_latents(theirs)
    assert relative_error(ours, reference) <= 1e-4
    return ours, reference


@pytest.fixture(scope="module")
def their_full(theirs, full_lora):
    """diffusers with `full_lora` loaded as peft's unfused adapters (weighted by set_adapters)."""
    return diffusers_with_lora(theirs, full_lora, 1.0, fused=False)


def test_a_fused_lora_generates_what_diffusers_fuse_lora_generates(ours, theirs, full_lora, plain_latents):
    ours.load_lora(full_lora, "full")
    ours.set_lora("full")
    expected = their_latents(diffusers_with_lora(theirs, full_lora, 1.0))
    assert relative_error(ours_latents(ours), expected) <= 1e-4
    assert relative_error(expected, plain_latents[1]) > 0.1  # the style shows


@pytest.mark.parametrize("fused", [True, False])
def test_at_another_scale_fused_or_as_branches_it_generates_what_diffusers_adapters_generate(ours, their_full,
                                                                                            full_lora, fused):
    # diffusers' set_adapters(weight) and fuse_lora(lora_scale=weight) agree within 2e-6 (docs/lora.md)
    their_full.set_adapters(["style"], adapter_weights=[0.4])
    assert ours.load_lora(full_lora.parent) == "full"  # diffusers' directory layout, named after the directory
    ours.set_lora("full", 0.4, fused=fused)
    assert relative_error(ours_latents(ours), their_latents(their_full)) <= 1e-4


def test_a_lora_on_some_unet_layers_only_and_no_header(ours, theirs, plain_latents, tmp_path):
    lora = save_lora(tmp_path, theirs, r".*(attn2\.to_[kv]|temp_attentions\.0\.transformer_blocks\.0\.attn1\.to_q)$",
                     metadata=False, unet_config={"r": 8, "lora_alpha": 2})  # no header: diffusers takes scale 1
    ours.load_lora(lora, "some")
    assert ours.styles.loaded["some"].networks() == {"unet"}
    ours.set_lora("some", 0.7)
    got, expected = ours_latents(ours), their_latents(diffusers_with_lora(theirs, lora, 0.7))
    assert relative_error(got, expected) <= 1e-4 and relative_error(expected, plain_latents[1]) > 0.01


def test_kohya_names_generate_what_diffusers_generates(ours, theirs, tmp_path):
    peft = load_file(save_lora(tmp_path, theirs, SPATIAL, ALL_TEXT, metadata=False))
    (tmp_path / "kohya").mkdir()
    save_file(_kohya(peft, alpha=1.0), tmp_path / "kohya" / "style.safetensors")  # alpha 1 on ranks 4 and 2
    lora = tmp_path / "kohya" / "style.safetensors"
    ours.load_lora(lora)
    ours.set_lora("style", 0.8)
    assert relative_error(ours_latents(ours), their_latents(diffusers_with_lora(theirs, lora, 0.8))) <= 1e-4


def test_kohya_names_of_temporal_layers_are_applied_like_their_peft_names(plain, theirs, tmp_path):
    # diffusers' converter rewrites `temp_attentions`, `temp_convs`, `transformer_in` into names no module has
    # and drops those layers without a word; their names are unambiguous, so t2v applies them
    peft = load_file(save_lora(tmp_path, theirs, ALL_UNET, ALL_TEXT, metadata=False))
    kohya, layers = read_lora(_kohya(peft, alpha=None), plain.config), read_lora(peft, plain.config)
    assert any("temp_convs" in layer.name for layer in kohya.layers)
    assert {(x.key, x.part): x.delta() for x in kohya.layers}.keys() == {(x.key, x.part) for x in layers.layers}
    for a, b in zip(sorted(kohya.layers, key=lambda x: (x.key, x.part or 0)),
                    sorted(layers.layers, key=lambda x: (x.key, x.part or 0)), strict=True):
        assert torch.equal(a.delta(), b.delta())


def _old_names(key: str) -> str:
    """diffusers' first LoRA names: attention processors' `to_q_lora.down`, `lora.down`, `lora_linear_layer`."""
    network, rest = key.split(".", 1)
    module, kind = rest.split(".lora_")
    half = "down" if kind.startswith("A") else "up"
    head, _, proj = module.rpartition(".")
    if network == "unet" and proj in ("to_q", "to_k", "to_v"):
        return f"{network}.{head}.processor.{proj}_lora.{half}.weight"
    if network == "unet":
        return f"{network}.{module}.lora.{half}.weight"
    return f"text_encoder.text_model.{module}.lora_linear_layer.{half}.weight"  # transformers 4's prefix


def test_older_diffusers_names_read_as_the_peft_names(plain, theirs, tmp_path):
    peft = load_file(save_lora(tmp_path, theirs, ALL_UNET, ALL_TEXT, metadata=False))
    unet_only = {k: v for k, v in peft.items() if k.startswith("unet.")}
    for variant, reference in (({_old_names(k): v for k, v in peft.items()}, peft),
                               ({k.removeprefix("unet."): v for k, v in unet_only.items()}, unet_only)):  # ≤ 0.31
        got = {(x.network, x.key, x.part): x.delta() for x in read_lora(variant, plain.config).layers}
        expected = {(x.network, x.key, x.part): x.delta() for x in read_lora(reference, plain.config).layers}
        assert got.keys() == expected.keys() and all(torch.equal(got[k], expected[k]) for k in got)


def test_a_pickled_lora_reads_as_its_safetensors_and_runs_nothing(plain, full_lora, tmp_path):
    (tmp_path / "bin").mkdir()
    torch.save(load_file(full_lora), tmp_path / "bin" / "pytorch_lora_weights.bin")  # diffusers' other file name
    pickled, safe = read_lora(tmp_path / "bin", plain.config), read_lora(full_lora, plain.config)
    assert pickled.name == "bin" and len(pickled.layers) == len(safe.layers)
    torch.save({"unet.conv_in.lora_A.weight": copy.deepcopy}, tmp_path / "code.bin")  # a pickled function
    with pytest.raises(LoraError, match=r"code\.bin is not a plain state dict of tensors"):
        read_lora(tmp_path / "code.bin", plain.config)



@pytest.mark.parametrize("content", [b"", b"hi", b"<!doctype html><title>404</title>", bytes(range(256))])
def test_a_bin_that_is_not_a_pickle_at_all_is_one_lora_error(plain, tmp_path, content):
    """A failed download saved under the LoRA's name: torch.load fails with KeyError, EOFError, ... on such bytes."""
    (tmp_path / "style.bin").write_bytes(content)
    said = r"style\.bin (is empty|is not a torch checkpoint: it is (text|a web page|binary data))"
    with pytest.raises(LoraError, match=said):
        read_lora(tmp_path / "style.bin", plain.config)


def test_switching_styles_and_removing_them_restores_every_weight_bit_for_bit(ours, theirs, full_lora, tmp_path):
    before = _weights(ours)
    ours.load_lora(full_lora, "a")
    ours.load_lora(save_lora(tmp_path, theirs, r".*to_out\.0$", ["fc2"], seed=7), "b")
    ours.set_lora("b", 1.0)
    only_b = _weights(ours)
    ours.set_lora("a", 0.9)
    ours.set_lora("a", 0.9, fused=False)
    ours.set_lora("b", 1.0)
    assert all(torch.equal(only_b[k], v) for k, v in _weights(ours).items())  # a then b is b alone
    ours.set_lora(None)
    after = _weights(ours)
    assert after.keys() == before.keys() and all(torch.equal(before[k], after[k]) for k in before)
    assert ours.styles.active is None and not ours.styles._saved


def test_a_lora_for_another_model_is_refused_naming_its_keys_before_any_weight_changes(diffusers_576, full_lora):
    other = load_pipeline(diffusers_576[1])  # same architecture, other widths and fewer resnets per level
    before = _weights(other)
    with pytest.raises(LoraError) as err:
        other.load_lora(full_lora)
    message = str(err.value)
    assert message.startswith(f"{full_lora} does not fit the model zeroscope_v2_576w: keys that match no layer of "
                              "the model: ")
    assert re.search(r"model: \d+ \(unet\.down_blocks\.0\.attentions\.1\.proj_in\.lora_A\.weight, .* … and \d+ more\)",
                     message)  # the second attention of a level: 576w has one resnet (and attention) per level
    assert re.search(r"layers whose shapes do not fit their weight: \d+ \(unet\.down_blocks\.2\.attentions\.0\."
                     r"proj_in: A \(4, 64\), B \(64, 4\) for a weight \(32, 32\);", message)
    assert message.endswith("is this one for another model?")
    assert not other.styles.loaded and all(torch.equal(before[k], v) for k, v in _weights(other).items())


@pytest.mark.parametrize(("edit", "expected"), [
    (lambda s: {**s, "unet.conv_in.lora_magnitude_vector": torch.ones(16)},
     "keys of DoRA magnitudes, which t2v does not apply: 1 (unet.conv_in.lora_magnitude_vector)"),
    (lambda s: {**s, "unet.conv_in.lora_B.bias": torch.ones(16)}, "keys of LoRA biases"),
    (lambda s: {k: v for k, v in s.items() if k != "unet.conv_in.lora_B.weight"},
     "keys without their A or B half: 1 (unet.conv_in.lora_A.weight)"),
    (lambda s: {**s, "unet.conv_in.alpha": torch.tensor(2.0)},
     "keys that are not LoRA weights in a layout diffusers reads: 1 (unet.conv_in.alpha)"),
    (lambda s: {**s, "text_encoder_2.encoder.layers.0.self_attn.q_proj.lora_A.weight": torch.ones(2, 32)},
     "keys of an SDXL second text encoder"),
])
def test_kinds_t2v_does_not_apply_are_refused_by_name(plain, full_lora, edit, expected):
    with pytest.raises(LoraError, match="does not fit the model") as err:
        read_lora(edit(load_file(full_lora)), plain.config)
    assert expected in str(err.value)


def test_a_fused_style_changes_the_compiled_unet_in_place_and_comes_off_exactly():
    import torch._dynamo.utils

    from t2v.compiled import example_inputs, video_shape

    pipe = load_pipeline("tiny-random")
    pipe.load_lora(random_lora(pipe.config), "style")
    inputs = example_inputs(video_shape(pipe.config.unet, 1, 3, 64, 64), torch.zeros(()))
    with torch.no_grad():
        plain = pipe.unet(*inputs)
        pipe.set_lora("style", 0.8)
        fused = pipe.unet(*inputs)
        pipe.optimize(backend="aot_eager")  # with the style fused: optimising keeps it, and it still comes off
        pipe.set_lora(None)
        compiled_plain = pipe.unet(*inputs)  # compiles this shape
        graphs = torch._dynamo.utils.counters["stats"]["unique_graphs"]
        pipe.set_lora("style", 0.8)
        compiled_fused = pipe.unet(*inputs)
        pipe.set_lora(None)
        again = pipe.unet(*inputs)
    assert pipe.unet.compiled(video_shape(pipe.config.unet, 1, 3, 64, 64))
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] == graphs  # no recompiling
    assert relative_error(fused, plain) > 0.1
    assert relative_error(compiled_fused, fused) <= 1e-5 and relative_error(compiled_plain, plain) <= 1e-5
    assert torch.equal(again, compiled_plain)
    with pytest.raises(LoraError, match="unfused LoRA branches need the plain UNet"):
        pipe.set_lora("style", 0.8, fused=False)


def test_optimising_with_branches_attached_is_refused():
    pipe = load_pipeline("tiny-random")
    pipe.load_lora(random_lora(pipe.config), "style")
    pipe.set_lora("style", fused=False)
    with pytest.raises(LoraError, match=r"set_lora\(None\)"):
        pipe.optimize(backend="aot_eager")
    pipe.set_lora(None)
    copy.deepcopy(pipe).optimize(backend="aot_eager", compile=False)


def test_an_unknown_style_or_scale_is_refused(plain):
    with pytest.raises(LoraError, match="no LoRA named 'x' is loaded"):
        plain.set_lora("x")
    plain.load_lora(random_lora(plain.config, rank=1), "y")
    with pytest.raises(LoraError, match="scale nan is not a finite number"):
        plain.set_lora("y", float("nan"))
    plain.styles.unload("y")


def test_a_style_is_refused_on_fp8_weights_before_any_weight_changes():
    from t2v.kernels import fp8

    pipe = load_pipeline("tiny-random")
    fp8.quantize_unet(pipe.unet)
    pipe.load_lora(random_lora(pipe.config), "style")
    before = _weights(pipe)
    with pytest.raises(LoraError, match=r"cannot be fused into the fp8 weight \S+ of the unet .* bf16, fp16 or fp32"):
        pipe.set_lora("style")
    assert all(torch.equal(before[key], tensor) for key, tensor in _weights(pipe).items())
    assert pipe.styles.active is None


@pytest.fixture
def two_styles():
    """A tiny-random pipeline with styles "a" and "b" loaded; its own weights, and its weights with "a" at 0.8."""
    pipe = load_pipeline("tiny-random")
    own = _weights(pipe)
    pipe.load_lora(random_lora(pipe.config, seed=1), "a")
    pipe.load_lora(random_lora(pipe.config, seed=2), "b")
    pipe.set_lora("a", 0.8)
    return pipe, own, _weights(pipe)


@pytest.mark.parametrize(("scale", "message"), [
    (True, r"LoRA scale True must be a number \(such as 0.8\), got bool"),  # torch: "Boolean alpha only supported"
    ("0.8", r"LoRA scale '0.8' must be a number"),
    (None, r"LoRA scale None must be a number"),
    (float("inf"), r"LoRA scale inf is not a finite number"),
])
def test_a_scale_that_is_no_finite_number_is_refused_before_any_weight_changes(two_styles, scale, message):
    pipe, _, styled = two_styles
    with pytest.raises(LoraError, match=message):
        pipe.set_lora("b", scale)
    assert all(torch.equal(styled[key], tensor) for key, tensor in _weights(pipe).items())
    assert pipe.styles.active.name == "a"
    pipe.set_lora("b", np.float32(0.5))  # NumPy's numbers are numbers
    assert pipe.styles.active.scale == 0.5 and type(pipe.styles.active.scale) is float


@pytest.mark.parametrize("fused", [True, False])
@pytest.mark.parametrize("error", [RuntimeError("a kernel failed"), torch.OutOfMemoryError("CUDA out of memory")])
def test_a_switch_that_fails_partway_leaves_the_models_own_weights_and_says_no_style(two_styles, monkeypatch,
                                                                                      error, fused):
    """Half of "b" written over "a" would mix two styles in every later render while `active` still said "a"."""
    import t2v.lora

    pipe, own, styled = two_styles
    pipe.set_lora("a", 0.8, fused=fused)
    calls = []

    def failing(*args):
        calls.append(1)
        if len(calls) == 3:  # two weights of "b" written already
            raise error
        return summed_delta(*args)

    summed_delta = t2v.lora.summed_delta
    monkeypatch.setattr(t2v.lora, "summed_delta", failing)
    expected = type(error) if isinstance(error, torch.OutOfMemoryError) else LoraError  # OOM as is, for the bot
    with pytest.raises(expected) as raised:
        pipe.set_lora("b", 1.0)
    if expected is LoraError:
        assert str(raised.value) == ("applying the style 'b' failed (RuntimeError: a kernel failed); the model's own "
                                     "weights are restored and no style is applied")
    assert len(calls) == 3 and pipe.styles.active is None and not pipe.styles._saved
    assert all(torch.equal(own[key], tensor) for key, tensor in _weights(pipe).items())
    monkeypatch.undo()
    pipe.set_lora("a", 0.8)  # and a style applies as before
    assert all(torch.equal(styled[key], tensor) for key, tensor in _weights(pipe).items())


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_a_lora_holding_nan_or_inf_is_refused_when_loaded_naming_the_key(value):
    pipe = load_pipeline("tiny-random")
    state = random_lora(pipe.config)
    key = "unet.conv_in.lora_B.weight"
    state[key][0, 0] = value
    with pytest.raises(LoraError, match=rf"keys holding NaN or inf values: 1 \({re.escape(key)}\)"):
        pipe.load_lora(state, "broken")
    assert not pipe.styles.loaded
