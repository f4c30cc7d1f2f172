"""Moderators' inputs and denylist edits, without Discord: durations, limits, escaping, and live gates — the shared
list, which only operators change, and each server's own, which extends it and never weakens it."""

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest

from bot.characters import shown
from bot.errors import Denied, InvalidInput
from bot.moderation.denylist_edits import DenylistEditor
from bot.moderation.gates import ServerGates
from bot.moderation.policy import DenylistEntry, PolicyGate, load_default_entries
from bot.moderation.rules import Moderation, check_limit
from bot.moderation.text import parse_duration
from storage import GLOBAL, ModerationRepository, Repository, create_engine, migrate
from tests.bot.helpers import plain
from tests.clocks import Clock

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
        (None, None),
    ],
)
def test_block_durations_read_like_moderators_write_them(text, expected):
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["soon", "2", "h", "2 fortnights", "1mo", "-3d", "1.5h", "2h and a bit"])
def test_unreadable_durations_name_the_value_and_the_accepted_forms(text):
    with pytest.raises(InvalidInput) as error:
        parse_duration(text)
    assert error.value.message.startswith(f"“{shown(text)}” is not a duration: use a number and a unit such as 30m")
    assert "'permanent'" in error.value.message


@pytest.mark.parametrize("text", ["", "   ", "\t"])
def test_a_blank_duration_is_refused_not_read_as_permanent(text):
    with pytest.raises(InvalidInput) as error:
        parse_duration(text)
    assert error.value.message == ("The duration is blank: use a number and a unit such as 30m, 2h, 7d or 2w (or "
                                   "combined, 1d12h), or 'permanent', or leave it out for a permanent block.")


@pytest.mark.parametrize("text", ["0m", "3651d", "999999w", "1000000d", "9" * 39 + "s"])
def test_durations_out_of_range_are_refused(text):
    with pytest.raises(InvalidInput, match="must be longer than 0 and at most 3650 days"):
        parse_duration(text)


@pytest.mark.parametrize("limit", [-1, 10_001, 2**40])
def test_quota_limits_outside_the_range_are_refused_naming_it(limit):
    with pytest.raises(InvalidInput, match=rf"A quota of {limit} videos per day is outside the allowed range 0–10000"):
        check_limit(limit, "day")


def test_limits_at_the_edges_are_fine():
    assert (check_limit(0), check_limit(10_000)) == (0, 10_000)


A, B = 600, 601  # two servers


@dataclass
class Lists:
    """The editor, the gates it keeps live, and the audit log."""

    edits: DenylistEditor
    gates: ServerGates
    mods: ModerationRepository

    def allowed(self, prompt: str, guild_id: int | None = None) -> bool:
        return self.gates.check_prompt(prompt, guild_id).allowed


@pytest.fixture
async def lists(tmp_path: Path) -> AsyncIterator[Lists]:
    """The shared list holds “nude”; the gates start from it; every language counts as English."""
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'edits.db'}")
    await migrate(engine)
    clock = Clock()
    repo = Repository(engine, clock=clock)
    await repo.add_denylist_entry("nude", "sexual")
    gates = ServerGates(PolicyGate([DenylistEntry("nude", "sexual")], is_english=lambda text: True))
    mods = ModerationRepository(engine, clock=clock)
    moderation = Moderation(mods, default_limit=20, period="day", clock=clock)
    yield Lists(DenylistEditor(repo, gates, moderation), gates, mods)
    await engine.dispose()


async def test_an_added_entry_refuses_the_next_prompt_and_a_removed_one_stops(lists):
    assert lists.allowed("A herd of exploding kittens.")
    entry = await lists.edits.add(MOD, "  Exploding   Kittens ", "violence", guild_id=GLOBAL)
    assert entry == DenylistEntry("exploding kittens", "violence")
    verdict = lists.gates.check_prompt("A herd of exploding kittens.", A)
    assert (verdict.reason, verdict.category, verdict.matched) == ("denylist", "violence", "exploding kittens")

    assert await lists.edits.remove(MOD, "EXPLODING KITTENS", guild_id=GLOBAL) is True
    assert lists.allowed("A herd of exploding kittens.")
    assert await lists.edits.remove(MOD, "exploding kittens", guild_id=GLOBAL) is False
    assert [(row.action, row.target) for row in await lists.mods.latest_audit(guild_id=GLOBAL)] == [
        ("denylist.remove", "pattern:exploding kittens"), ("denylist.add", "pattern:exploding kittens")]


@pytest.mark.parametrize("typed", ["ｎｕｄｅ", "nu\u200bde", "NÜDE", "\u202enude"])
async def test_an_entry_is_stored_as_the_gate_reads_it_so_invisible_and_look_alike_letters_make_no_new_entry(lists,
                                                                                                          typed):
    with pytest.raises(InvalidInput, match="“nude” is already on the shared denylist"):
        await lists.edits.add(MOD, typed, "sexual", guild_id=A)  # the shared list holds “nude”
    await lists.edits.add(MOD, "exploding kittens", "violence", guild_id=A)
    with pytest.raises(InvalidInput, match="“exploding kittens” is already on this server's denylist"):
        await lists.edits.add(MOD, "exploding\u200b kittens", "violence", guild_id=A)
    entry = await lists.edits.add(MOD, "\u202egnitsiht", "violence", guild_id=A)
    assert entry.pattern == "gnitsiht" and await lists.edits.remove(MOD, "gnitsiht", guild_id=A) is True


async def test_an_entry_stored_as_typed_before_normalising_can_still_be_removed(lists):
    await lists.edits._repo.add_denylist_entry("crème brûlée", "violence", guild_id=A)  # as older versions stored it
    assert await lists.edits.remove(MOD, "Crème  Brûlée", guild_id=A) is True


async def test_an_allowlist_phrase_lets_a_denied_word_through_in_that_phrase_only(lists):
    await lists.edits.add(MOD, "nude lipstick", "ignored for allow entries", "allow", guild_id=GLOBAL)
    assert lists.allowed("A tube of nude lipstick.")
    assert not lists.allowed("A nude model.")
    report = lists.edits.test("A tube of nude lipstick.", GLOBAL).report
    assert [e.pattern for e in report.overridden] == ["nude"] and [e.pattern for e in report.allowed] == [
        "nude lipstick"]


async def test_a_servers_own_entry_refuses_in_that_server_only(lists):
    await lists.edits.add(MOD, "exploding kittens", "violence", guild_id=A)
    refused = lists.gates.check_prompt("A herd of exploding kittens.", A)
    assert (refused.allowed, refused.category) == (False, "violence")
    assert lists.allowed("A herd of exploding kittens.", B) and lists.allowed("A herd of exploding kittens.")
    assert [e.pattern for e in lists.edits.entries(guild_id=A)] == ["exploding kittens"]
    assert lists.edits.entries(guild_id=B) == []
    assert [row.action for row in await lists.mods.latest_audit(guild_id=A)] == ["denylist.add"]
    assert await lists.mods.latest_audit(guild_id=B) == []


async def test_a_servers_allowlist_cannot_weaken_the_shared_denylist(lists):
    await lists.edits.add(MOD, "nude", "allow", "allow", guild_id=A)  # trying to let the shared entry through
    await lists.edits.add(MOD, "melting faces", "violence", guild_id=A)
    await lists.edits.add(MOD, "melting faces cake", "allow", "allow", guild_id=A)

    assert not lists.allowed("A nude model.", A)  # the shared list is judged on its own
    assert not lists.allowed("Two melting faces.", A)
    assert lists.allowed("A melting faces cake for Halloween.", A)  # the server's phrase covers its own entry


async def test_a_server_cannot_remove_or_repeat_a_shared_entry(lists):
    with pytest.raises(Denied) as refused:
        await lists.edits.remove(MOD, "NUDE", guild_id=A)
    with pytest.raises(InvalidInput) as repeated:
        await lists.edits.add(MOD, "nude", "sexual", guild_id=A)

    assert refused.value.message.startswith("“nude” is on the shared denylist, which holds in every server and only "
                                            "the bot's operators can change")
    assert plain(repeated.value.message) == "“nude” is already on the shared denylist, which holds in every server."
    assert not lists.allowed("A nude model.", A)
    [row] = await lists.mods.latest_audit(guild_id=A)
    assert (row.action, row.allowed) == ("denylist.remove", False)


@pytest.mark.parametrize(
    ("pattern", "category", "says"),
    [
        ("porn*", "sexual", "prefix stems need at least 5 letters"),
        ("xxx", "sexual", "entries need at least 4 letters"),
        ("a + b", "sexual", "entries need at least 4 letters"),
        ("exploding kittens", "gross", "category must be one of sexual, violence, hate, misinformation, real_person"),
        ("*!*", "violence", "every part needs at least one letter or digit"),
        ("nude", "sexual", "“nude” is already on the shared denylist."),
    ],
)
async def test_entries_that_would_misfire_are_refused_and_change_nothing(lists, pattern, category, says):
    with pytest.raises(InvalidInput) as error:
        await lists.edits.add(MOD, pattern, category, guild_id=GLOBAL)
    assert says in plain(error.value.message)
    assert [entry.pattern for entry in lists.gates.shared.denylist.entries] == ["nude"]
    assert await lists.mods.latest_audit(guild_id=GLOBAL) == []


async def test_concurrent_edits_leave_the_gates_with_every_entry(lists):
    words = ["exploding kittens", "melting faces", "burning houses", "falling pianos"]
    await asyncio.gather(*(lists.edits.add(MOD, word, "violence", guild_id=GLOBAL) for word in words),
                         *(lists.edits.add(MOD, word, "violence", guild_id=A) for word in ("rotten eggs", "wet socks")))
    assert sorted(entry.pattern for entry in lists.gates.shared.denylist.entries) == sorted(["nude", *words])
    assert sorted(entry.pattern for entry in lists.edits.entries(guild_id=A)) == ["rotten eggs", "wet socks"]


async def test_a_new_releases_shipped_entries_reach_an_existing_database_but_not_those_operators_removed(lists,
                                                                                                     tmp_path):
    from bot.moderation.denylist_edits import load_gates, stored_entries

    repo = lists.edits._repo  # its shared list holds only “nude”, as an older release's might
    await repo.add_denylist_entry("nudes", "sexual")
    assert await lists.edits.remove(MOD, "nudes", guild_id=GLOBAL) is True  # an operator's removal, audited
    await lists.edits.add(MOD, "exploding kittens", "violence", guild_id=GLOBAL)
    await lists.mods.audit(MOD, "denylist.remove", "pattern:topless", guild_id=A)  # an operator's, before servers
    await load_gates(repo, lists.mods)  # had their own lists: migration 0004 filed it under DISCORD_GUILD_ID's
    shared = {(entry.pattern, entry.kind) for entry in await stored_entries(repo, GLOBAL)}

    assert {("nude", "deny"), ("naked", "deny"), ("exploding kittens", "deny")} <= shared  # a shipped one arrived
    assert ("nudes", "deny") not in shared and ("topless", "deny") not in shared  # removed ones stay removed
    assert len(shared) == len(load_default_entries()) - 1  # every shipped entry but those two, and the operator's
