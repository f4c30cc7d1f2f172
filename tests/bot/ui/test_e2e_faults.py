"""Faults a user of the bot survives, end to end: CUDA out of memory, Discord 429s and 413s, gateway reconnects.

The real discord.py client against the fake Discord; nothing sleeps: the tests wait on events and requests.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import pytest
import torch

from storage import JobState
from t2v import GenerationRequest, GenerationResult, encode_mp4
from tests.bot.conftest import Stacks, tiny_pipeline
from tests.bot.helpers import ScriptedPipeline, decoded_frames, has_video, video
from tests.fakediscord import FakeDiscord, FakeMessage

pytestmark = pytest.mark.usefixtures("logged_errors")

PROMPT = "a kite flying over a windy beach"
OOM = "CUDA out of memory. Tried to allocate 2.00 GiB (GPU 0; 79.11 GiB total capacity)"


def out_of_memory_when_decoding_more_than(fits: int) -> Any:
    """The tiny model, whose VAE decode runs out of GPU memory (torch's own error) above `fits` frames a chunk."""
    pipeline = copy.copy(tiny_pipeline())  # its own vae_chunk; the modules are shared
    pipeline.fits, pipeline.decodes = fits, []
    decode = pipeline.decode

    def decode_or_run_out(latents: torch.Tensor) -> torch.Tensor:
        pipeline.decodes.append(pipeline.vae_chunk)
        if pipeline.vae_chunk > pipeline.fits:
            raise torch.cuda.OutOfMemoryError(OOM)
        return decode(latents)

    pipeline.decode = decode_or_run_out
    return pipeline


def failure(message: FakeMessage) -> bool:
    return message.content.startswith("Sorry")


async def test_out_of_memory_is_retried_once_with_half_the_vae_chunk_and_the_video_lands(stacks: Stacks):
    pipeline = out_of_memory_when_decoding_more_than(4)
    pipeline.vae_chunk = 8
    async with stacks.run(lambda device: pipeline) as stack:
        result = await (await video(stack.fake, PROMPT, frames=2)).wait_followup(has_video)
        job = await stack.job(1)

    assert pipeline.decodes == [8, 4] and pipeline.vae_chunk == 4  # later jobs decode in the smaller chunks too
    assert len(decoded_frames(result.attachments[0].data)) == 2
    assert (job.state, job.attempts) == (JobState.DONE, 1)


async def test_a_second_out_of_memory_fails_the_job_with_a_clear_message_and_the_worker_keeps_serving(
    stacks: Stacks, logged_errors
):
    logged_errors.expect("job 1 failed")
    pipeline = out_of_memory_when_decoding_more_than(0)
    pipeline.vae_chunk = 8
    async with stacks.run(lambda device: pipeline) as stack:
        fake = stack.fake
        answer = await (await video(fake, PROMPT)).wait_original(failure)
        pipeline.fits = 8  # memory freed up: the same worker serves the next request
        result = await (await video(fake, "a kite landing on the sand")).wait_followup(has_video)
        first, second = await stack.jobs()

    assert answer.content == "Sorry, job #1 failed (the GPU ran out of memory). Nothing was charged."
    assert pipeline.decodes == [8, 4, 4] and result.attachments
    assert (first.state, second.state) == (JobState.FAILED, JobState.DONE)
    assert first.error.startswith("OutOfGPUMemory: CUDA out of memory")


# --- Discord faults -----------------------------------------------------------------------------------------------


def retried_after(fake: FakeDiscord, pattern: str, retry_after: float) -> bool:
    """The first matching request got a 429, and the next one came no sooner than Retry-After and succeeded."""
    first, second = fake.requests_to(pattern)[:2]
    return (first.status, second.status) == (429, 200) and second.time - first.time >= retry_after


async def test_rate_limited_edits_and_uploads_are_retried_after_retry_after_and_the_video_lands(stacks: Stacks,
                                                                                               scripted):
    gate = scripted.gate(PROMPT)
    async with stacks.run(lambda device: scripted) as stack:
        fake = stack.fake
        fake.rate_limit_next("PATCH /webhooks/*/messages/@original", retry_after=0.05)  # the queue-place edit
        handle = await video(fake, PROMPT)
        await handle.wait_original(lambda m: m.content.startswith("Starting"))
        fake.expire_token(handle)  # the result now goes up as a channel message: the upload route
        fake.rate_limit_next(f"POST /channels/{fake.channel.id}/messages", retry_after=0.05)
        gate.release(100)
        posted = await fake.wait_for_message(lambda m: m.kind == "channel" and has_video(m))

    assert retried_after(fake, "PATCH /webhooks/*/messages/@original", 0.05)
    assert retried_after(fake, f"POST /channels/{fake.channel.id}/messages", 0.05)
    assert handle.original.content.startswith("Finished · job #1")
    assert posted.content.startswith(f"<@{handle.record.user.id}> here is your video · job #1")


def noise(request: GenerationRequest) -> np.ndarray:
    """Frames that compress badly, so halving the MP4's size takes a real re-encode."""
    return np.random.default_rng(request.seed).integers(0, 256, (request.frames, 64, 64, 3), np.uint8)


class NoisePipeline(ScriptedPipeline):
    def generate(self, request: Any, latents: Any = None, on_step: Any = None, should_cancel: Any = None,
                 on_preview: Any = None) -> Any:
        super().generate(request, latents, on_step, should_cancel, on_preview)
        return GenerationResult(noise(request), request.seed, {"total_s": 0.01})


@pytest.mark.parametrize("route", ["interaction", "channel"])
async def test_a_video_discord_refuses_as_too_large_is_reencoded_at_half_the_size_and_posted(stacks: Stacks,
                                                                                             route: str):
    pipeline = NoisePipeline()
    full = len(encode_mp4(noise(GenerationRequest(PROMPT, seed=5, frames=4, width=64, height=64)), 8))
    gate = pipeline.gate(PROMPT)
    async with stacks.run(lambda device: pipeline) as stack:
        fake = stack.fake
        handle = await video(fake, PROMPT, seed=5, frames=4)
        await handle.wait_original(lambda m: m.content.startswith("Starting"))
        if route == "interaction":  # Discord takes less than the interaction's attachment_size_limit said
            handle.record.attachment_size_limit = full * 3 // 4
        else:
            fake.expire_token(handle)
            fake.max_attachment_size = full * 3 // 4
        gate.release(100)
        posted = await fake.wait_for_message(has_video)

    uploads = [(r.status, f.size) for r in fake.requests for f in r.files if f.filename.endswith(".mp4")]
    [(refused, too_large), (accepted, smaller)] = uploads
    assert (refused, accepted) == (413, 200) and smaller <= too_large // 2  # one retry, at most half the size
    assert len(decoded_frames(posted.attachments[0].data)) == 4 and "here is your video" in posted.content


@pytest.mark.parametrize("fault", ["reconnect", "invalidate_session", "disconnect"])
async def test_video_works_after_a_gateway_reconnect_or_invalid_session(stacks: Stacks, scripted, fault: str):
    async with stacks.run(lambda device: scripted) as stack:
        fake = stack.fake

        async def identify_at_once(shard_id: int | None, *, initial: bool = False) -> None:
            """discord.py waits 5 s before a re-IDENTIFY, out of courtesy to the real Discord."""

        stack.bot.before_identify_hook = identify_at_once
        before = await (await video(fake, PROMPT)).wait_followup(has_video)
        sessions = fake.gateway.connections  # the session, and the start's probe of the gateway (a handshake only)
        await getattr(fake, fault)()
        await fake.wait_for(lambda: fake.gateway.connections == sessions + 1 and fake.gateway.connected,
                            what="a new session")
        after = await (await video(fake, "a kite caught in a tree")).wait_followup(has_video)
        jobs = await stack.jobs()

    assert before.attachments and after.attachments
    assert [job.state for job in jobs] == [JobState.DONE, JobState.DONE]
    assert (fake.gateway.identifies, fake.gateway.resumes) == ((2, 0) if fault == "invalidate_session" else (1, 1))


