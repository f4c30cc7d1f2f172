"""⬆️ Upscale, live previews, model-sized aspects and long clips, end to end through the fake Discord."""

import functools
import io
from dataclasses import replace
from typing import Any

import pytest
from PIL import Image

from bot.gpu import previews as previews_module
from bot.gpu.models import Models
from storage import JobState
from t2v import load_pipeline
from t2v.config import ModelConfig
from tests.bot.conftest import Stack, Stacks
from tests.bot.helpers import ScriptedPipeline, contents, decoded_frames, delete_result, has_video, video
from tests.fakediscord import FakeDiscord, FakeMessage, FakeUser, action_row, button

pytestmark = pytest.mark.usefixtures("logged_errors")

PROMPT = "a paper boat drifting down a rainy street"
FIVE = ["video:reroll:1", "video:edit:1", "video:upscale:1", "video:showcase:1", "video:delete:1"]


@functools.cache
def with_upscaler() -> Models:
    """The tiny model with a tiny upscaler at 128×128."""
    return Models(load_pipeline("tiny-random"), load_pipeline("tiny-random", width=128, height=128))


def upscaling(stacks: Stacks, **settings: Any) -> Any:
    """A stack whose worker holds the tiny model and the 128×128 upscaler."""
    return stacks.run(lambda device: with_upscaler(), upscale_model="tiny-random", **settings)


async def result_of(stack: Stack, user: FakeUser, **options: Any) -> FakeMessage:
    return await (await video(stack.fake, PROMPT, user=user, **options)).wait_followup(has_video)


def preview_edits(fake: FakeDiscord, job_id: int = 1) -> list[str]:
    """The status edits of a job that uploaded a new live preview (`preview.gif`), in order."""
    edits = fake.requests_to("PATCH /webhooks/*/messages/@original")
    return [r.json["content"].split(" · ")[0] for r in edits if f"job #{job_id}\n" in (r.json or {}).get("content", "")
            and any(f.filename == "preview.gif" for f in r.files)]


async def test_upscale_rerenders_the_kept_video_at_the_upscalers_size_as_a_new_job(stacks: Stacks, caplog):
    caplog.set_level("INFO", "bot")
    quick = replace(with_upscaler(), preview_interval_s=0.0)  # the CPU upscale is quick: a preview at every chance
    async with stacks.run(lambda device: quick, upscale_model="tiny-random") as stack:
        fake = stack.fake
        bob = fake.make_user(name="bob")
        first = await result_of(stack, bob, aspect="16:9", steps=12, frames=2, seed=5)
        press = await fake.click(first, "video:upscale:1", user=bob)
        upscaled = await press.wait_followup(has_video)
        source, job = await stack.job(1), await stack.job(2)
        used = (await stack.moderation.quota(bob.id, (), fake.guild.id)).used

    assert first.custom_ids() == FIVE
    assert decoded_frames(first.attachments[0].data) == [(128, 64)] * 2  # 16:9 of the tiny 64² model
    assert decoded_frames(upscaled.attachments[0].data) == [(256, 128)] * 2  # 16:9 of the 128² upscaler
    assert upscaled.content.startswith(f"<@{bob.id}> here is your video · job #2")
    assert "\n⬆️ Upscale of job #1\n" in upscaled.content and "16:9 (256×128)" in upscaled.content
    assert f"user {bob.id} upscales job 1 to 256×128" in caplog.text and "upscaled to 256×128 (2 frames" in caplog.text
    assert (job.state, job.user_id, job.prompt) == (JobState.DONE, bob.id, source.prompt)
    assert {k: job.params[k] for k in ("kind", "source_job", "strength", "cost", "frames", "steps")} == {
        "kind": "upscale", "source_job": 1, "strength": 0.7, "cost": 2, "frames": 2, "steps": 12}
    assert "video:upscale:2" not in upscaled.custom_ids()  # an upscale is not upscaled again
    assert used == 3  # the video counts 1, the upscale 2
    assert preview_edits(fake, 2) == ["Encoding the video"]  # 8 of 12 steps run (strength 0.7), with live previews


async def test_reroll_of_an_upscale_upscales_the_same_source_again(stacks: Stacks):
    async with upscaling(stacks) as stack:
        fake = stack.fake
        bob = fake.make_user(name="bob")
        first = await result_of(stack, bob, aspect="tiny")
        upscaled = await (await fake.click(first, "video:upscale:1", user=bob)).wait_followup(has_video)
        again = await (await fake.click(upscaled, "video:reroll:2", user=bob)).wait_followup(has_video)
        job = await stack.job(3)

    assert decoded_frames(again.attachments[0].data) == [(128, 128)] * 2  # an aspect without a preset: native size
    assert (job.params["kind"], job.params["source_job"], job.params["seed"]) == ("upscale", 1, None)


async def test_upscale_is_refused_when_no_upscaler_is_configured_and_no_button_is_shown(stacks: Stacks):
    async with stacks.run() as stack:
        fake = stack.fake
        bob = fake.make_user(name="bob")
        result = await result_of(stack, bob, aspect="tiny")
        stale = fake.seed_message("from when an upscaler was configured",
                                  components=[action_row(button("video:upscale:1"))])
        answer = await (await fake.click(stale, "video:upscale:1", user=bob)).wait_answer()
        jobs = await stack.jobs()

    assert "video:upscale:1" not in result.custom_ids()
    assert answer.ephemeral and "no upscaler is configured" in answer.content
    assert len(jobs) == 1


async def test_upscale_of_a_private_deleted_or_someone_elses_job_is_refused(stacks: Stacks):
    async with upscaling(stacks) as stack:
        fake = stack.fake
        bob, eve = fake.make_user(name="bob"), fake.make_user(name="eve")
        private = await result_of(stack, bob, aspect="tiny", private=True)
        public = await result_of(stack, bob, aspect="tiny")
        forged = fake.seed_message("forged", components=[action_row(button("video:upscale:1"))])
        answers = [await (await fake.click(forged, "video:upscale:1", user=bob)).wait_answer(),
                   await (await fake.click(public, "video:upscale:2", user=eve)).wait_answer()]
        await delete_result(fake, public, 2, bob)
        stale = fake.seed_message("an older copy", components=[action_row(button("video:upscale:2"))])
        answers.append(await (await fake.click(stale, "video:upscale:2", user=bob)).wait_answer())
        jobs = await stack.jobs()

    assert private.custom_ids() == ["video:reroll:1", "video:edit:1", "video:delete:1"]
    assert all(a.ephemeral for a in answers)
    assert [a.content for a in answers] == [
        "Job #1 is private: private videos are not kept, so they cannot be upscaled.",
        "Job #2 is not yours; only the person who asked for it can do that.",
        "Job #2 was deleted.",
    ]
    assert len(jobs) == 2


async def test_an_upscale_needs_its_cost_in_quota(stacks: Stacks):
    async with upscaling(stacks, quota_default=2) as stack:
        fake = stack.fake
        bob = fake.make_user(name="bob")
        first = await result_of(stack, bob, aspect="tiny")
        answer = await (await fake.click(first, "video:upscale:1", user=bob)).wait_answer()
        job = await stack.job(2)

    assert answer.ephemeral and "This counts as 2 videos against your quota and you have 1 left" in answer.content
    assert (job.state, job.refusal_reason, job.params["kind"]) == (JobState.REFUSED, "quota", "upscale")


async def test_live_previews_ride_on_the_throttled_progress_edits(stacks: Stacks, scripted: ScriptedPipeline):
    scripted.previews = True
    gate = scripted.gate(PROMPT)
    every_step = Models(scripted, preview_interval_s=0.0)  # the delivery's clock throttles here, not the GPU's
    async with stacks.run(lambda device: every_step) as stack:
        events = stack.events()
        handle = await video(stack.fake, PROMPT, steps=8, frames=3)
        assert (await events.next())[0] == "job_started"  # at t=0 on the bot's monotonic clock
        previews = []
        for step, t in enumerate([0.5, 2.0, 2.5, 4.1, 4.2, 6.3, 6.4, 6.5], start=1):
            stacks.monotonic.t = t
            gate.release()
            name, (_, done, total, *preview) = await events.next()
            assert (name, done, total) == ("job_progress", step, 8)
            previews.append(preview[0].step if preview else None)
        result = await handle.wait_followup(has_video)
        gif = Image.open(io.BytesIO(preview[0].gif()))

    progress = [text.split(" · ")[0] for text in contents(handle.original) if text.startswith(("Rendering",
                                                                                              "Encoding"))]
    assert progress == ["Rendering ▰▰▱▱▱▱▱▱▱▱ 25%", "Rendering ▰▰▰▰▰▱▱▱▱▱ 50%", "Rendering ▰▰▰▰▰▰▰▱▱▱ 75%",
                        "Encoding the video"]  # as without previews
    assert previews == [None, 1, 2, 3, 4, 5, 6, 7]  # each step's preview goes with the next step's event
    assert preview_edits(stack.fake) == progress  # every edit the throttle let through carried a new preview
    assert (gif.format, gif.n_frames, gif.size) == ("GIF", 3, (128, 16))  # 64 × 8 preview frames, shown at 2×
    assert [a.filename for a in result.attachments] == ["video-1.mp4"]
    assert handle.original.attachments == []  # the status's last preview went when the video was posted


async def test_a_cancelled_job_does_not_keep_its_last_preview(stacks: Stacks, scripted: ScriptedPipeline):
    scripted.previews = True
    gate = scripted.gate(PROMPT)
    async with stacks.run(lambda device: Models(scripted, preview_interval_s=0.0)) as stack:
        events = stack.events()
        handle = await video(stack.fake, PROMPT, steps=10)
        assert (await events.next())[0] == "job_started"
        for t in (0.0, 0.0, 5.0):  # steps 1 and 2 are too soon to show; step 3 shows, with step 2's preview
            stacks.monotonic.t = t
            gate.release()
            assert (await events.next())[0] == "job_progress"
        shown = [a.filename for a in (await handle.wait_answer()).attachments]
        await (await stack.fake.slash("cancel")).wait_answer()
        status = await handle.wait_original(lambda m: m.content == "✖ Cancelled job #1.")

    assert shown == ["preview.gif"] and preview_edits(stack.fake) == ["Rendering ▰▰▰▱▱▱▱▱▱▱ 30%"]
    assert status.attachments == []


@pytest.mark.parametrize("fails", [False, True])
async def test_only_the_previews_a_status_edit_shows_are_made_gifs(stacks: Stacks, scripted: ScriptedPipeline,
                                                                   monkeypatch, logged_errors, fails):
    encoded = []
    real = previews_module.animation

    def animation(frames, *args, **kwargs):
        encoded.append(len(frames))
        if fails:
            raise OSError("no space left for the GIF")
        return real(frames, *args, **kwargs)

    monkeypatch.setattr(previews_module, "animation", animation)
    if fails:
        logged_errors.expect("could not be made a GIF")
    scripted.previews = True
    gate = scripted.gate(PROMPT)
    async with stacks.run(lambda device: Models(scripted, preview_interval_s=0.0)) as stack:
        events = stack.events()
        handle = await video(stack.fake, PROMPT, steps=10, frames=3)
        assert (await events.next())[0] == "job_started"
        for t in (0.0, 0.0, 0.0, 5.0):  # steps 1-3 are too soon to show; step 4 shows, with step 3's preview
            stacks.monotonic.t = t
            gate.release()
            assert (await events.next())[0] == "job_progress"
        status = await handle.wait_original(lambda m: m.content.startswith("Rendering ▰▰▰▰"))
        shown = [a.filename for a in status.attachments]  # before the cancel takes the preview off
        await (await stack.fake.slash("cancel")).wait_answer()

    assert encoded == [3]  # three previews reached the bot; the one shown was encoded, once
    assert shown == ([] if fails else ["preview.gif"])  # a GIF that could not be made: the edit goes on without


async def test_sizes_and_default_length_follow_the_loaded_model(stacks: Stacks, scripted: ScriptedPipeline):
    scripted.config = replace(ModelConfig(), width=576, height=320, frames=24)  # zeroscope_v2_576w's defaults
    async with stacks.run(lambda device: scripted, default_frames="") as stack:
        fake = stack.fake
        wide = await (await video(fake, PROMPT, aspect="16:9")).wait_followup(has_video)
        square = await (await video(fake, PROMPT, aspect="1:1")).wait_followup(has_video)
        [command] = [c for c in fake.commands if c["name"] == "video"]
        jobs = await stack.jobs()

    [aspect] = [o for o in command["options"] if o["name"] == "aspect"]
    assert {c["name"] for c in aspect["choices"]} >= {"16:9 (576×320)", "9:16 (320×576)", "1:1 (448×448)"}
    assert [(j.params["width"], j.params["height"], j.params["frames"]) for j in jobs] == [(576, 320, 24),
                                                                                          (448, 448, 24)]
    assert len(decoded_frames(wide.attachments[0].data)) == 24 and "1:1 (448×448)" in square.content


async def test_video_accepts_up_to_64_frames_when_the_server_allows_them(stacks: Stacks, scripted: ScriptedPipeline):
    async with stacks.run(lambda device: scripted, max_frames=64) as stack:
        result = await (await video(stack.fake, PROMPT, frames=64)).wait_followup(has_video)
        job = await stack.job(1)

    assert job.params["frames"] == 64 and len(decoded_frames(result.attachments[0].data)) == 64
