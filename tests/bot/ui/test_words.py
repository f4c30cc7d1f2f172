"""What members and moderators read is words, not identifiers: counts agree with their nouns, refusal reasons are
named in plain words."""

from typing import get_args

import pytest

from bot.characters import counted
from bot.errors import RefusalReason
from bot.ui.cogs.moderation_text import refusal_words


@pytest.mark.parametrize(("count", "expected"), [(0, "0 videos"), (1, "1 video"), (2, "2 videos")])
def test_a_count_agrees_with_its_noun(count: int, expected: str):
    assert counted(count, "video") == expected


@pytest.mark.parametrize("reason", get_args(RefusalReason))
def test_every_refusal_reason_reads_as_words(reason: str):
    words = refusal_words(reason)
    assert "_" not in words and ":" not in words and words != reason.replace("_", " ")


def test_a_reason_s_detail_reads_in_brackets():
    assert refusal_words("denylist:violence") == "content policy (violence)"
    assert refusal_words("invalid:steps") == "invalid option (steps)"
    assert refusal_words("not_english") == "not English"
