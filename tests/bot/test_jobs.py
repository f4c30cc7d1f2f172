"""Job types: the /video options map onto engine requests and job rows, and bad values name their range."""

from dataclasses import replace

import pytest

from bot.jobs.spec import ASPECTS, Refused, Requester, UpscaleOf, VideoOptions
from t2v import GenerationRequest, InvalidRequest, aspect_sizes
from t2v.config import ModelConfig

PROMPT = "A panda eating bamboo on a rock."


def test_every_aspect_is_a_size_the_engine_accepts():
    assert aspect_sizes(ModelConfig()) == ASPECTS  # t2v's presets for ModelScope's 256² model
    assert 1 <= len(ASPECTS) <= 25  # Discord's limit on choices
    for name, (width, height) in ASPECTS.items():
        GenerationRequest(PROMPT, width=width, height=height)
        assert min(width, height) == 256, name
        wide, tall = (int(part) for part in name.split(":"))
        assert (width > height) == (wide > tall), name


@pytest.mark.parametrize(
    ("options", "named"),
    [
        ({"steps": 0}, "steps=0 is outside the allowed range 1–150"),
        ({"steps": 151}, "steps=151"),
        ({"steps": True}, "steps=True must be an integer"),
        ({"guidance": 31.0}, "guidance=31.0 is outside the allowed range 1.0–30.0"),
        ({"frames": 65}, "frames=65 is outside the allowed range 1–64"),
        ({"seed": -1}, "seed=-1 is outside the allowed range 0–"),
        ({"aspect": "5:1"}, "aspect='5:1' is not one of 1:1, 4:3"),
        ({"sampler": "euler"}, "sampler='euler' is not one of ddim, dpmpp-2m"),
    ],
)
def test_out_of_range_options_name_the_value_and_the_range(options, named):
    with pytest.raises(InvalidRequest, match=named.replace("(", r"\(").replace(".", r"\.")):
        VideoOptions(PROMPT, **options)


def test_options_become_the_engine_request_with_the_chosen_seed():
    options = VideoOptions(PROMPT, negative="blurry", steps=20, guidance=7, frames=8, aspect="16:9")
    request = options.to_request(seed=1234)
    assert (request.prompt, request.negative_prompt, request.seed) == (PROMPT, "blurry", 1234)
    assert (request.steps, request.guidance, request.frames) == (20, 7.0, 8)
    assert (request.width, request.height, request.fps, request.sampler) == (448, 256, 8, "ddim")


def test_params_round_trip_through_the_job_row():
    options = VideoOptions(PROMPT, negative="text, watermark", seed=99, steps=30, guidance=12.5, frames=24,
                           aspect="9:16", private=True, sampler="dpmpp-2m")
    params = options.to_params()
    assert options.to_request(1).sampler == params["sampler"] == "dpmpp-2m"
    assert (params["width"], params["height"]) == (256, 448)
    sized = replace(options, width=256, height=448)  # a stored job keeps its size (a reroll renders the same)
    assert VideoOptions.from_params(PROMPT, "text, watermark", {**params, "upload_limit": 1}) == sized
    assert VideoOptions.from_params(PROMPT, "", {}) == VideoOptions(PROMPT)


def test_an_upscale_round_trips_with_its_source_size_and_cost():
    options = VideoOptions(PROMPT, frames=24, aspect="16:9", width=1024, height=576, cost=2,
                           upscale=UpscaleOf(7, "/srv/media/7.mp4", 0.7))
    params = options.to_params()
    assert {k: params[k] for k in ("kind", "source_job", "strength", "cost", "width", "height")} == {
        "kind": "upscale", "source_job": 7, "strength": 0.7, "cost": 2, "width": 1024, "height": 576}
    assert VideoOptions.from_params(PROMPT, "", params) == options
    assert VideoOptions(PROMPT).to_params()["kind"] == "video" and VideoOptions(PROMPT).to_params()["cost"] == 1


@pytest.mark.parametrize(
    ("size", "named"),
    [({"width": 576}, "width and height must be given together"), ({"width": 600, "height": 320}, "multiple of 64"),
     ({"width": 2048, "height": 320}, "width=2048 is outside the allowed range 64–1024")],
)
def test_an_explicit_size_must_be_a_size_the_engine_accepts(size, named):
    with pytest.raises(InvalidRequest, match=named):
        VideoOptions(PROMPT, **size)


def test_refusals_carry_a_machine_reason_and_a_user_message():
    refused = Refused("user_cap", "You already have 3 videos queued.", job_id=7)
    assert (refused.reason, refused.message, refused.job_id, str(refused)) == (
        "user_cap", "You already have 3 videos queued.", 7, "You already have 3 videos queued.")


def test_the_interaction_token_stays_out_of_logs():
    requester = Requester(1, "ana", 2, interaction_token="very-secret-webhook-token")
    assert "very-secret" not in repr(requester)
    assert requester.upload_limit == 10 * 1024 * 1024
