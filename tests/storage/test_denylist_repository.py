"""Denylist entries: add, duplicate, remove, and seeding the shipped defaults exactly once."""

import pytest

from storage import DenyKind, DuplicateEntryError

DEFAULTS = [  # (pattern, category, kind), as bot.moderation seeds the shipped list
    ("nsfw", "sexual", DenyKind.DENY),
    ("gore", "violence", DenyKind.DENY),
    ("gore-tex", "violence", DenyKind.ALLOW),
]


async def test_a_moderator_adds_an_entry_and_sees_it_listed(repo, clock) -> None:
    entry = await repo.add_denylist_entry("beheading", "violence", DenyKind.DENY, added_by=1_000_000_000_000_000_001)
    assert (entry.pattern, entry.category, entry.kind) == ("beheading", "violence", DenyKind.DENY)
    assert (entry.added_by, entry.created_at) == (1_000_000_000_000_000_001, clock.now)
    assert await repo.list_denylist() == [entry]


async def test_adding_the_same_pattern_twice_raises_a_duplicate_error(repo) -> None:
    await repo.add_denylist_entry("nsfw", "sexual")
    with pytest.raises(DuplicateEntryError, match="already has a deny entry for 'nsfw'"):
        await repo.add_denylist_entry("nsfw", "other")
    assert len(await repo.list_denylist()) == 1


async def test_the_same_pattern_may_be_both_denied_and_allowed(repo) -> None:
    await repo.add_denylist_entry("shoot", "violence", DenyKind.DENY)
    await repo.add_denylist_entry("shoot", "photography", DenyKind.ALLOW)
    assert [entry.pattern for entry in await repo.list_denylist(DenyKind.ALLOW)] == ["shoot"]
    assert [entry.category for entry in await repo.list_denylist(DenyKind.DENY)] == ["violence"]


async def test_an_empty_pattern_is_refused(repo) -> None:
    with pytest.raises(ValueError, match="must not be empty"):
        await repo.add_denylist_entry("  ", "sexual")


async def test_removing_reports_whether_anything_was_removed(repo) -> None:
    await repo.add_denylist_entry("nsfw", "sexual")
    assert await repo.remove_denylist_entry("nsfw", DenyKind.ALLOW) is False
    assert await repo.remove_denylist_entry("nsfw") is True
    assert await repo.remove_denylist_entry("nsfw") is False
    assert await repo.list_denylist() == []


async def test_seeding_fills_an_empty_table_once(repo) -> None:
    assert await repo.seed_denylist([*DEFAULTS, DEFAULTS[0]]) == 3
    assert await repo.seed_denylist(DEFAULTS) == 0
    entries = await repo.list_denylist()
    assert [(e.pattern, e.kind, e.added_by) for e in entries] == [
        ("nsfw", "deny", None),
        ("gore", "deny", None),
        ("gore-tex", "allow", None),
    ]


async def test_seeding_adds_a_new_releases_entries_beside_a_moderated_list_except_those_skipped(repo) -> None:
    await repo.add_denylist_entry("custom", "other", added_by=5)
    assert await repo.seed_denylist(DEFAULTS[:2]) == 2  # the database of an older release: its defaults
    await repo.remove_denylist_entry("nsfw")  # an operator removed one
    assert await repo.seed_denylist(DEFAULTS, skip=[("nsfw", "deny")]) == 1  # the new release adds gore-tex only
    assert [(e.pattern, e.kind) for e in await repo.list_denylist()] == [
        ("custom", "deny"), ("gore", "deny"), ("gore-tex", "allow")]


async def test_seeding_many_entries_logs_the_first_twenty_and_how_many_more(repo, caplog) -> None:
    caplog.set_level("INFO", logger="storage.repository")
    many = [(f"word{n:02}", "other", "deny") for n in range(23)]

    assert await repo.seed_denylist(many) == 23

    said = [record.getMessage() for record in caplog.records if record.name == "storage.repository"]
    names = ", ".join(f"word{n:02}" for n in range(20))
    assert said == [f"the shared denylist gained 23 shipped entries: {names} (and 3 more)"]


async def test_seeding_a_few_entries_logs_them_all(repo, caplog) -> None:
    caplog.set_level("INFO", logger="storage.repository")

    await repo.seed_denylist([(f"word{n:02}", "other", "deny") for n in range(20)])

    said = [record.getMessage() for record in caplog.records if record.name == "storage.repository"]
    assert said == ["the shared denylist gained 20 shipped entries: " + ", ".join(f"word{n:02}" for n in range(20))]
