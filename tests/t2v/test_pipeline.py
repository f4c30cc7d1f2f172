"""The public generate() contract: validation, progress, cancellation, supplied latents, samplers."""

import re

import numpy as np
import pytest
import torch

from t2v import GenerationCancelled, GenerationRequest, InvalidRequest, NonFiniteOutput
from t2v.sampling import GuidedDenoiser, sample_ddim, sample_dpmpp_2m
from t2v.schedule import Schedule

SMALL = {"frames": 2, "width": 64, "height": 64}


@pytest.mark.parametrize(("field", "value", "pattern"), [
    ("prompt", "   ", "prompt is empty"),
    ("steps", 0, r"steps=0 is outside the allowed range 1–150"),
    ("steps", 151, r"steps=151 is outside the allowed range 1–150"),
    ("guidance", 0.5, r"guidance=0.5 is outside the allowed range 1.0–30.0"),
    ("guidance", 31, r"guidance=31 is outside"),
    ("frames", 65, r"frames=65 is outside the allowed range 1–64"),
    ("width", 100, r"width=100 must be a multiple of 64"),
    ("height", 2048, r"height=2048 is outside the allowed range 64–1024"),
    ("seed", -1, r"seed=-1 is outside"),
    ("sampler", "euler", r"sampler='euler' is not one of ddim, dpmpp-2m"),
    ("steps", 2.5, r"steps=2.5 must be an integer"),
])
def test_bad_requests_name_the_value_and_the_range(field, value, pattern):
    kwargs = {"prompt": "a cat", field: value}
    with pytest.raises(InvalidRequest, match=pattern):
        GenerationRequest(**kwargs)


@pytest.mark.parametrize(("fields", "message"), [
    ({"prompt": 5}, "prompt must be a str, got int"),
    ({"prompt": b"cat"}, "prompt must be a str, got bytes"),
    ({"prompt": "a cat", "negative_prompt": None}, "negative_prompt must be a str, got NoneType"),
    ({"prompt": "a cat", "negative_prompt": 5}, "negative_prompt must be a str, got int"),
    ({"prompt": "a cat", "negative_prompt": b"x"}, "negative_prompt must be a str, got bytes"),
    ({"prompt": "a cat", "guidance": "9"}, "guidance='9' must be a number, got str"),
])
def test_a_prompt_of_another_type_is_refused_by_its_type_not_as_empty(fields, message):
    with pytest.raises(InvalidRequest, match=message):
        GenerationRequest(**fields)


@pytest.mark.parametrize(("fields", "message"), [
    ({"prompt": "\ufeff"}, "prompt is empty: '\\ufeff' holds only invisible characters; describe the video to "
                           "generate"),
    ({"prompt": "\x01\x02"}, "prompt is empty: '\\x01\\x02' holds only invisible characters; describe the video"),
    ({"prompt": " \x00 "}, "prompt is empty: ' \\x00 ' holds only invisible characters; describe the video"),
])
def test_a_prompt_the_tokenizer_would_read_as_nothing_is_refused(fields, message):
    # was accepted, and rendered an unconditioned video: open_clip's tokenizer drops these characters
    with pytest.raises(InvalidRequest, match=re.escape(message)):
        GenerationRequest(**fields)


def test_a_prompt_with_one_visible_character_among_invisible_ones_is_kept_and_a_negative_may_be_blank():
    request = GenerationRequest("\ufeffa cat\x00", negative_prompt="\x00")  # the negative: read as none, as ""
    assert (request.prompt, request.negative_prompt) == ("\ufeffa cat\x00", "\x00")


def test_numpy_scalars_are_the_numbers_they_hold():
    request = GenerationRequest("a cat", seed=np.int64(5), guidance=np.float32(9), steps=np.int32(3),
                                frames=np.uint8(2), width=np.int64(64))
    assert (request.seed, request.guidance, request.steps, request.frames, request.width) == (5, 9.0, 3, 2, 64)
    assert [type(getattr(request, name)) for name in ("seed", "guidance", "steps", "frames", "width")] == [
        int, float, int, int, int]  # plain numbers, as a JSON or SQL column takes them
    with pytest.raises(InvalidRequest, match=r"steps=np.True_ must be an integer"):
        GenerationRequest("a cat", steps=np.True_)


@pytest.mark.parametrize("call", ["generate", "generate_long", "generate_video2video"])
def test_a_bare_prompt_is_refused_saying_what_the_call_takes(tiny_pipe, call):
    args = {"generate": (), "generate_long": (8,), "generate_video2video": (np.zeros((2, 64, 64, 3), np.uint8),)}
    with pytest.raises(InvalidRequest, match=rf"^{call} takes a GenerationRequest, got str 'a cat'; build one with "):
        getattr(tiny_pipe, call)("a cat", *args[call])
    with pytest.raises(InvalidRequest, match=r"generate_batch takes a list of GenerationRequest, got one"):
        tiny_pipe.generate_batch(GenerationRequest("a cat"))


def test_every_sampler_a_request_may_name_exists():
    from t2v.request import SAMPLER_NAMES
    from t2v.sampling import SAMPLERS

    assert sorted(SAMPLER_NAMES) == sorted(SAMPLERS)


def test_on_step_reports_every_step(tiny_pipe):
    seen = []
    tiny_pipe.generate(GenerationRequest("a cat", seed=1, steps=4, **SMALL), on_step=lambda s, t: seen.append((s, t)))
    assert seen == [(1, 4), (2, 4), (3, 4), (4, 4)]


def test_should_cancel_stops_at_the_next_step(tiny_pipe):
    seen = []
    with pytest.raises(GenerationCancelled) as err:
        tiny_pipe.generate(GenerationRequest("a cat", seed=1, steps=6, **SMALL),
                           on_step=lambda s, t: seen.append(s), should_cancel=lambda: len(seen) >= 2)
    assert seen == [1, 2] and err.value.step == 2 and err.value.total == 6


def test_supplied_latents_are_used_and_checked(tiny_pipe):
    request = GenerationRequest("a cat", seed=5, steps=2, **SMALL)
    noise = torch.randn(1, 4, 2, 8, 8, generator=torch.Generator().manual_seed(5))
    a = tiny_pipe.generate(request)
    b = tiny_pipe.generate(GenerationRequest("a cat", seed=99, steps=2, **SMALL), latents=noise)
    assert np.array_equal(a.frames, b.frames)  # the seed's noise is CPU randn with that seed
    with pytest.raises(InvalidRequest, match=r"latents have shape \(1, 4, 3, 8, 8\); this request needs"):
        tiny_pipe.generate(request, latents=torch.zeros(1, 4, 3, 8, 8))


def test_long_prompt_is_truncated_and_the_result_says_so(tiny_pipe):
    result = tiny_pipe.generate(GenerationRequest("a very small cat " * 30, seed=1, steps=1, **SMALL))
    assert result.prompt_truncated and any("truncated" in note for note in result.notes)


def test_negative_prompt_replaces_the_empty_unconditional_prompt(tiny_pipe):
    plain = tiny_pipe.generate(GenerationRequest("a cat", seed=3, steps=2, **SMALL))
    negative = tiny_pipe.generate(GenerationRequest("a cat", "blurry", seed=3, steps=2, **SMALL))
    assert not np.array_equal(plain.frames, negative.frames)
    _cond, uncond, _ = tiny_pipe.encode_prompts(["a cat"], [""])
    assert torch.equal(uncond, tiny_pipe.encode_prompts([""], [""])[0])


def test_guidance_one_is_the_conditional_prediction_alone(tiny_pipe):
    cond, uncond, _ = tiny_pipe.encode_prompts(["a cat"], ["a dog"])
    x = torch.randn(1, 4, 2, 8, 8)
    guided = GuidedDenoiser(tiny_pipe.unet, cond, uncond, 1.0)(x, 500)
    direct = tiny_pipe.unet(x, torch.tensor([500]), cond)
    assert torch.allclose(guided, direct, atol=1e-6)


def test_dpmpp_2m_converges_to_the_fine_ddim_solution_of_the_same_ode(tiny_pipe):
    schedule = Schedule()
    cond, uncond, _ = tiny_pipe.encode_prompts(["a cat"], [""])
    model = GuidedDenoiser(tiny_pipe.unet, cond, uncond, 3.0)
    x = torch.randn(1, 4, 2, 8, 8, generator=torch.Generator().manual_seed(0))
    reference = sample_ddim(model, x, schedule, schedule.linspace_timesteps(400))
    errors = {n: float((sample_dpmpp_2m(model, x, schedule, schedule.linspace_timesteps(n)) - reference).abs().max())
              for n in (5, 10, 20, 40)}
    assert errors[5] > errors[10] > errors[20] > errors[40]
    assert errors[20] < 0.5 * errors[5]


def test_dpmpp_sampler_runs_through_generate(tiny_pipe):
    result = tiny_pipe.generate(GenerationRequest("a cat", seed=1, steps=3, sampler="dpmpp-2m", **SMALL))
    assert result.frames.shape == (2, 64, 64, 3)


class QueuedGPU:
    """A stand-in device: queued work shows on the clock only when the pipeline synchronises (1 s each time)."""

    def __init__(self):
        self.now, self.events = 0.0, []

    def synchronize(self) -> None:
        self.events.append("sync")
        self.now += 1.0

    def clock(self) -> float:
        self.events.append("clock")
        return self.now


@pytest.mark.parametrize("entry", ["generate", "generate_long", "generate_video2video"])
def test_every_entry_point_reads_each_stage_time_after_a_device_synchronise(tiny_pipe, monkeypatch, entry):
    gpu = QueuedGPU()
    monkeypatch.setattr(tiny_pipe, "synchronize", gpu.synchronize)
    monkeypatch.setattr(tiny_pipe, "clock", gpu.clock)
    request = GenerationRequest("a cat", seed=1, steps=2, **SMALL)
    run = {"generate": lambda: tiny_pipe.generate(request),
           "generate_long": lambda: tiny_pipe.generate_long(request, total_frames=6, window=4),
           "generate_video2video": lambda: tiny_pipe.generate_video2video(request, np.zeros((2, 64, 64, 3), np.uint8))}
    timings = run[entry]().timings
    assert gpu.events == ["sync", "clock"] * 4  # start, prompts encoded, denoised, decoded
    assert {k: timings[k] for k in ("encode_s", "denoise_s", "decode_s", "total_s")} == {
        "encode_s": 1.0, "denoise_s": 1.0, "decode_s": 1.0, "total_s": 3.0}


def test_a_request_without_a_size_gets_the_loaded_models(tiny_pipe):
    request = GenerationRequest("a cat", seed=1, steps=1)
    assert (request.frames, request.width, request.height) == (None, None, None)
    assert tiny_pipe.generate(request).frames.shape == (4, 64, 64, 3)  # tiny-random: 4 × 64×64
    assert tiny_pipe.request("a cat", seed=1, steps=1) == GenerationRequest("a cat", seed=1, steps=1, frames=4,
                                                                             width=64, height=64)
    assert tiny_pipe.request("a cat", width=128).width == 128
    assert tiny_pipe.generate_long(request, total_frames=5).frames.shape == (5, 64, 64, 3)
    video = np.zeros((3, 32, 32, 3), np.uint8)
    assert tiny_pipe.generate_video2video(request, video, strength=1.0).frames.shape == (3, 64, 64, 3)  # its length


class _HostValueCopies(torch.utils._python_dispatch.TorchDispatchMode):
    """Counts float64 tensors cast to the latents' dtype: the schedule values a sampler sends to the device."""

    def __init__(self):
        super().__init__()
        self.count = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func is torch.ops.aten._to_copy.default and args[0].dtype == torch.float64:
            self.count += 1
        return func(*args, **(kwargs or {}))


def _ddim_with_a_copy_per_value(model, x, schedule, timesteps):
    """DDIM as the reference writes it: each schedule value cast from float64 at its step."""
    def cast(value):
        return torch.tensor(value, dtype=torch.float64).to(x)

    for i, t in enumerate(timesteps):
        a, a_prev = schedule.alpha_bar(t), schedule.alpha_bar(timesteps[i + 1] if i + 1 < len(timesteps) else -1)
        eps_out = model(x, t)
        sqrt_recip, sqrt_recipm1 = cast((1.0 / a) ** 0.5), cast((1.0 / a - 1.0) ** 0.5)
        x0 = sqrt_recip * x - sqrt_recipm1 * eps_out
        eps = (sqrt_recip * x - x0) / sqrt_recipm1
        alphas_prev = cast(a_prev)
        x = torch.sqrt(alphas_prev) * x0 + torch.sqrt(1 - alphas_prev) * eps
    return x


def test_ddim_sends_its_schedule_values_once_and_equals_a_cast_per_value_bit_for_bit():
    # a host-to-GPU copy at every step makes the host wait for the GPU at every step: one copy for the whole walk
    schedule, timesteps = Schedule(), Schedule().ddim_timesteps(20)
    x = torch.randn(1, 4, 2, 8, 8, generator=torch.Generator().manual_seed(0))

    def model(latents, t):
        return torch.sin(latents * (t / 1000.0))

    with _HostValueCopies() as copies:
        got = sample_ddim(model, x.clone(), schedule, timesteps)
    assert copies.count == 1
    assert torch.equal(got, _ddim_with_a_copy_per_value(model, x.clone(), schedule, timesteps))


def test_a_negative_prompt_too_long_or_without_effect_is_noted(tiny_pipe):
    long_negative = " ".join(["blurry"] * 100)
    noted = tiny_pipe.generate(GenerationRequest("a cat", long_negative, steps=1, seed=1)).notes
    assert "the negative prompt was longer than 77 CLIP tokens and was truncated" in noted
    assert not any("prompt was longer" in note and "negative" not in note for note in noted)
    unused = tiny_pipe.generate(GenerationRequest("a cat", "blurry", steps=1, seed=1, guidance=1.0)).notes
    assert any(note.startswith("the negative prompt has no effect at guidance 1") for note in unused)
    assert not any("negative" in note for note in tiny_pipe.generate(GenerationRequest("a cat", "", steps=1,
                                                                                        guidance=1.0)).notes)


def test_a_lora_scale_that_overflows_the_weights_raises_instead_of_making_a_black_video(tiny_pipe):
    from tests.t2v.lora_files import random_lora

    tiny_pipe.load_lora(random_lora(tiny_pipe.config), name="loud")
    tiny_pipe.set_lora("loud", 1e30)
    try:
        with pytest.raises(NonFiniteOutput, match=r"non-finite values \(NaN or inf\) in its latents.*LoRA"):
            tiny_pipe.generate(GenerationRequest("a cat", seed=1, steps=1, **SMALL))
    finally:
        tiny_pipe.styles.unload("loud")  # the weights back bit for bit, for the other tests


def test_a_lora_scale_that_takes_a_weight_past_its_dtype_is_refused_at_set_lora_and_leaves_no_style(tiny_pipe):
    """It was applied, and every render failed with NonFiniteOutput; the weights are back bit for bit."""
    from t2v.errors import LoraError
    from tests.t2v.lora_files import random_lora

    before = {key: value.clone() for key, value in tiny_pipe.unet.state_dict().items()}
    tiny_pipe.load_lora(random_lora(tiny_pipe.config, scale=10.0), name="loud")
    try:
        with pytest.raises(LoraError, match=r"^the style 'loud' at scale 1e\+38 takes \d+ of its weights past what "
                                            r"torch.float32 holds \(inf or NaN; first .*\); lower its scale"):
            tiny_pipe.set_lora("loud", 1e38)
        assert tiny_pipe.styles.active is None
        assert all(torch.equal(before[key], value) for key, value in tiny_pipe.unet.state_dict().items())
        assert tiny_pipe.generate(GenerationRequest("a cat", seed=1, steps=1, **SMALL)).frames is not None
    finally:
        tiny_pipe.styles.unload("loud")


def test_decoded_pixels_that_are_not_finite_raise_too(tiny_pipe, monkeypatch):
    monkeypatch.setattr(tiny_pipe, "decode", lambda latents: torch.full((1, 3, 2, 64, 64), float("nan")))
    with pytest.raises(NonFiniteOutput, match="in its frames"):
        tiny_pipe.generate(GenerationRequest("a cat", seed=1, steps=1, **SMALL))
