"""What a member reads of an error an interaction raised (bot.ui.replies.user_message)."""

from __future__ import annotations

import pytest
from discord import app_commands

from bot.jobs.spec import JobSpec
from bot.ui.replies import user_message
from t2v import InvalidRequest
from tests.bot import voice


def invoked(error: Exception) -> app_commands.CommandInvokeError:
    """`error` as discord.py hands it to the error handler, raised inside a command."""
    command = app_commands.Command(name="video", description="Make a video.", callback=_callback)
    return app_commands.CommandInvokeError(command, error)


async def _callback(interaction) -> None:  # pragma: no cover - never invoked
    pass


@pytest.mark.parametrize("wrap", [False, True], ids=["raised", "inside a command"])
def test_a_bad_value_is_said_as_the_request_words_it_one_sentence_of_the_voice(wrap):
    """It read "That option is not allowed: aspect='tiny' is not one of 1:1, 16:9", no full stop, t2v's typed form."""
    with pytest.raises(InvalidRequest) as refused:
        JobSpec.video("a heron", steps=0)
    said = user_message(invoked(refused.value) if wrap else refused.value)
    assert said == "Steps must be 1–150; you asked for 0." and voice.problems(said) == []
