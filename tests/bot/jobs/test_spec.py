"""The request shape: /video's options make t2v's request once, the job row keeps its fields by name, and a stored
job makes the same request again; bad values name their range (t2v's words)."""

from dataclasses import replace
from types import SimpleNamespace

import pytest

from bot.errors import Refused
from bot.gpu.models import ASPECTS
from bot.jobs.spec import REQUEST_FIELDS, JobSpec, Requester, UpscaleOf
from t2v import GenerationRequest, InvalidRequest, aspect_sizes
from t2v.config import ModelConfig, SamplerDefaults

PROMPT = "A panda eating bamboo on a rock."


def row(spec: JobSpec, **params: object) -> SimpleNamespace:
    """A stored job of this spec, as storage hands it back."""
    return SimpleNamespace(prompt=spec.prompt, negative_prompt=spec.negative, params={**spec.params(), **params})


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
        ({"aspect": "5:1"}, "aspect='5:1' is not one of 1:1, 16:9"),
        ({"sampler": "euler"}, "sampler='euler' is not one of ddim, dpmpp-2m"),
    ],
)
def test_out_of_range_options_name_the_value_and_the_range(options, named):
    with pytest.raises(InvalidRequest, match=named.replace("(", r"\(").replace(".", r"\.")):
        JobSpec.video(PROMPT, **options)


def test_an_empty_prompt_is_refused_by_the_request_itself():
    with pytest.raises(InvalidRequest, match="prompt is empty"):
        JobSpec.video("   ")


def test_a_video_is_t2vs_request_at_the_models_size_for_its_aspect_with_t2vs_defaults():
    spec = JobSpec.video(PROMPT, aspect="16:9", sizes={"16:9": (576, 320)}.__getitem__, negative_prompt="blurry",
                         steps=20, guidance=7, frames=8)
    request = spec.request
    assert (request.prompt, request.negative_prompt, request.seed) == (PROMPT, "blurry", None)
    assert (request.steps, request.guidance, request.frames) == (20, 7.0, 8)
    assert (request.width, request.height, request.fps, request.sampler) == (576, 320, 8, "ddim")
    plain = JobSpec.video(PROMPT).request
    assert (plain.steps, plain.guidance, plain.fps, plain.sampler) == (SamplerDefaults.steps,
                                                                       SamplerDefaults.guidance,
                                                                       SamplerDefaults.fps, SamplerDefaults.sampler)
    assert (plain.width, plain.height) == ASPECTS["1:1"]


def test_the_job_row_keeps_the_requests_fields_by_name_and_gives_the_same_request_back():
    spec = JobSpec.video(PROMPT, negative_prompt="text, watermark", seed=99, steps=30, guidance=12.5, frames=24,
                         aspect="9:16", private=True, sampler="dpmpp-2m")
    params = spec.params()
    assert {name: params[name] for name in REQUEST_FIELDS} == {name: getattr(spec.request, name)
                                                                for name in REQUEST_FIELDS}
    assert (params["width"], params["height"], params["aspect"], params["private"]) == (256, 448, "9:16", True)
    assert JobSpec.of_job(row(spec, upload_limit=1)) == spec


def test_a_reroll_is_the_same_request_with_a_new_seed_and_an_edit_changes_only_the_prompt():
    spec = JobSpec.video(PROMPT, seed=99, steps=30, aspect="4:3", private=True)
    again, edited = spec.again(12), spec.again(12, "A red panda in the snow.")
    assert again == replace(spec, request=replace(spec.request, seed=None), origin=("reroll", 12))
    assert edited.prompt == "A red panda in the snow." and edited.request.steps == 30 and edited.private


def test_a_reroll_or_an_edit_remembers_its_source_job_across_a_restart():
    spec = JobSpec.video(PROMPT, seed=99)
    again, edited = spec.again(12), spec.again(13, "A red panda in the snow.")
    assert (again.params()["rerolled_from"], edited.params()["edited_from"]) == (12, 13)
    assert JobSpec.of_job(row(again)) == again and JobSpec.of_job(row(edited)) == edited
    assert "rerolled_from" not in spec.params() and JobSpec.of_job(row(spec)).origin is None


def test_the_style_is_kept_in_the_job_row_for_a_restart_and_by_reroll_and_edit():
    spec = JobSpec.video(PROMPT, style="claymation", seed=5)
    assert spec.params()["style"] == "claymation" and spec.prompt == PROMPT  # the prompt as typed, no style words
    assert JobSpec.of_job(row(spec)) == spec  # a restart queues it again in its style
    assert spec.again(1).style == spec.again(2, "A red panda in the snow.").style == "claymation"
    assert JobSpec.of_job(row(JobSpec.video(PROMPT))).style is None
    old = row(JobSpec.video(PROMPT))
    del old.params["style"]  # a row from before styles
    assert JobSpec.of_job(old).style is None


def test_an_upscale_round_trips_with_its_source_size_and_cost():
    request = GenerationRequest(PROMPT, frames=24, width=1024, height=576)
    spec = JobSpec(request, "16:9", cost=2, upscale=UpscaleOf(7, "/srv/media/7.mp4", 0.7))
    params = spec.params()
    assert {k: params[k] for k in ("kind", "source_job", "strength", "cost", "width", "height")} == {
        "kind": "upscale", "source_job": 7, "strength": 0.7, "cost": 2, "width": 1024, "height": 576}
    assert JobSpec.of_job(row(spec)) == spec
    assert JobSpec.video(PROMPT).params()["kind"] == "video" and JobSpec.video(PROMPT).params()["cost"] == 1


def test_a_stored_row_that_no_longer_makes_a_request_says_why():
    with pytest.raises(InvalidRequest, match="steps=500 is outside the allowed range"):
        JobSpec.of_job(row(JobSpec.video(PROMPT), steps=500))


def test_refusals_carry_a_machine_reason_and_a_user_message():
    refused = Refused("user_cap", "You already have 3 videos queued.").recorded_as(7)
    assert (refused.reason, refused.message, refused.job_id, refused.logged, str(refused)) == (
        "user_cap", "You already have 3 videos queued.", 7, "user_cap", "You already have 3 videos queued.")


def test_the_interaction_token_stays_out_of_logs():
    requester = Requester(1, "ana", 2, interaction_token="very-secret-webhook-token")
    assert "very-secret" not in repr(requester)
    assert requester.upload_limit == 10 * 1024 * 1024
