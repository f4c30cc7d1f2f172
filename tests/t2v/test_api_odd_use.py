"""The public Python API used the way a newcomer does: odd arguments are refused in one line before any work."""

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from t2v import (
    GenerationRequest,
    InvalidRequest,
    LoraError,
    Previews,
    UnsupportedDevice,
    animation,
    convert,
    load_pipeline,
)
from t2v.lora import Active
from tests.t2v.lora_files import random_lora


@pytest.fixture
def no_render(tiny_pipe, monkeypatch):
    """tiny_pipe, failing the test if a generation gets as far as encoding its prompt."""
    def refuse(*args, **kwargs):
        raise AssertionError("the generation started work before refusing its arguments")

    monkeypatch.setattr(tiny_pipe, "encode_prompts", refuse)
    return tiny_pipe


@pytest.mark.parametrize(("name", "value"), [("on_step", 5), ("should_cancel", True), ("on_preview", "frames.gif")])
@pytest.mark.parametrize("call", ["generate", "generate_batch", "generate_long", "generate_video2video"])
def test_a_callback_that_is_not_callable_is_refused_naming_it_before_any_work(no_render, call, name, value):
    """It was a TypeError ('int' object is not callable) from inside the sampler, after the first step."""
    request = no_render.request("a panda", seed=1, steps=2)
    args = {"generate": (request,), "generate_batch": ([request],), "generate_long": (request, 6),
            "generate_video2video": (request, np.zeros((4, 64, 64, 3), np.uint8))}[call]
    with pytest.raises(InvalidRequest, match=rf"^{name}={value!r} is not callable; pass a function \(or None\)"):
        getattr(no_render, call)(*args, **{name: value})


@pytest.mark.parametrize(("name", "value", "called_with"), [
    ("on_step", lambda step: None, r"\(step, total\)"),
    ("should_cancel", lambda job: False, "no arguments"),
    ("on_preview", lambda step, total: None, r"\(step, total, frames\)"),
])
@pytest.mark.parametrize("call", ["generate", "generate_batch", "generate_long", "generate_video2video"])
def test_a_callback_that_takes_other_arguments_is_refused_naming_them_before_any_work(no_render, call, name, value,
                                                                                      called_with):
    """It was a TypeError ('<lambda>() takes 1 positional argument but 2 were given') from inside the sampler, after
    the prompt was encoded and the first step had run."""
    request = no_render.request("a panda", seed=1, steps=2)
    args = {"generate": (request,), "generate_batch": ([request],), "generate_long": (request, 6),
            "generate_video2video": (request, np.zeros((4, 64, 64, 3), np.uint8))}[call]
    with pytest.raises(InvalidRequest, match=rf"takes \(.*\), but it is called with {called_with}; pass a function"):
        getattr(no_render, call)(*args, **{name: value})


def test_callbacks_that_take_the_sampler_s_arguments_in_any_accepted_form_are_taken(tiny_pipe):
    """Defaults, *args, methods and built-ins without a readable signature all run; nothing over-strict."""
    steps, previews = [], []

    class Counter:
        def step(self, step, total, *rest):
            steps.append((step, total))

    request = tiny_pipe.request("a panda", seed=1, steps=2, frames=2, width=64, height=64)
    tiny_pipe.generate(request, on_step=Counter().step, should_cancel=lambda *args: False,
                       on_preview=lambda step, total, frames, extra=None: previews.append(step))
    tiny_pipe.generate(request, on_step=lambda *args, **kwargs: None, should_cancel=[].__len__,
                       on_preview=Previews(lambda step, total, frames: None, every=2))
    assert steps == [(1, 2), (2, 2)] and previews == [1, 2]


@pytest.mark.parametrize(("fields", "message"), [
    ({"fn": None}, r"fn=None is not callable"),
    ({"fn": lambda frames: None}, r"fn=.* takes \(frames\), but it is called with \(step, total, frames\)"),
    ({"every": "2"}, r"every='2' must be a whole number of steps, at least 1"),  # was: TypeError from `<`
    ({"every": 2.5}, r"every=2.5 must be a whole number of steps"),
    ({"min_interval_s": math.nan}, r"min_interval_s=nan must be a number of seconds, at least 0"),  # never previewed
    ({"min_interval_s": "1"}, r"min_interval_s='1' must be a number of seconds"),
])
def test_previews_refuse_a_cadence_or_callback_they_could_not_keep(fields, message):
    with pytest.raises(InvalidRequest, match=message):
        Previews(**{"fn": print, **fields})
    assert Previews(print, every=np.int64(2), min_interval_s=np.float32(0.5)).every == 2  # NumPy's numbers are numbers


@pytest.mark.parametrize(("latents", "message"), [
    (np.zeros((1, 4, 4, 8, 8), np.float32), r"latents must be a torch.Tensor of shape \(1, 4, 4, 8, 8\), got ndarray"),
    (torch.full((1, 4, 4, 8, 8), math.nan), r"latents hold NaN or inf values; pass finite ones"),
])
def test_latents_that_are_no_tensor_or_not_finite_are_refused_naming_them_before_any_work(no_render, latents, message):
    """An array was an AttributeError ('numpy.ndarray' object has no attribute 'to'); NaN latents ran every step and
    then blamed a LoRA style or float16 (NonFiniteOutput)."""
    request = no_render.request("a panda", seed=1, steps=2)
    with pytest.raises(InvalidRequest, match=message):
        no_render.generate(request, latents=latents)
    with pytest.raises(InvalidRequest, match=message.replace("latents", "noise", 1)):
        no_render.generate_video2video(request, np.zeros((4, 64, 64, 3), np.uint8), noise=latents)


@pytest.fixture
def styled():
    """A tiny-random pipeline with a LoRA "a" applied at 0.5, and its weights then."""
    pipe = load_pipeline("tiny-random")
    pipe.set_lora(pipe.load_lora(random_lora(pipe.config, seed=1), "a"), 0.5)
    return pipe, _weights(pipe)


def _weights(pipe) -> dict[str, torch.Tensor]:
    return {f"{network}.{key}": tensor.clone() for network in ("unet", "text_encoder")
            for key, tensor in getattr(pipe, network).state_dict().items()}


@pytest.mark.parametrize(("call", "message"), [
    (lambda pipe: pipe.load_lora(None), r"LoRA source None is not a path or a state dict"),  # TypeError (pathlib)
    (lambda pipe: pipe.load_lora(3), r"LoRA source 3 is not a path or a state dict"),
    (lambda pipe: pipe.load_lora(random_lora(pipe.config), ""), r"LoRA name '' must be a non-empty str"),  # was kept
    (lambda pipe: pipe.load_lora(random_lora(pipe.config), 5), r"LoRA name 5 must be a non-empty str"),
    (lambda pipe: pipe.set_lora("a", 1.0, fused=None), r"fused=None must be True .* or False"),  # was: branches
    (lambda pipe: pipe.set_lora("a", 1.0, fused="no"), r"fused='no' must be True .* or False"),  # was: fused
])
def test_odd_load_lora_and_set_lora_arguments_are_refused_leaving_the_style_as_it_was(styled, call, message):
    pipe, weights = styled
    with pytest.raises(LoraError, match=message):
        call(pipe)
    assert set(pipe.styles.loaded) == {"a"} and pipe.styles.active == Active("a", 0.5, True)
    assert all(torch.equal(weights[key], tensor) for key, tensor in _weights(pipe).items())


def test_a_lora_loaded_from_the_current_folder_is_named_after_it(tiny_pipe, tmp_path, monkeypatch):
    """Path(".").name is "": the style was kept under the empty name."""
    (tmp_path / "claymation").mkdir()
    save_file(random_lora(tiny_pipe.config), tmp_path / "claymation" / "pytorch_lora_weights.safetensors")
    monkeypatch.chdir(tmp_path / "claymation")
    assert tiny_pipe.load_lora(".") == "claymation"
    tiny_pipe.styles.unload("claymation")


@pytest.mark.parametrize("destination", ["tiny-random", Path("./tiny-random")])
def test_convert_refuses_a_destination_named_like_the_preset_before_writing(destination, tmp_path, monkeypatch):
    """The CLI refused it; t2v.convert wrote ./tiny-random, which load_pipeline("tiny-random") never loads."""
    monkeypatch.chdir(tmp_path)
    with pytest.raises(InvalidRequest, match=r"an export of that name could not be loaded, since 'tiny-random' is the "
                                             r"random-weight preset; name another folder, e.g. weights/tiny-random"):
        convert("tiny-random", destination)
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize("call", [lambda: convert("tiny-random", "~/export"), lambda: load_pipeline("~/weights"),
                                  lambda: convert(Path("~/weights"), "export")])
def test_a_path_with_a_tilde_nothing_expanded_is_refused_before_anything_is_written(call, tmp_path, monkeypatch):
    """Python does not expand ~: t2v.convert("…", "~/export") wrote a folder named ~ under the current one."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", "/home/ann")
    with pytest.raises(InvalidRequest, match=r"'~/(export|weights)': the ~ is not expanded here .*; write "
                                             r"/home/ann/(export|weights)$"):
        call()
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize(("frames", "message"), [
    (70, r"^the video has 70 frames; video-to-video takes 1–64$"),  # was: "frames=70 is outside …", never set
    (0, r"^the video has 0 frames; video-to-video takes 1–64$"),
])
def test_a_video_of_too_many_or_no_frames_is_refused_naming_the_video(no_render, frames, message):
    with pytest.raises(InvalidRequest, match=message):
        no_render.generate_video2video(GenerationRequest("a panda", steps=2), np.zeros((frames, 64, 64, 3), np.uint8))


def test_a_video_of_other_length_than_pipe_request_filled_in_says_how_to_ask_for_it(no_render):
    """pipe.request(prompt), as the README builds one, holds the model's 4 frames; the refusal said only that."""
    with pytest.raises(InvalidRequest, match=r"the video has 3 frames but request.frames is 4; pass frames=3 \(a "
                                             r"GenerationRequest without frames takes the video's\)"):
        no_render.generate_video2video(no_render.request("a panda", steps=2), np.zeros((3, 64, 64, 3), np.uint8))


def test_a_video_of_frames_too_small_is_refused_naming_their_size_width_first(no_render):
    with pytest.raises(InvalidRequest, match=r"video frames of 6×64 are too small \(8 px at least\)"):
        no_render.generate_video2video(no_render.request("a panda", steps=2), np.zeros((4, 64, 6, 3), np.uint8))


@pytest.mark.parametrize("shape", [(2, 0, 5, 3), (2, 5, 0, 3)])
def test_an_animation_of_empty_frames_is_refused_naming_their_size(shape):
    with pytest.raises(InvalidRequest, match=rf"frames of {shape[2]}×{shape[1]} pixels are empty"):  # Pillow's error
        animation(np.zeros(shape, np.uint8))


@pytest.mark.parametrize(("requests", "shown"), [(None, "NoneType None"), (5, "int 5"),
                                                 ({"a": None}, r"dict \{'a': None\}")])
def test_a_batch_that_is_no_list_of_requests_is_refused_naming_it_before_any_work(no_render, requests, shown):
    """None was a TypeError ('NoneType' object is not iterable); a dict of requests was read as its keys and refused
    as 'generate takes a GenerationRequest, got str'."""
    with pytest.raises(InvalidRequest, match=rf"^generate_batch takes a list of GenerationRequest, got {shown}; pass "
                                             r"\[request, ...\]$"):
        no_render.generate_batch(requests)


def test_a_batch_names_generate_batch_when_one_of_its_requests_is_no_request(no_render):
    with pytest.raises(InvalidRequest, match=r"^generate_batch takes a GenerationRequest, got str 'a panda'"):
        no_render.generate_batch([no_render.request("a cat", steps=2), "a panda"])


@pytest.mark.parametrize("dtype", [torch.int64, torch.bool, torch.complex64])
def test_latents_that_are_not_floating_point_are_refused_naming_their_dtype(no_render, dtype):
    """Integer latents (torch.randint, a tensor of counts) rendered a video of rounded noise, complex ones one of their
    real part (with only a UserWarning): a silent wrong video."""
    request = no_render.request("a panda", seed=1, steps=2)
    latents = torch.zeros((1, 4, 4, 8, 8), dtype=dtype)
    message = rf"^latents are of dtype {dtype}; pass floating-point noise \(float32, float16 or bfloat16\)"
    with pytest.raises(InvalidRequest, match=message):
        no_render.generate(request, latents=latents)
    with pytest.raises(InvalidRequest, match=message.replace("latents", "noise", 1)):
        no_render.generate_video2video(request, np.zeros((4, 64, 64, 3), np.uint8), noise=latents)


def test_half_precision_latents_are_taken(tiny_pipe):
    latents = torch.randn((1, 4, 4, 8, 8), generator=torch.Generator().manual_seed(1))
    request = tiny_pipe.request("a panda", seed=1, steps=1)
    assert tiny_pipe.generate(request, latents=latents.half()).frames.shape == (4, 64, 64, 3)


@pytest.mark.parametrize(("network", "move", "shown"), [
    ("unet", lambda module: module.half(), "cpu in torch.float16"),  # was: "expected m1 and m2 to have the same dtype"
    ("vae", lambda module: module.double(), "cpu in torch.float64"),  # after every step had run
    ("text_encoder", lambda module: module.to("meta"), "meta in torch.float32"),  # a device of its own
])
def test_a_network_moved_after_load_is_refused_naming_it_before_any_work(monkeypatch, network, move, shown):
    """pipe.unet.half() (as one would with diffusers' pipe.to) failed after the prompt was encoded, in a matrix
    product, with a dtype or device mismatch naming neither the network nor the way to ask for that precision."""
    pipe = load_pipeline("tiny-random")
    move(getattr(pipe, network))
    monkeypatch.setattr(pipe, "denoise", lambda *args, **kwargs: pytest.fail("the render started before refusing"))
    with pytest.raises(InvalidRequest, match=rf"^pipe.{network} is on {shown}, but the pipeline was loaded for cpu in "
                                             r"torch.float32 \(pipe.device, pipe.dtype\); .* move it whole "
                                             r"with pipe.to\(device, dtype\), or load it with "
                                             r"load_pipeline\(source, device=..., dtype=...\)$"):
        pipe.generate(pipe.request("a panda", seed=1, steps=2))


def test_the_pipeline_moves_whole_with_to_and_renders_as_one_loaded_there():
    """There was no pipe.to: diffusers' `pipe.to(torch.float16)` was an AttributeError, and moving the networks one
    by one was refused at the next render. A style applied moves with the weights."""
    pipe, fresh = load_pipeline("tiny-random"), load_pipeline("tiny-random", dtype="bfloat16")
    pipe.load_lora(random_lora(pipe.config), "a")
    pipe.set_lora("a", 0.5)
    assert pipe.to(torch.bfloat16) is pipe
    assert (pipe.device, pipe.dtype) == (torch.device("cpu"), torch.bfloat16)
    assert {p.dtype for net in (pipe.unet, pipe.vae, pipe.text_encoder) for p in net.parameters()} == {torch.bfloat16}
    assert pipe.styles.active.name == "a" and pipe.styles.active.scale == 0.5
    fresh.load_lora(random_lora(fresh.config), "a")
    fresh.set_lora("a", 0.5)
    request = pipe.request("a panda", seed=1, steps=2, frames=2)
    assert np.array_equal(pipe.generate(request).frames, fresh.generate(request).frames)
    pipe.set_lora(None)
    fresh.set_lora(None)
    assert all(torch.equal(a, b) for a, b in zip(pipe.unet.state_dict().values(), fresh.unet.state_dict().values(),
                                                 strict=True))  # the style's writes undone on the moved weights
    assert pipe.to("cpu", "float32").generate(request).frames.shape == (2, 64, 64, 3)


@pytest.mark.parametrize(("args", "message", "error"), [
    (("cuda:7",), r"pipe.to\(device='cuda:7'\): no CUDA GPU is available on this machine", UnsupportedDevice),
    (("gpu",), r"pipe.to\(device='gpu'\): not a device name; use cpu, cuda or cuda:N", UnsupportedDevice),
    ((None, "fp8"), r"fp8 is chosen at load, where the e4m3 weights are quantised .* load_pipeline", InvalidRequest),
    ((None, "half"), r"dtype 'half' is not one of", InvalidRequest),
])
def test_a_move_the_pipeline_cannot_make_is_refused_naming_it_before_anything_moves(args, message, error):
    pipe = load_pipeline("tiny-random")
    with pytest.raises(error, match=message):
        pipe.to(*args)
    assert (pipe.device, pipe.dtype) == (torch.device("cpu"), torch.float32)
    assert {p.dtype for p in pipe.unet.parameters()} == {torch.float32}


def test_a_pipeline_on_the_fast_path_is_not_moved_and_says_how_to_get_one_there():
    pipe = load_pipeline("tiny-random").optimize(compile=False)
    with pytest.raises(InvalidRequest, match=r"on the fast path \(optimize\), whose fused modules and compiled code "
                                             r"were made for cpu in torch.float32; load it again with load_pipeline"):
        pipe.to(torch.bfloat16)
    assert pipe.dtype == torch.float32


@pytest.mark.parametrize("name", ["A", "a.safetensors", None])
def test_unloading_a_name_not_loaded_is_refused_and_the_style_stays_as_it_was(styled, name):
    """A misspelt name did nothing, silently: the style the caller meant to remove stayed applied to every render."""
    pipe, weights = styled
    with pytest.raises(LoraError, match=rf"^no LoRA named {name!r} is loaded \(loaded: a\), so none was unloaded; the "
                                        r"style applied is still applied \(set_lora\(None\) removes it\)$"):
        pipe.styles.unload(name)
    assert set(pipe.styles.loaded) == {"a"} and pipe.styles.active == Active("a", 0.5, True)
    assert all(torch.equal(weights[key], tensor) for key, tensor in _weights(pipe).items())
    pipe.styles.unload("a")
    assert not pipe.styles.loaded and pipe.styles.active is None
    with pytest.raises(LoraError, match=r"^no LoRA named 'a' is loaded \(loaded: none\)"):  # twice
        pipe.styles.unload("a")


@pytest.mark.parametrize(("dtype", "exact"), [(torch.float64, True), (torch.bfloat16, False)])
def test_a_move_that_fails_halfway_puts_every_network_and_the_style_back_and_raises(monkeypatch, caplog, dtype, exact):
    """A pipe.to that ran out of GPU memory moving the decoder left the text encoder and UNet moved, the pipeline's
    device and dtype saying otherwise, and the style off. Moved back from a wider dtype they are as before; from a
    narrower one, rounded, which the log says."""
    pipe = load_pipeline("tiny-random")
    pipe.load_lora(random_lora(pipe.config), "a")
    pipe.set_lora("a", 0.5)
    styled = {key: value.clone() for key, value in pipe.unet.state_dict().items()}
    moves = []
    move = type(pipe.vae).to

    def out_of_memory(module, *args, **kwargs):
        moves.append(kwargs.get("dtype"))
        if len(moves) == 1:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return move(module, *args, **kwargs)

    monkeypatch.setattr(pipe.vae, "to", out_of_memory.__get__(pipe.vae))
    with pytest.raises(torch.OutOfMemoryError):
        pipe.to(dtype)
    assert moves == [dtype, torch.float32]  # and back
    assert (pipe.device, pipe.dtype) == (torch.device("cpu"), torch.float32)
    assert {p.dtype for net in (pipe.unet, pipe.vae, pipe.text_encoder) for p in net.parameters()} == {torch.float32}
    assert pipe.styles.active.name == "a" and pipe.styles.active.scale == 0.5
    same = all(torch.equal(styled[key], value) for key, value in pipe.unet.state_dict().items())
    assert same is exact
    said = "were rounded to torch.bfloat16 (load the pipeline again for its exact weights)" in caplog.text
    assert said is not exact
    assert pipe.generate(pipe.request("a panda", seed=1, steps=2, frames=2)).frames.shape == (2, 64, 64, 3)
