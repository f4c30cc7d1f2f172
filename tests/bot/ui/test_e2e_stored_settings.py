"""A button pressed on a video whose settings t2v no longer takes (its limits narrowed by a newer version since the
video was made) is answered privately in one sentence naming the setting in words, and starts nothing."""

from __future__ import annotations

import pytest

from t2v.request import LIMITS
from tests.bot.conftest import Stacks
from tests.bot.helpers import has_video, video

pytestmark = pytest.mark.usefixtures("logged_errors")


async def test_a_reroll_of_a_video_whose_steps_t2v_no_longer_takes_names_them_in_a_sentence(
        stacks: Stacks, monkeypatch: pytest.MonkeyPatch):
    """It read "That option is not allowed: steps=3 is outside the allowed range 1–2", no full stop, t2v's typed
    form."""
    async with stacks.run() as stack:
        fake = stack.fake
        bob = fake.make_user(name="bob")
        first = await (await video(fake, "a hot air balloon over green hills", user=bob, steps=3)).wait_followup(
            has_video)
        monkeypatch.setitem(LIMITS, "steps", (1, 2))
        refused = await (await fake.click(first, "video:reroll:1", user=bob)).wait_answer()
        jobs = await stack.jobs()

    assert refused.ephemeral and refused.content == "Steps must be 1–2; you asked for 3."
    assert len(jobs) == 1  # nothing was started
