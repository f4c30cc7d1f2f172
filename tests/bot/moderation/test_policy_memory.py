"""What the gate remembers of the prompts it read costs little: a server's gate reads every word of its members'
prompts for months, and most of those words read as no listed term."""

import random
import string
import sys
from typing import Any

from bot.moderation.policy import DenylistEntry, PolicyGate


def _words(count: int) -> list[str]:
    """Distinct made-up words, each beginning with "q" (as no term of the test's list does)."""
    letters = random.Random(7)
    return [f"q{''.join(letters.choice(string.ascii_lowercase) for _ in range(8))}{i}" for i in range(count)]


def _bytes(memories: list[dict[Any, Any]]) -> int:
    """The bytes the memories hold: each dict, each key (a tuple's items too) and each distinct reading once."""
    seen: dict[int, Any] = {}
    for memory in memories:
        seen[id(memory)] = memory
        for key, reading in memory.items():
            for part in (key, *(key if isinstance(key, tuple) else ())):
                seen.setdefault(id(part), part)
            seen.setdefault(id(reading), reading)
    return sum(map(sys.getsizeof, seen.values()))


def test_a_gate_remembers_each_word_that_reads_as_nothing_in_under_200_bytes():
    gate = PolicyGate([DenylistEntry("nude", "sexual"), DenylistEntry("behead*", "violence")],
                      is_english=lambda text: True)  # a server's own list: the shared gate checked the language
    words = _words(1_200)

    allowed = all([gate.check_text(" ".join(words[i:i + 12])).allowed for i in range(0, len(words), 12)])
    terms = gate.denylist._terms
    memories = [terms._readings, terms._near_forms, terms._prefix_readings, terms._strict_readings, terms._patterns]
    remembered = sum(map(len, memories))

    assert allowed
    assert remembered >= len(words)  # each word is remembered (what keeps a busy server's checks fast)
    assert _bytes(memories) / remembered < 200, f"{_bytes(memories) / remembered:.0f} bytes a remembered form"
