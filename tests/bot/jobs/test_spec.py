"""The request shape: /video's options make t2v's request once, the job row keeps its fields by name, and a stored
job makes the same request again; a bad value is one sentence naming it and what would be right (docs/voice.md)."""

from dataclasses import replace
from types import SimpleNamespace

import pytest

from bot.errors import Refused
from bot.gpu.models import ASPECTS
from bot.jobs.spec import REQUEST_FIELDS, JobSpec, Queued, Requester, UpscaleOf, refusal
from bot.moderation.servers import PresetLimits
from t2v import GenerationRequest, InvalidRequest, aspect_sizes
from t2v.config import ModelConfig, SamplerDefaults
from t2v.request import MAX_SEED
from tests.bot import voice

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
    ("options", "said"),
    [
        ({"steps": 0}, "Steps must be 1–150; you asked for 0."),
        ({"steps": 151}, "Steps must be 1–150; you asked for 151."),
        ({"steps": True}, "Steps must be a whole number from 1 to 150; you asked for True."),
        ({"steps": "5"}, "Steps must be a whole number from 1 to 150; you asked for “5”."),
        ({"guidance": 31.0}, "Guidance must be 1.0–30.0; you asked for 31.0."),
        ({"frames": 65}, "Frames must be 1–64; you asked for 65."),
        ({"seed": -1}, f"The seed must be 0–{MAX_SEED}; you asked for \\-1."),  # Discord shows "-1"
        ({"aspect": "5:1"}, f"The aspect must be one of {', '.join(ASPECTS)}; you asked for 5:1."),
        ({"sampler": "euler"}, "The sampler must be one of ddim, dpmpp-2m; you asked for euler."),
        ({"negative_prompt": "blurry \ud800"}, "The negative prompt holds U+D800, which is no character (half of a "
                                               "pair); type it again."),
    ],
)
def test_a_bad_option_is_one_sentence_naming_it_in_words_the_value_and_what_would_be_right(options, said):
    """docs/voice.md's refusal form, which a member reads as it is (it read "aspect='5:1' is not one of 1:1, …",
    t2v's words for a caller, and "steps=0 is outside the allowed range 1–150")."""
    with pytest.raises(InvalidRequest) as refused:
        JobSpec.video(PROMPT, **options)
    assert str(refused.value) == said and voice.problems(said) == []


@pytest.mark.parametrize(
    ("name", "value", "said", "clause"),
    [
        ("steps", 500, "Steps must be 1–150; you asked for 500.", "steps must be 1–150, not 500"),
        ("width", 100, "The width must be a multiple of 64 from 64 to 1024; you asked for 100.",
         "the width must be a multiple of 64 from 64 to 1024, not 100"),
        ("height", 2048, "The height must be 64–1024; you asked for 2048.", "the height must be 64–1024, not 2048"),
        ("fps", 0, "The frame rate must be 1–60; you asked for 0.", "the frame rate must be 1–60, not 0"),
        ("guidance", None, "Guidance must be a number from 1.0 to 30.0; you asked for None.",
         "guidance must be a number from 1.0 to 30.0, not None"),
        ("prompt", "\u200b", "The prompt is blank; describe the video to make.", "the prompt is blank"),
        ("prompt", "a \udc80 fox", "The prompt holds U+DC80, which is no character (half of a pair); type it again.",
         "the prompt holds U+DC80, which is no character (half of a pair)"),
    ],
)
def test_each_refusal_has_a_sentence_and_a_clause_to_go_on_mid_sentence(name, value, said, clause):
    assert (refusal(name, value), refusal(name, value, clause=True)) == (said, clause)
    assert voice.problems(said) == [] and voice.problems(f"Sorry, job #7 failed (invalid settings: {clause}).") == []


def test_a_value_t2v_takes_has_no_refusal():
    taken = [("steps", 150), ("width", 1024), ("aspect", "16:9"), ("sampler", "ddim"), ("prompt", "a fox")]
    assert [refusal(name, value) for name, value in taken] == [None] * len(taken)


@pytest.mark.parametrize(("name", "value"), [
    ("aspect", "5:1"), ("sampler", "euler"), ("steps", 0), ("steps", "5"), ("frames", "many"), ("frames", True),
    ("guidance", 31.0), ("guidance", "high"),
])
def test_a_bad_value_reads_the_same_in_video_and_in_a_servers_preset(name, value):
    """One builder (bot.moderation.values): a preset's read "Frames must be 1–64; you asked for many." where /video's
    said "a whole number from 1 to 64" and quoted the text, and its clause "many is not 1–64" named no option."""
    preset = PresetLimits(aspects=tuple(ASPECTS), max_steps=150, max_frames=64)
    for clause in (False, True):
        assert preset.refusal(name, value, clause=clause) == refusal(name, value, clause=clause) is not None


@pytest.mark.parametrize(("value", "shown"), [
    ("**ddim**", "\\*\\*ddim\\*\\*"), ("@everyone", "@\u200beveryone"), ("https://x.example/a", "<https://x.example/a>"),
])
def test_a_typed_value_is_named_inert_for_discord(value, shown):
    """A forged /video or a stored job's value is markdown, a mention or a link in the refusal no more (it was shown
    as typed: bold, a ping, an unfurled link)."""
    assert refusal("sampler", value) == f"The sampler must be one of ddim, dpmpp-2m; you asked for {shown}."


def test_an_empty_prompt_is_refused_by_the_request_itself():
    with pytest.raises(InvalidRequest, match=r"^The prompt is blank; describe the video to make\.$"):
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


def test_a_stored_row_that_no_longer_makes_a_request_says_why_as_a_sentence_for_a_button_and_a_clause_for_a_restart():
    """🔁 Reroll of it answers the sentence; restored after a restart it fails with the clause as its reason (both read
    "steps=500 is outside the allowed range 1–150", t2v's words)."""
    stored = row(JobSpec.video(PROMPT), steps=500)
    stored.id = 7
    with pytest.raises(InvalidRequest) as refused:
        JobSpec.of_job(stored)
    queued = Queued.of_job(stored)
    assert str(refused.value) == "Steps must be 1–150; you asked for 500."
    assert (queued.spec, str(queued.invalid)) == (None, "steps must be 1–150, not 500")


def test_an_edited_prompt_that_is_no_text_is_refused_in_a_sentence():
    with pytest.raises(InvalidRequest) as refused:
        JobSpec.video(PROMPT).again(3, "a fox \ud83d")
    assert str(refused.value) == "The prompt holds U+D83D, which is no character (half of a pair); type it again."


def test_refusals_carry_a_machine_reason_and_a_user_message():
    refused = Refused("user_cap", "You already have 3 videos queued.").recorded_as(7)
    assert (refused.reason, refused.message, refused.job_id, refused.logged, str(refused)) == (
        "user_cap", "You already have 3 videos queued.", 7, "user_cap", "You already have 3 videos queued.")


def test_the_interaction_token_stays_out_of_logs():
    requester = Requester(1, "ana", 2, interaction_token="very-secret-webhook-token")
    assert "very-secret" not in repr(requester)
    assert requester.upload_limit == 10 * 1024 * 1024
