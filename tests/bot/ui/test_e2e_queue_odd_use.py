"""/cancel, /quota and /videostyle used as strangers on a busy server use them: a cancel while Discord holds up the
job's status edit.

The real discord.py client against the fake Discord; nothing sleeps: the tests wait on events and requests.
"""

from __future__ import annotations

import pytest

from storage import JobState
from tests.bot.conftest import Stacks
from tests.bot.helpers import has_video, video

pytestmark = pytest.mark.usefixtures("logged_errors")

RUNNING = "a lighthouse beam sweeping over fog"
WAITING = "a paper crane unfolding on a desk"


@pytest.mark.parametrize("how", ["slash", "button"])
async def test_a_cancel_is_acknowledged_at_once_while_discord_holds_up_the_jobs_status_edit(stacks: Stacks, scripted,
                                                                                               how: str):
    """Cancelling edits the job's status ("✖ Cancelled"); on a busy server Discord may take its time with that edit.
    The /cancel (or ✖ Cancel) itself is acknowledged at once all the same: Discord fails an interaction not answered
    within 3 s ("The application did not respond") though the job was cancelled."""
    gate = scripted.gate(RUNNING)
    async with stacks.run(lambda device: scripted) as stack:
        fake = stack.fake
        first = await video(fake, RUNNING)
        await first.wait_original(lambda m: m.content.startswith("Starting"))
        waiting = await video(fake, WAITING)
        status = await waiting.wait_original(lambda m: m.content.startswith("Queued #1"))
        release = fake.hold_next(f"PATCH /webhooks/*/{waiting.token}/messages/@original")
        cancel = (await fake.slash("cancel", {"job": 2}) if how == "slash"
                  else await fake.click(status, "video:cancel:2"))
        try:
            acknowledged = await cancel.wait_callback()
        finally:
            release.set()
        answer = await cancel.wait_answer()
        await waiting.wait_original(lambda m: m.content == "✖ Cancelled job #2.")
        gate.release(100)
        await first.wait_followup(has_video)
        job = await stack.job(2)

    assert acknowledged["type"] == 5 and answer.ephemeral  # "thinking", privately, before the status edit went through
    assert answer.content == "✖ Cancelled job #2." and job.state == JobState.CANCELLED
