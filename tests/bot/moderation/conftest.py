"""Policy fixtures: the gate and the denylist as the bot loads them, built once per test module (the language
detectors and the default entries take a moment)."""

import pytest

from bot.moderation.policy import Denylist, PolicyGate, load_default_entries


@pytest.fixture(scope="module")
def gate() -> PolicyGate:
    return PolicyGate()


@pytest.fixture(scope="module")
def denylist() -> Denylist:
    return Denylist(load_default_entries())
