"""Moderators' inputs and denylist edits, without Discord: durations, limits, escaping, and a live gate."""

import asyncio
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.errors import InvalidInput
from bot.moderation.denylist_edits import DenylistEditor
from bot.moderation.policy import DenylistEntry, PolicyGate
from bot.moderation.rules import Moderation, check_limit, inert, parse_duration
from storage import ModerationRepository, Repository, create_engine, migrate

NOW = datetime(2026, 3, 4, 12, tzinfo=UTC)
MOD = 900


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30m", timedelta(minutes=30)),
        ("2h", timedelta(hours=2)),
        ("7d", timedelta(days=7)),
        ("2w", timedelta(weeks=2)),
        ("1d12h", timedelta(days=1, hours=12)),
        ("1 day 6 hours", timedelta(days=1, hours=6)),
        (" 90 MIN ", timedelta(minutes=90)),
        ("45s", timedelta(seconds=45)),
        ("permanent", None),
        ("Forever", None),
        ("", None),
        (None, None),
    ],
)
def test_block_durations_read_like_moderators_write_them(text, expected):
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["soon", "2", "h", "2 fortnights", "1mo", "-3d", "1.5h", "2h and a bit"])
def test_unreadable_durations_name_the_value_and_the_accepted_forms(text):
    with pytest.raises(InvalidInput) as error:
        parse_duration(text)
    assert error.value.message.startswith(f"“{inert(text)}” is not a duration: use a number and a unit such as 30m")
    assert "'permanent'" in error.value.message


@pytest.mark.parametrize("text", ["0m", "3651d", "999999w"])
def test_durations_out_of_range_are_refused(text):
    with pytest.raises(InvalidInput, match="must be longer than 0 and at most 3650 days"):
        parse_duration(text)


@pytest.mark.parametrize("limit", [-1, 10_001, 2**40])
def test_quota_limits_outside_the_range_are_refused_naming_it(limit):
    with pytest.raises(InvalidInput, match=rf"A quota of {limit} videos per day is outside the allowed range 0–10000"):
        check_limit(limit, "day")


def test_limits_at_the_edges_are_fine():
    assert (check_limit(0), check_limit(10_000)) == (0, 10_000)


def test_shown_text_cannot_format_or_mention():
    assert inert("**bold** <@123> @everyone `x`") == r"\*\*bold\*\* \<\@123\> \@everyone \`x\`"
    assert inert("a\n\nb   c") == "a b c"
    assert inert("x" * 50, 10) == "xxxxxxxxx…"


def plain(text: str) -> str:
    """Text as Discord shows it: escapes removed."""
    return re.sub(r"\\(.)", r"\1", text)


@pytest.fixture
async def editor(tmp_path: Path) -> AsyncIterator[tuple[DenylistEditor, PolicyGate, ModerationRepository]]:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'edits.db'}")
    await migrate(engine)
    repo = Repository(engine, clock=lambda: NOW)
    await repo.add_denylist_entry("nude", "sexual")
    gate = PolicyGate([DenylistEntry("nude", "sexual")], is_english=lambda text: True)
    mods = ModerationRepository(engine, clock=lambda: NOW)
    moderation = Moderation(mods, default_limit=20, period="day", clock=lambda: NOW)
    yield DenylistEditor(repo, gate, moderation), gate, mods
    await engine.dispose()


async def test_an_added_entry_refuses_the_next_prompt_and_a_removed_one_stops(editor):
    edits, gate, mods = editor
    assert gate.check_prompt("A herd of exploding kittens.").allowed
    entry = await edits.add(MOD, "  Exploding   Kittens ", "violence")
    assert entry == DenylistEntry("exploding kittens", "violence")
    verdict = gate.check_prompt("A herd of exploding kittens.")
    assert (verdict.reason, verdict.category, verdict.matched) == ("denylist", "violence", "exploding kittens")

    assert await edits.remove(MOD, "EXPLODING KITTENS") is True
    assert gate.check_prompt("A herd of exploding kittens.").allowed
    assert await edits.remove(MOD, "exploding kittens") is False
    assert [(row.action, row.target) for row in await mods.latest_audit()] == [
        ("denylist.remove", "pattern:exploding kittens"), ("denylist.add", "pattern:exploding kittens")]


async def test_an_allowlist_phrase_lets_a_denied_word_through_in_that_phrase_only(editor):
    edits, gate, _ = editor
    await edits.add(MOD, "nude lipstick", "ignored for allow entries", "allow")
    assert gate.check_prompt("A tube of nude lipstick.").allowed
    assert not gate.check_prompt("A nude model.").allowed
    report = edits.test("A tube of nude lipstick.").report
    assert [e.pattern for e in report.overridden] == ["nude"] and [e.pattern for e in report.allowed] == [
        "nude lipstick"]


@pytest.mark.parametrize(
    ("pattern", "category", "says"),
    [
        ("porn*", "sexual", "prefix stems need at least 5 letters"),
        ("xxx", "sexual", "entries need at least 4 letters"),
        ("a + b", "sexual", "entries need at least 4 letters"),
        ("exploding kittens", "gross", "category must be one of sexual, violence, hate, misinformation, real_person"),
        ("*!*", "violence", "every part needs at least one letter or digit"),
        ("nude", "sexual", "“nude” is already on the denylist."),
    ],
)
async def test_entries_that_would_misfire_are_refused_and_change_nothing(editor, pattern, category, says):
    edits, gate, mods = editor
    with pytest.raises(InvalidInput) as error:
        await edits.add(MOD, pattern, category)
    assert says in plain(error.value.message)
    assert [entry.pattern for entry in gate.denylist.entries] == ["nude"]
    assert await mods.latest_audit() == []


async def test_concurrent_edits_leave_the_gate_with_every_entry(editor):
    edits, gate, _ = editor
    words = ["exploding kittens", "melting faces", "burning houses", "falling pianos"]
    await asyncio.gather(*(edits.add(MOD, word, "violence") for word in words))
    assert sorted(entry.pattern for entry in gate.denylist.entries) == sorted(["nude", *words])
