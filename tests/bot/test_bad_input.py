"""Bad input at scale (hypothesis): any prompt and any options get a clear answer, never a crash, and a refused
request never becomes a job. The bulk runs at the service (real PolicyGate, real queue, SQLite, a pipeline that
answers at once); a few examples go through the fake Discord, where every answer arrives and nothing can ping."""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.errors import Refused
from bot.gpu.models import ASPECTS
from bot.jobs.service import VideoService
from bot.jobs.spec import NAMED, JobSpec, Requester
from bot.moderation.denylist_edits import load_gates
from storage import JobState, Repository
from t2v import InvalidRequest
from tests.bot.conftest import Stack, Stacks
from tests.bot.helpers import WAIT, Events, InstantPipeline, has_video
from tests.fakediscord import FakeDiscord, FakeMessage

OPTION_NAMES = ("steps", "guidance", "frames", "seed", "aspect", "prompt", "negative_prompt")
WORDS = ["a", "the", "red", "fox", "runs", "through", "snow", "at", "dawn", "with", "an", "old", "boat", "on", "calm",
         "water", "city", "street", "in", "rain", "night", "panda", "eats", "bamboo", "slowly", "near", "river",
         "nude", "naked", "porn", "topless"]  # denylisted: with look-alike letters swapped in, too
MARKUP = ["<@123456789012345678>", "<@!123456789012345678>", "<@&987654321098765432>", "@everyone", "@here",
          "<#111111111111111111>", "**bold**", "__under__", "`code`", "```py\nprint(1)\n```", "||spoiler||", "> quote",
          "# heading", "[link](https://example.com)", "\u202e", "\u200b", "\x00", "\x1b[31m", "\r\n", "\t", "<t:0:R>"]
LOOKALIKES = {"a": "а", "c": "с", "e": "е", "i": "і", "o": "о", "p": "р", "x": "х", "y": "у", "s": "ѕ"}  # Cyrillic
# Discord carries text as JSON, which cannot hold lone surrogates; every other code point may arrive.
CHARS = st.characters(exclude_categories=("Cs",))
ENGLISH = st.lists(st.sampled_from(WORDS), min_size=3, max_size=14).map(" ".join)
MIXED = st.lists(st.one_of(st.sampled_from(WORDS), st.sampled_from(MARKUP), st.text(CHARS, max_size=6)),
                 min_size=1, max_size=20).map(" ".join)
HOMOGLYPHS = ENGLISH.flatmap(lambda text: st.lists(st.booleans(), min_size=len(text), max_size=len(text)).map(
    lambda swaps: "".join(LOOKALIKES.get(c, c) if swap else c for c, swap in zip(text, swaps, strict=True))))
HUGE = st.text(CHARS, min_size=1, max_size=30).map(lambda unit: (unit * (10_240 // len(unit) + 1))[:10_240])
PROMPTS = st.one_of(st.text(CHARS, max_size=600), ENGLISH, MIXED, HOMOGLYPHS, HUGE)
NUMBERS = st.one_of(st.integers(-3, 200), st.integers(), st.floats(allow_nan=True, allow_infinity=True),
                    st.booleans(), st.none(), st.text(max_size=4))
WILD_OPTIONS = st.fixed_dictionaries({}, optional={
    "steps": NUMBERS, "guidance": NUMBERS, "frames": NUMBERS, "seed": NUMBERS,
    "aspect": st.one_of(st.sampled_from(list(ASPECTS)), st.text(CHARS, max_size=8)),
})
FAIR_OPTIONS = st.fixed_dictionaries({}, optional={  # within the engine's limits (the server caps may still refuse)
    "steps": st.integers(1, 150), "guidance": st.floats(1.0, 30.0), "frames": st.integers(1, 64),
    "seed": st.integers(0, 2**32 - 1), "aspect": st.sampled_from(list(ASPECTS)),
})
OPTIONS = st.one_of(st.just({}), FAIR_OPTIONS, WILD_OPTIONS)  # most examples reach the prompt checks
SERVICE_EXAMPLES = settings(max_examples=200, deadline=None,
                            suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


@dataclass
class World:
    service: VideoService
    repo: Repository
    pipeline: InstantPipeline
    events: Events
    users: int = 0
    accepted: list[str] = field(default_factory=list)
    answers: Counter[str] = field(default_factory=Counter)

    def requester(self) -> Requester:
        """A new user each time, so that per-user caps never decide an example."""
        self.users += 1
        return Requester(self.users, f"user{self.users}", channel_id=500, guild_id=600, interaction_token="t",
                         application_id=700)


@pytest.fixture
async def world(make_service: Any, database: Any) -> AsyncIterator[World]:
    """A started service on a temporary database with the real prompt gate and the shipped denylist."""
    repo = database.repo()
    gate = await load_gates(repo, database.moderation())
    h = await make_service(InstantPipeline(), repo=repo, gate=gate, per_user_cap=100, global_cap=10_000, max_steps=100,
                           max_frames=32)
    world = World(h.service, repo, h.pipeline, h.events)
    yield world
    print(f"\n[bad input] service answers: {dict(sorted(world.answers.items()))}")


def spec_or_error(prompt: str, negative: str, chosen: dict[str, Any]) -> JobSpec | InvalidRequest:
    """The request as /video builds it, or the error that names the bad value."""
    try:
        return JobSpec.video(prompt, negative_prompt=negative, **chosen)
    except InvalidRequest as error:
        return error


@SERVICE_EXAMPLES
@given(prompt=PROMPTS, negative=st.one_of(st.just(""), PROMPTS), chosen=OPTIONS)
async def test_any_request_is_queued_or_refused_with_a_reason_and_a_refused_one_never_runs(
    world: World, prompt: str, negative: str, chosen: dict[str, Any]
):
    asked = spec_or_error(prompt, negative, chosen)
    if isinstance(asked, InvalidRequest):
        world.answers["invalid option"] += 1
        said = str(asked)
        names = any(said.startswith(f"{NAMED[name][0].upper()}{NAMED[name][1:]} ") for name in OPTION_NAMES)
        assert names and said.endswith("."), said  # one sentence naming the bad option in words
        return
    try:
        submitted = await world.service.submit(world.requester(), asked)
    except Refused as refusal:
        world.answers[f"refused:{refusal.reason}"] += 1
        row = await world.repo.get_job(refusal.job_id)
        assert refusal.message.strip() and row is not None and row.prompt == prompt.replace("\x00", "")
        assert row.state == JobState.REFUSED and (row.refusal_reason or "").startswith(refusal.reason)
    else:
        world.answers["accepted"] += 1
        world.accepted.append(prompt)
        assert submitted.job.state == JobState.QUEUED and submitted.job.prompt == prompt
        await world.events.wait("ended", submitted.job.id)
    assert world.pipeline.prompts == world.accepted  # only accepted requests ever reached the GPU
    rows = await world.repo.list_jobs([JobState.QUEUED, JobState.RUNNING, JobState.DONE, JobState.FAILED])
    assert [row.prompt for row in rows] == world.accepted


# --- through the fake Discord -------------------------------------------------------------------------------------

DISCORD_PROMPTS = st.one_of(st.text(CHARS, min_size=1, max_size=500), ENGLISH, MIXED, HOMOGLYPHS).filter(
    lambda text: 1 <= len(text) <= 500)  # what Discord's client lets through (/video's prompt is 1–500 characters)
DISCORD_OPTIONS = st.fixed_dictionaries({}, optional={
    "steps": st.integers(1, 100), "frames": st.integers(1, 32), "guidance": st.floats(1.0, 30.0),
    "seed": st.integers(0, 2**53 - 1), "negative": st.text(CHARS, max_size=300), "private": st.booleans(),
})
NOT_FINAL = ("Queued", "Starting", "Rendering", "Encoding", "Uploading")


def final(message: FakeMessage) -> bool:
    """The answer the user is left with: the video, or a refusal."""
    return has_video(message) or (not message.loading and bool(message.content)
                                  and not message.content.startswith(NOT_FINAL))


def never_pings_everyone_or_roles(fake: FakeDiscord) -> None:
    """Every message body the bot sent that has text carries allowed_mentions without everyone or roles."""
    for request in fake.requests:
        body = request.json if isinstance(request.json, dict) else {}
        if request.method in ("POST", "PATCH") and (body.get("content") or (body.get("data") or {}).get("content")):
            mentions = body.get("allowed_mentions", (body.get("data") or {}).get("allowed_mentions"))
            assert mentions is not None, f"{request.summary()} has no allowed_mentions"
            assert not {"everyone", "roles"} & set(mentions.get("parse", [])) and not mentions.get("roles")


@pytest.fixture
async def stack(stacks: Stacks) -> AsyncIterator[Stack]:
    async with stacks.run(lambda device: InstantPipeline(), quota_default=10_000) as stack:
        yield stack


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                 HealthCheck.too_slow])
@given(prompt=DISCORD_PROMPTS, chosen=DISCORD_OPTIONS)
async def test_every_slash_answer_arrives_and_no_answer_can_ping_everyone_or_a_role(
    stack: Stack, prompt: str, chosen: dict[str, Any]
):
    fake = stack.fake
    handle = await fake.slash("video", {"prompt": prompt, "aspect": "tiny", **chosen}, user=fake.make_user())
    answer = await handle.wait_answer(final, timeout=WAIT)
    if answer.content.startswith("Finished"):  # the status points at the video, a followup
        answer = await handle.wait_followup(has_video, timeout=WAIT)

    assert has_video(answer) or answer.ephemeral  # a refusal is private
    never_pings_everyone_or_roles(fake)
    assert "@everyone" not in answer.content and "@here" not in answer.content and "<@&" not in answer.content
