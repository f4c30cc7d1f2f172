"""A job kept from before a restart whose settings t2v no longer takes fails at its turn, its reason in words."""

from __future__ import annotations

from types import SimpleNamespace

from bot.errors import failure_reason
from bot.jobs.spec import Queued
from storage import JobState
from tests.bot import voice
from tests.bot.helpers import NOW, PROMPTS, spec


async def test_a_stored_job_t2v_no_longer_takes_fails_with_its_setting_named_in_words(make_service, database):
    """It read "(invalid settings: steps=500 is outside the allowed range 1–150)", t2v's words for a caller."""
    repo = database.repo(clock=lambda: NOW)
    fields = {"user_id": 1, "user_name": "user1", "channel_id": 500, "seed": 7}
    bad = await repo.create_job(prompt=PROMPTS[0], params={**spec().params(), "steps": 500}, **fields)
    good = await repo.create_job(prompt=PROMPTS[1], params=spec().params(), **fields)

    h = await make_service()
    message = await h.events.wait("failed", bad.id)
    await h.events.wait("done", good.id)

    assert message == (f"Sorry, job #{bad.id} failed (invalid settings: steps must be 1–150, not 500). Nothing was "
                       "charged.")
    assert voice.problems(message) == []
    assert list(h.pipeline.steps_run) == [PROMPTS[1]]  # the bad one never reached the GPU
    assert (await h.repo.get_job(bad.id)).state == JobState.FAILED


def test_a_stored_prompt_that_is_no_text_is_a_reason_in_words():
    stored = Queued.of_job(SimpleNamespace(id=3, prompt="a fox \udc80", negative_prompt="", params=spec().params()))
    assert failure_reason(stored.invalid) == ("invalid settings: the prompt holds U+DC80, which is no character (half "
                                              "of a pair)")
