"""docs/voice.md's rules: the checks themselves, and every command and option in the picker described in words.

Every word the bot sends in an end-to-end test is walked through the same rules when the test ends (the `stacks`
fixture, tests/bot/conftest.py)."""

from __future__ import annotations

import pytest

from tests.bot.conftest import Stacks
from tests.bot.helpers import InstantPipeline
from tests.bot.voice import command_descriptions, option_problems, problems

pytestmark = pytest.mark.usefixtures("logged_errors")


@pytest.mark.parametrize(("text", "expected"), [
    ("Refusals: not_english 2", ["identifier 'not_english'"]),
    ("SHOWCASE_CHANNEL_ID is not set.", ["setting name 'SHOWCASE_CHANNEL_ID'"]),
    ("The model failed to load (RuntimeError: CUDA out of memory).", ["exception text 'RuntimeError'"]),
    ("Personal quota set: 1 videos per day.", ["plural after 1: '1 videos'"]),
    ("2 video left.", ["singular after 2: '2 video'"]),
    ("Job #10 cancelled: 12 frames, 1 step, a 16-frame clip.", []),
    ("Seed `not_english` and **bold** are quoted; <@123> too.", []),
    ("0.5 frames and 1.5 video are not counts.", []),
    ("steps=21 is above this bot's limit of 20.", ["not sentence case: 'steps=21'"]),
    ("style= is blank: name a style.", ["not sentence case: 'style='"]),  # no refusal is let through by name
    ("role=@everyone is every member of the server.", ["not sentence case: 'role=@everyone'"]),
    ("-# **the** prompt was refused.", ["not sentence case: 'the'"]),
    ("Steps must be at most 20 on this bot; you asked for 21.", []),
    ("🗑️ Deleted job #3.", []), ("#2 in line.", []), ("/video was already allowed in <#1>.", []),
    ("“a cat” is not in English.", []), ("`ddim` is the sampler.", []),  # the user's or the picker's word
    ("claymation — Clay figures, stop-motion look", []), ("queued · job #7", []),  # no sentence: a choice, a status
])
def test_the_rules_find_what_they_name(text: str, expected: list[str]):
    assert problems(text) == expected


def test_an_operator_may_read_setting_names():
    assert problems("-# ALLOWED_GUILD_IDS: not set.", operator=True) == []


@pytest.mark.parametrize(("description", "expected"), [
    ("…", ["no description"]), ("", ["no description"]), ("whose quota", ["not sentence case: 'whose'"]),
    ("Whose quota", []),
])
def test_an_option_needs_a_description_in_sentence_case(description: str, expected: list[str]):
    assert option_problems(description) == expected


async def test_every_command_option_and_choice_in_the_picker_reads_as_words(stacks: Stacks):
    async with stacks.run(lambda device: InstantPipeline()) as stack:
        fake = stack.fake
        definitions = [*fake.commands, *fake.guild_commands.get(fake.guild.id, [])]
        described = dict(command_descriptions(definitions))
    assert {"/video", "/video prompt", "/videomod quota set limit"} <= described.keys()
    broken = {path: found for path, text in described.items() if (found := option_problems(text))}
    assert broken == {}, "\n".join(f"{path}: {found}" for path, found in broken.items())
