"""VideoService: refusals are logged, caps hold, users alternate, cancels stop jobs, restarts resume the queue.

Real storage (a temporary SQLite file), real FairQueue and GPUExecutor on "cpu"; the pipeline is a fake that holds
after each step while the test keeps `hold` clear, so "one running, one queued" is deterministic.
"""

import asyncio
import io
import logging
import threading
from dataclasses import replace
from datetime import timedelta
from typing import Any

import av
import pytest

from bot.app import build_executor
from bot.errors import Denied, NothingToCancel, Refused, SettingsError, StyleGone
from bot.gpu.executor import GPUExecutor
from bot.gpu.models import ASPECTS, Models
from bot.gpu.source import WARM_UP_PROMPT
from bot.jobs.admission import blank
from bot.jobs.encoder import Encoder
from bot.jobs.events import Submitted
from bot.jobs.queue import FairQueue
from bot.jobs.service import VideoService
from bot.jobs.spec import UpscaleOf
from bot.settings import load_settings
from storage import JobRecord, JobState
from t2v import TINY_RANDOM, WeightsError, load_pipeline
from t2v.errors import VideoTooLargeError
from t2v.request import GenerationRequest, GenerationResult
from tests.bot.helpers import NOW, PROMPTS, WAIT, BrokenEvents, Events, FakePipeline, Timers, requester, spec

NOISE = GenerationResult(None, 0, {}, is_noise=True).notes[0]  # the note the fake pipeline's videos carry


async def test_an_accepted_job_is_delivered_as_mp4_with_its_seed(make_service):
    h = await make_service()
    submitted = await h.submit(seed=42)
    assert submitted.position == 1 and submitted.eta == NOW + timedelta(seconds=5)
    assert submitted.job.state == JobState.QUEUED and submitted.job.seed == 42
    delivered = await h.events.wait("done", submitted.job.id)
    assert delivered.video[4:8] == b"ftyp" and delivered.seed == 42 and delivered.notes == (NOISE,)
    assert h.events.of(submitted.job.id) == ["started", "progress", "done"]
    job = await h.repo.get_job(submitted.job.id)
    assert (job.state, job.seed, job.output_bytes, job.attempts) == (JobState.DONE, 42, len(delivered.video), 1)
    assert job.params["upload_limit"] == 10 * 1024 * 1024 and job.interaction_token == "token-1"
    assert h.service.jobs_of(1) == []


async def test_a_random_seed_is_chosen_at_submit_and_used(make_service):
    h = await make_service()
    submitted = await h.submit()
    assert submitted.job.seed is not None and submitted.job.params["seed"] is None
    assert (await h.events.wait("done", submitted.job.id)).seed == submitted.job.seed


async def test_the_eta_counts_the_running_job_and_the_jobs_ahead(make_service):
    h = await make_service(seconds_per_job=5.0)
    h.pipeline.hold.clear()
    first = await h.submit(1, PROMPTS[0])
    await h.events.wait("progress", first.job.id)
    second = await h.submit(1, PROMPTS[1])
    third = await h.submit(2, PROMPTS[2])
    assert (second.position, second.eta) == (1, NOW + timedelta(seconds=10))
    assert (third.position, third.eta) == (2, NOW + timedelta(seconds=15))
    assert [(job.id, pos) for job, pos in h.service.jobs_of(1)] == [(first.job.id, None), (second.job.id, 1)]
    assert h.service.jobs_of(1)[0][0].state == JobState.RUNNING


async def test_after_a_restart_the_eta_starts_from_the_finished_videos_in_the_jobs_log(make_service, database):
    repo = database.repo()
    for gpu_s in (20.0, 20.0):
        job = await repo.create_job(user_id=1, user_name="user1", channel_id=500, prompt=PROMPTS[0], params={})
        await repo.mark_running(job.id)
        await repo.mark_done(job.id, seed=1, gpu_s=gpu_s, output_bytes=10)
    h = await make_service(seconds_per_job=5.0)  # the guess, which the log replaces
    h.pipeline.hold.clear()
    first = await h.submit(1, PROMPTS[0])
    await h.events.wait("progress", first.job.id)
    second = await h.submit(2, PROMPTS[1])
    assert h.service.eta.seconds_per_job == 20.0
    assert (second.position, second.eta) == (1, NOW + timedelta(seconds=40))  # the running one's 20 s, then its own


async def test_places_lists_the_queued_jobs_in_service_order_with_their_etas(make_service):
    h = await make_service(seconds_per_job=5.0)
    h.pipeline.hold.clear()
    first = await h.submit(1, PROMPTS[0])
    await h.events.wait("progress", first.job.id)
    ids = [await h.job_id(user, prompt) for user, prompt in [(1, PROMPTS[1]), (1, PROMPTS[2]), (2, PROMPTS[3])]]
    places = [(job.id, position, (eta - NOW).total_seconds()) for job, position, eta in h.service.places()]
    assert places == [(ids[0], 1, 10.0), (ids[2], 2, 15.0), (ids[1], 3, 20.0)]  # users alternate


@pytest.mark.parametrize(
    ("prompt", "reason", "logged", "says"),
    [
        ("\u200b \u2060", "empty", "empty", "empty"),  # no spec is made of it: the command asks refuse_blank
        ("A cat. " * 80, "too_long", "too_long", "the limit is 500"),
        ("Un chat noir qui dort sur un canapé rouge près de la fenêtre", "not_english", "not_english", "English"),
        ("A knight in a castle hall, covered in blood", "denylist", "denylist:violence", "violent or graphic"),
    ],
)
async def test_refused_prompts_are_logged_and_never_run(make_service, prompt, reason, logged, says):
    h = await make_service()
    if blank(prompt):  # t2v makes no request of it, so the command refuses it before it builds the spec
        with pytest.raises(Refused) as caught:
            await h.service.refuse_blank(requester(1), prompt, private=False)
        refused = caught.value
    else:
        refused = await h.refused(prompt=prompt)
    assert refused.reason == reason and says in refused.message
    assert "covered in blood" not in refused.message  # the category is named, never the entry
    job = await h.repo.get_job(refused.job_id)
    assert (job.state, job.refusal_reason, job.prompt) == (JobState.REFUSED, logged, prompt)
    assert await h.repo.list_jobs([JobState.QUEUED, JobState.RUNNING]) == []
    assert h.events.calls == [] and h.pipeline.steps_run == {}


async def test_options_over_the_server_caps_are_refused(make_service):
    h = await make_service(max_steps=10, max_frames=4)
    assert (await h.refused(steps=11)).message == "Steps must be at most 10 on this bot; you asked for 11."
    assert (await h.refused(frames=5)).reason == "invalid"
    negative = await h.refused(negative_prompt="blurry " * 80)
    assert negative.reason == "too_long" and "negative prompt" in negative.message
    reasons = [job.refusal_reason for job in await h.repo.list_jobs([JobState.REFUSED])]
    assert reasons == ["invalid:steps", "invalid:frames", "too_long"]


async def test_the_per_user_cap_counts_running_and_queued_jobs(make_service):
    h = await make_service(per_user_cap=2)
    h.pipeline.hold.clear()
    running = await h.submit(1, PROMPTS[0])
    await h.events.wait("started", running.job.id)
    await h.submit(1, PROMPTS[1])
    refused = await h.refused(1, PROMPTS[2])
    assert refused.reason == "user_cap" and "2" in refused.message
    assert (await h.repo.get_job(refused.job_id)).refusal_reason == "user_cap"
    assert (await h.submit(2, PROMPTS[3])).position == 2  # other users are not affected


async def test_the_global_cap_counts_waiting_jobs(make_service):
    h = await make_service(global_cap=1)
    h.pipeline.hold.clear()
    running = await h.submit(1, PROMPTS[0])
    await h.events.wait("started", running.job.id)
    await h.submit(2, PROMPTS[1])
    refused = await h.refused(3, PROMPTS[2])
    assert refused.reason == "global_cap" and "queue is full (1 waiting, its limit)" in refused.message


async def test_concurrent_submits_cannot_overrun_the_user_cap(make_service):
    h = await make_service(per_user_cap=2)
    h.pipeline.hold.clear()
    results = await asyncio.gather(*(h.submit(1, prompt) for prompt in PROMPTS[:4]), return_exceptions=True)
    assert sum(isinstance(r, Submitted) for r in results) == 2
    assert sorted(r.reason for r in results if isinstance(r, Refused)) == ["user_cap", "user_cap"]


async def test_concurrent_presses_of_one_button_make_one_job_and_typed_edits_each_their_own(make_service):
    """⬆️ pressed twice at once (both submits on their way before either is written): one upscale is queued, the
    other is told where it is; ✏️'s submissions carry what was typed, so each asks for a video of its own."""
    h = await make_service(per_user_cap=5)
    h.pipeline.hold.clear()
    running = await h.submit(1, PROMPTS[0])
    await h.events.wait("started", running.job.id)
    upscale = replace(spec(PROMPTS[1]), upscale=UpscaleOf(7, "7.mp4", 0.7))
    twins = await asyncio.gather(*(h.service.submit(requester(1), upscale) for _ in range(2)),
                                 return_exceptions=True)
    edit = replace(spec(PROMPTS[2]), origin=("edit", 7))
    edits = await asyncio.gather(*(h.service.submit(requester(1), edit) for _ in range(2)), return_exceptions=True)

    [queued] = [r for r in twins if isinstance(r, Submitted)]
    assert [str(r) for r in twins if isinstance(r, Denied)] == [
        f"⬆️ Upscale of job #7 is already queued (#1 in the queue) as job #{queued.job.id}; pressing it again does "
        "not ask for another."]
    assert all(isinstance(r, Submitted) for r in edits)
    assert [job.id for job in await h.repo.list_jobs()] == [running.job.id, queued.job.id, *(r.job.id for r in edits)]


async def test_two_users_with_three_jobs_each_are_served_alternately(make_service):
    h = await make_service()
    h.pipeline.hold.clear()
    warmup = await h.submit(9, PROMPTS[6])
    await h.events.wait("started", warmup.job.id)
    a = [(await h.submit(1, prompt)).job.id for prompt in PROMPTS[:3]]
    b = [(await h.submit(2, prompt)).job.id for prompt in PROMPTS[3:6]]
    h.pipeline.hold.set()
    for job_id in a + b:
        await h.events.wait("done", job_id)
    assert h.events.started() == [warmup.job.id, a[0], b[0], a[1], b[1], a[2], b[2]]


async def test_cancelling_a_queued_job_removes_it_at_once(make_service):
    h = await make_service()
    h.pipeline.hold.clear()
    running = await h.submit(1, PROMPTS[0])
    await h.events.wait("started", running.job.id)
    queued = await h.submit(1, PROMPTS[1])
    cancelled = await h.service.cancel(1)  # no id: the newest active job
    assert cancelled.id == queued.job.id and cancelled.state == JobState.CANCELLED
    assert h.events.of(queued.job.id) == ["cancelled"]
    assert [pos for _, pos in h.service.jobs_of(1)] == [None]
    h.pipeline.hold.set()
    await h.events.wait("done", running.job.id)
    assert h.events.started() == [running.job.id]


async def test_cancelling_a_running_job_stops_it_at_the_next_step(make_service):
    h = await make_service()
    h.pipeline.hold.clear()
    h.pipeline.deaf_while_held = True  # the job cannot end before the second /cancel has looked at it
    running = await h.submit(1, PROMPTS[0], steps=20)
    await h.events.wait("progress", running.job.id)
    flagged = await h.service.cancel(1, running.job.id)
    assert flagged.cancel_requested and flagged.state == JobState.RUNNING
    with pytest.raises(NothingToCancel, match=rf"^Job #{running.job.id} is already stopping: it ends after the "):
        await h.service.cancel(1)  # not "you have no queued or running videos": one is, stopping
    h.pipeline.hold.set()  # the step ends: the next one sees the cancel
    cancelled = await h.events.wait("cancelled", running.job.id)
    assert cancelled.state == JobState.CANCELLED and await h.state(running.job.id) == JobState.CANCELLED
    assert h.pipeline.steps_run[PROMPTS[0]] == 1
    assert h.events.of(running.job.id) == ["started", "progress", "cancelled"]
    after = await h.submit(1, PROMPTS[1])  # the worker is free again
    h.pipeline.hold.set()
    await h.events.wait("done", after.job.id)


async def test_only_your_own_active_jobs_can_be_cancelled(make_service):
    h = await make_service()
    h.pipeline.hold.clear()
    theirs = await h.submit(2, PROMPTS[0])
    with pytest.raises(NothingToCancel, match=f"#{theirs.job.id} is not yours"):
        await h.service.cancel(1, theirs.job.id)
    with pytest.raises(NothingToCancel, match="no queued or running"):
        await h.service.cancel(1)
    with pytest.raises(NothingToCancel, match="no job #999"):
        await h.service.cancel(1, 999)
    h.pipeline.hold.set()
    await h.events.wait("done", theirs.job.id)
    with pytest.raises(NothingToCancel, match="already done"):
        await h.service.cancel(2, theirs.job.id)


async def test_a_failing_generation_is_logged_and_the_next_job_still_runs(make_service):
    h = await make_service()
    h.pipeline.fail.add(PROMPTS[0])
    bad = await h.submit(1, PROMPTS[0])
    good = await h.submit(2, PROMPTS[1])
    message = await h.events.wait("failed", bad.job.id)
    assert message.startswith(f"Sorry, job #{bad.job.id} failed") and "Nothing was charged" in message
    job = await h.repo.get_job(bad.job.id)
    assert job.state == JobState.FAILED and "RuntimeError: CUDA error" in job.error
    await h.events.wait("done", good.job.id)


def warming(pipeline: FakePipeline) -> Models:
    """A worker holding `pipeline` that warms up with one step, as GPU workers do (bot.gpu.source)."""
    return Models(pipeline, warm_up=GenerationRequest(WARM_UP_PROMPT, seed=0, steps=1, frames=4, width=64, height=64))


async def test_the_worker_warms_up_before_the_first_job_which_stays_queued_meanwhile(make_service, caplog):
    caplog.set_level(logging.INFO, logger="bot.jobs.service")
    pipeline = FakePipeline()
    pipeline.hold.clear()  # the warm-up holds after its step
    h = await make_service(warming(pipeline))
    assert h.service.dispatcher.all_busy  # from the start: no job can be handed out before the warm-up is back
    submitted = await h.submit(1, PROMPTS[0])
    assert submitted.eta == NOW + timedelta(seconds=2 * 5.0)  # the warm-up counts as about one job ahead of it
    assert len(h.service.running) == 0
    assert await h.state(submitted.job.id) == JobState.QUEUED  # cancellable as a queued job, in fair order
    pipeline.hold.set()
    await h.events.wait("done", submitted.job.id)
    assert list(pipeline.steps_run) == [WARM_UP_PROMPT, PROMPTS[0]]
    await h.service.warm_up
    assert "a worker warmed up in" in caplog.text
    assert [job.prompt for job in await h.repo.list_jobs()] == [PROMPTS[0]]  # the warm-up is no job


class Hung:
    """A pipeline whose render hangs (a stuck kernel) until the test lets it go, asked to stop or not."""

    def __init__(self) -> None:
        self.entered, self.release = threading.Event(), threading.Event()

    def generate(self, request: Any, **_: Any) -> Any:
        self.entered.set()
        self.release.wait(WAIT)
        raise RuntimeError("released by the test")


async def test_a_warm_up_that_hangs_is_asked_to_stop_at_the_time_limit_then_makes_the_worker_stuck(make_service):
    pipeline, timers, stuck = Hung(), Timers(), asyncio.Queue()
    h = await make_service(warming(pipeline), sleep=timers.sleep, job_time_limit_s=60.0)
    h.service.on_stuck = stuck.put_nowait
    try:
        assert await asyncio.to_thread(pipeline.entered.wait, WAIT)  # rendering (one asked to stop before it starts
        # does not start at all)
        assert await timers.fire() == 60.0  # the time limit: asked to stop, the worker still taken
        assert h.service.stuck is None and h.service.dispatcher.all_busy
        assert await timers.fire() == 60.0  # not back after another: the bot restarts to recover the GPU
        reason = await asyncio.wait_for(stuck.get(), WAIT)
        assert reason == h.service.stuck and "its warm-up render 120 s after it started" in reason
    finally:
        pipeline.release.set()
    await h.service.warm_up


async def test_workers_without_a_warm_up_render_take_the_first_job_at_once(make_service):
    h = await make_service()  # CPU workers: nothing to warm up
    assert h.service.warm_up is None and h.service.dispatcher.units == 0


async def test_a_failed_warm_up_is_logged_and_the_worker_serves_on(make_service, caplog):
    pipeline = FakePipeline()
    pipeline.fail.add(WARM_UP_PROMPT)
    h = await make_service(warming(pipeline))
    submitted = await h.submit(1, PROMPTS[0])
    await h.events.wait("done", submitted.job.id)
    await h.service.warm_up
    assert "warm-up render failed (RuntimeError: CUDA error: device-side assert triggered); its first job pays" \
        in caplog.text


async def test_a_failed_encode_is_logged_with_its_traceback_and_a_foreseen_failure_in_one_line(make_service,
                                                                                                   caplog):
    class BrokenEncoder(Encoder):
        async def encode(self, frames: Any, max_bytes: int) -> Any:
            raise RuntimeError("libx264 exploded")

    class TooLarge(Encoder):
        async def encode(self, frames: Any, max_bytes: int) -> Any:
            raise VideoTooLargeError(30_000_000, max_bytes)

    class Unstyled(FakePipeline):
        def generate(self, request: Any, **_: Any) -> Any:
            raise StyleGone("the style clay was removed from STYLES_FILE")

    h = await make_service(encoder=BrokenEncoder())
    job = (await h.submit(1, PROMPTS[0])).job
    assert "the bot's logs have the details" in await h.events.wait("failed", job.id)
    [logged] = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert logged.levelno == logging.ERROR and str(logged.exc_info[1]) == "libx264 exploded"
    assert logged.getMessage() == f"encoding the video of job {job.id} failed"

    caplog.clear()
    h = await make_service(encoder=TooLarge())
    job = (await h.submit(1, PROMPTS[0])).job
    assert "upload limit" in await h.events.wait("failed", job.id)
    [logged] = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert logged.levelno == logging.WARNING and logged.exc_info is None  # the user is told why: foreseen

    caplog.clear()
    h = await make_service(Unstyled())
    job = (await h.submit(1, PROMPTS[0])).job
    await h.events.wait("failed", job.id)
    [logged] = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert logged.levelno == logging.WARNING and logged.exc_info is None  # foreseen: no traceback for the operator
    assert logged.getMessage() == f"job {job.id} failed: the style clay was removed from STYLES_FILE"


async def test_discord_failures_in_events_never_stop_the_service(make_service):
    h = await make_service(events=BrokenEvents())
    first = await h.submit(1, PROMPTS[0])
    await h.events.wait("done", first.job.id)
    second = await h.submit(1, PROMPTS[1])
    await h.events.wait("done", second.job.id)
    assert await h.state(first.job.id) == await h.state(second.job.id) == JobState.DONE


async def test_a_model_that_fails_to_load_for_want_of_memory_refuses_requests_and_stays_up(make_service):
    def factory(device: str) -> Any:
        raise RuntimeError("CUDA out of memory while loading the UNet")

    h = await make_service(factory=factory)
    assert not h.service.available and "CUDA out of memory" in h.service.unavailable_reason
    refused = await h.refused()
    assert refused.reason == "unavailable" and "unavailable right now" in refused.message
    assert (await h.repo.get_job(refused.job_id)).refusal_reason == "unavailable"
    assert h.service.jobs_of(1) == []


async def test_weights_no_device_could_load_stop_the_start_with_one_line(database, gate, caplog):
    damaged = WeightsError("/srv/weights/modelscope/text2video_pytorch_model.pth could not be read (RuntimeError: "
                           "PytorchStreamReader failed reading zip archive); the file is corrupt or truncated")

    def factory(device: str) -> Any:
        raise damaged

    service = VideoService(database.repo(), gate, FairQueue(3, 10), GPUExecutor(["cpu"], factory), Events())
    with pytest.raises(SettingsError) as caught:
        await asyncio.wait_for(service.start(), WAIT)
    assert caught.value.lines == [f"no device could load the model, so the bot stops rather than serve no videos: "
                                  f"{damaged}"]  # python -m bot: this line, exit status 2
    assert [(r.getMessage(), r.exc_info) for r in caplog.records if r.levelno >= logging.WARNING] == [
        (f"loading the pipeline on cpu failed: {damaged}", None)]  # no traceback
    await service.stop()


async def test_a_blocked_users_running_job_is_flagged_so_a_crash_before_its_next_step_does_not_run_it_again(
        make_service):
    h = await make_service()
    h.pipeline.hold.clear()
    h.pipeline.deaf_while_held = True  # the row is read while the job still runs, as a crash would leave it
    running = await h.submit(1, PROMPTS[0], steps=20)
    await h.events.wait("progress", running.job.id)
    assert await h.service.cancel_blocked(1, 600) == (0, 1)
    flagged = await h.repo.get_job(running.job.id)  # what a start after a crash reads: cancelled, not run again
    assert flagged.cancel_requested and flagged.state == JobState.RUNNING
    h.pipeline.hold.set()
    assert (await h.events.wait("cancelled by a block", running.job.id)).state == JobState.CANCELLED


async def test_queued_jobs_survive_a_restart_and_the_interrupted_one_runs_again(make_service):
    first = await make_service(shutdown_grace_s=0)  # no time to finish: the held job stops at its next step
    first.pipeline.hold.clear()
    running = await first.submit(1, PROMPTS[0])
    await first.events.wait("progress", running.job.id)
    queued = await first.submit(2, PROMPTS[1])
    await first.service.stop()
    assert await first.state(running.job.id) == await first.state(queued.job.id) == JobState.QUEUED
    assert first.events.of(running.job.id) == ["started", "progress"]  # no cancel message for a shutdown

    second = await make_service()
    for job_id in (running.job.id, queued.job.id):
        await second.events.wait("done", job_id)
    assert (await second.repo.get_job(running.job.id)).attempts == 2


async def test_a_job_left_running_by_a_crash_is_retried_once_then_failed(make_service, database):
    repo = database.repo(clock=lambda: NOW)
    fields = {"user_id": 1, "user_name": "user1", "channel_id": 500, "params": spec().params(), "seed": 7}
    once = await repo.create_job(prompt=PROMPTS[0], **fields)
    await repo.mark_running(once.id)
    twice = await repo.create_job(prompt=PROMPTS[1], **fields)
    await repo.mark_running(twice.id)
    await repo.requeue(twice.id)
    await repo.mark_running(twice.id)

    h = await make_service()
    assert (await h.events.wait("done", once.id)).job.attempts == 2
    assert (await h.events.wait("failed", twice.id)).startswith(f"Sorry, job #{twice.id} was interrupted twice")
    job = await h.repo.get_job(twice.id)
    assert (job.state, job.error) == (JobState.FAILED, "interrupted twice")


async def test_a_queued_job_whose_cancel_was_asked_before_a_crash_is_cancelled_at_the_start_not_run(make_service,
                                                                                                     database):
    """Cancelled as the worker took it, then the process died before the cancel was written: the row is queued with
    its cancel asked (bot.jobs.units undoes the start); the next start cancels it, uncharged, and runs the rest."""
    repo = database.repo(clock=lambda: NOW)
    fields = {"user_id": 1, "user_name": "user1", "channel_id": 500, "params": spec().params(), "seed": 7}
    asked = await repo.create_job(prompt=PROMPTS[0], **fields)
    await repo.request_cancel(asked.id)
    other = await repo.create_job(prompt=PROMPTS[1], **fields)

    h = await make_service()
    cancelled = await h.events.wait("cancelled", asked.id)
    await h.events.wait("done", other.id)

    assert (cancelled.state, cancelled.started_at) == (JobState.CANCELLED, None)
    assert h.pipeline.steps_run == {PROMPTS[1]: 3}


async def test_a_queued_job_above_caps_lowered_since_fails_at_its_turn_with_the_cap_and_is_not_rendered(
        make_service, database, caplog):
    """An operator lowers MAX_FRAMES after an out of memory and restarts: the 32-frame job queued before does not
    render (it would run out of memory again); its user hears why, and the job within the caps renders."""
    repo = database.repo(clock=lambda: NOW)
    fields = {"user_id": 1, "user_name": "user1", "channel_id": 500, "seed": 7}
    big = await repo.create_job(prompt=PROMPTS[0], params=spec(frames=32).params(), **fields)
    small = await repo.create_job(prompt=PROMPTS[1], params=spec(frames=8).params(), **fields)

    h = await make_service(max_frames=16)
    message = await h.events.wait("failed", big.id)
    await h.events.wait("done", small.id)

    assert message == (f"Sorry, job #{big.id} failed (invalid settings: 32 frames are above this bot's limit of 16; "
                       "run /video again with `frames` at most 16). Nothing was charged.")
    assert h.pipeline.steps_run == {PROMPTS[1]: 3}  # the big one never reached the GPU
    job = await h.repo.get_job(big.id)
    assert (job.state, job.started_at is not None) == (JobState.FAILED, True)
    failures = [r for r in caplog.records if r.name.startswith("bot.jobs") and r.levelno >= logging.WARNING]
    assert [(r.levelname, r.getMessage()) for r in failures] == [
        ("WARNING", f"job {big.id} was queued before a restart with lower caps: 32 frames are above this bot's limit "
                    "of 16; it fails when its turn comes"),
        ("WARNING", f"job {big.id} failed: 32 frames are above this bot's limit of 16; run /video again with `frames` "
                    "at most 16")]  # foreseen: no traceback


async def test_the_tiny_random_model_renders_a_playable_mp4_end_to_end(make_service, monkeypatch):
    monkeypatch.setitem(ASPECTS, "tiny", (64, 64))  # the tiny model's native size keeps the test fast
    h = await make_service(load_pipeline(TINY_RANDOM))
    submitted = await h.service.submit(requester(), spec(steps=2, frames=2, aspect="tiny", seed=3))
    delivered = await h.events.wait("done", submitted.job.id)
    with av.open(io.BytesIO(delivered.video)) as container:
        frames = [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]
    assert len(frames) == 2 and frames[0].shape == (64, 64, 3)
    assert any("noise" in note for note in delivered.notes)
    assert delivered.seed == 3 and delivered.gpu_s > 0
    assert h.events.of(submitted.job.id) == ["started", "progress", "done"]


def test_build_executor_gives_one_worker_per_configured_device():
    settings = load_settings({"DISCORD_TOKEN": "a.token-of.a-bot", "T2V_MODEL": "tiny-random", "T2V_ALLOW_TINY": "1",
                              "T2V_DEVICE": "cpu,cuda:1"}, env_file=None)
    assert build_executor(settings).devices == ["cpu", "cuda:1"]


class SlowFirstProgress(Events):
    """Events whose first progress call hangs until the test releases it, like a slow Discord edit."""

    def __init__(self) -> None:
        super().__init__()
        self.release = asyncio.Event()
        self.steps: list[tuple[int, int]] = []

    async def job_progress(self, job: JobRecord, step: int, total: int) -> None:
        if step == 1:
            await self.release.wait()
        self.steps.append((step, total))
        await super().job_progress(job, step, total)


class FinishingPipeline(FakePipeline):
    """A FakePipeline that signals when a generation has run all its steps."""

    def __init__(self) -> None:
        super().__init__()
        self.finished = threading.Event()

    def generate(self, request: Any, on_step=None, should_cancel=None,
                 on_preview=None) -> Any:
        result = super().generate(request, on_step, should_cancel)
        self.finished.set()
        return result


async def test_the_last_step_is_always_reported_even_behind_a_slow_edit(make_service):
    events, pipeline = SlowFirstProgress(), FinishingPipeline()
    h = await make_service(pipeline, events=events)
    submitted = await h.submit(steps=6)
    assert await asyncio.to_thread(pipeline.finished.wait, WAIT)
    events.release.set()
    await events.wait("done", submitted.job.id)
    assert events.steps == [(1, 6), (6, 6)]  # steps 2-5 were skipped behind the slow edit; the last one was not


@pytest.mark.parametrize("outcome", ["done", "failed"])
async def test_when_the_database_cannot_record_a_jobs_end_the_user_still_gets_the_video_or_the_news(
        make_service, monkeypatch, logged_errors, outcome):
    from sqlalchemy.exc import OperationalError

    h = await make_service()
    logged_errors.expect("the database did not record it as")

    async def disk_full(*args: Any, **kwargs: Any) -> JobRecord:
        raise OperationalError("UPDATE jobs", {}, Exception("database or disk is full"))

    monkeypatch.setattr(h.repo, "mark_done" if outcome == "done" else "mark_failed", disk_full)
    if outcome == "failed":
        logged_errors.expect("job 1 failed")  # the render's own error, as always
        h.pipeline.fail.add(PROMPTS[0])
    job = (await h.submit()).job
    told = await h.events.wait(outcome, job.id)

    assert told.video[4:8] == b"ftyp" if outcome == "done" else told.startswith(f"Sorry, job #{job.id} failed")
    assert (await h.repo.get_job(job.id)).state == JobState.RUNNING  # the next start may run it again
    assert h.service.running.get(job.id) is None
    assert any(f"job {job.id}: the database did not record it as {outcome}" in record.getMessage()
               for record in logged_errors.records)


async def test_a_render_that_overflowed_tells_its_user_why_in_one_warning(make_service, monkeypatch, caplog,
                                                                           logged_errors):
    from t2v.errors import NonFiniteOutput

    h = await make_service()

    def overflowing(request: Any, **callbacks: Any) -> Any:
        raise NonFiniteOutput("latents")

    monkeypatch.setattr(h.pipeline, "generate", overflowing)
    job = (await h.submit()).job
    told = await h.events.wait("failed", job.id)

    assert told == (f"Sorry, job #{job.id} failed (the model's numbers overflowed into an unusable video; another "
                    "seed or a weaker style may work). Nothing was charged.")
    assert [r.levelname for r in caplog.records if f"job {job.id} failed" in r.getMessage()] == ["WARNING"]
    assert logged_errors.records == []


async def test_a_shutdown_that_cuts_a_finished_jobs_post_short_says_so_and_not_that_it_runs_again(
        make_service, monkeypatch, caplog):
    import bot.jobs.service

    class PostingForever(Events):
        async def job_done(self, delivered: Any) -> None:
            self.record("done", delivered.job.id, delivered)
            await asyncio.Event().wait()  # Discord never answers the upload

    monkeypatch.setattr(bot.jobs.service, "CHECKPOINT_S", 0.01)  # the grace's last part, which the post outlasts
    events = PostingForever()
    h = await make_service(events=events, shutdown_grace_s=0)
    job = (await h.submit()).job
    await events.wait("done", job.id)
    await asyncio.wait_for(h.service.stop(), WAIT)

    assert f"video-job-{job.id} was still posting its outcome when the grace ran out" in caplog.text
    assert "will be retried after restart" not in caplog.text
    assert (await h.repo.get_job(job.id)).state == JobState.DONE
