"""Seeding with renamed shipped entries: the old name's shipped row retired as the new one is added (both backends)."""

from storage import DenyKind

SHIPPED = [("gore", "violence", DenyKind.DENY), ("gore-tex", "allow", DenyKind.ALLOW)]  # this release's list
RENAMED = {("gore tex", "allow"): "gore-tex"}  # (old pattern, kind) → new pattern
OLDER = [("gore", "violence", DenyKind.DENY), ("gore tex", "allow", DenyKind.ALLOW)]  # as a release before seeded


async def listed(repo) -> list[tuple[str, str, int | None]]:
    return [(e.pattern, e.kind, e.added_by) for e in await repo.list_denylist()]


async def test_seeding_replaces_the_old_names_shipped_row_with_the_new_name_and_logs_it(repo, caplog) -> None:
    await repo.seed_denylist(OLDER)
    caplog.set_level("INFO", logger="storage.repository")

    assert await repo.seed_denylist(SHIPPED, renamed=RENAMED) == 1

    assert await listed(repo) == [("gore", "deny", None), ("gore-tex", "allow", None)]
    said = [record.getMessage() for record in caplog.records if record.name == "storage.repository"]
    assert said == ["the shared denylist renamed shipped entries: allow 'gore tex' → 'gore-tex'"]


async def test_seeding_twice_with_a_rename_changes_nothing_the_second_time(repo, caplog) -> None:
    await repo.seed_denylist(OLDER)
    await repo.seed_denylist(SHIPPED, renamed=RENAMED)
    before = await repo.list_denylist()
    caplog.set_level("INFO", logger="storage.repository")

    assert await repo.seed_denylist(SHIPPED, renamed=RENAMED) == 0

    assert await repo.list_denylist() == before
    assert [r for r in caplog.records if r.name == "storage.repository"] == []


async def test_an_editors_own_row_of_the_old_name_stays_while_a_shipped_one_is_renamed(repo) -> None:
    await repo.seed_denylist([*OLDER[:1], ("decapitation", "violence", DenyKind.DENY)])
    await repo.add_denylist_entry("gore tex", "allow", DenyKind.ALLOW, added_by=7)
    renamed = {**RENAMED, ("decapitation", "deny"): "decapitat*"}

    assert await repo.seed_denylist([*SHIPPED, ("decapitat*", "violence", DenyKind.DENY)], renamed=renamed) == 2

    assert await listed(repo) == [("gore", "deny", None), ("gore tex", "allow", 7), ("gore-tex", "allow", None),
                                  ("decapitat*", "deny", None)]


async def test_a_server_list_and_another_kind_of_the_old_pattern_are_not_renamed(repo) -> None:
    await repo.seed_denylist(OLDER)
    await repo.add_denylist_entry("gore tex", "allow", DenyKind.ALLOW, guild_id=42)
    await repo.seed_denylist([("gore tex", "violence", DenyKind.DENY)])  # not of the rename's kind

    await repo.seed_denylist(SHIPPED, renamed=RENAMED)

    rows = [(e.guild_id, e.pattern, e.kind) for e in await repo.list_denylist()]
    assert (42, "gore tex", "allow") in rows and (0, "gore tex", "deny") in rows
    assert (0, "gore tex", "allow") not in rows and (0, "gore-tex", "allow") in rows


async def test_the_old_names_removal_keeps_the_new_name_out(repo) -> None:
    await repo.seed_denylist(OLDER)
    await repo.remove_denylist_entry("gore tex", DenyKind.ALLOW)  # the operator removed it (the audit log has it)

    assert await repo.seed_denylist(SHIPPED, skip=[("gore tex", "allow")], renamed=RENAMED) == 0

    assert await listed(repo) == [("gore", "deny", None)]


async def test_a_shipped_old_row_still_there_is_renamed_though_a_removal_of_that_pattern_is_audited(repo) -> None:
    """A server's removal of its own entry of the pattern is audited too; the shared list's entry was never removed."""
    await repo.seed_denylist(OLDER)

    assert await repo.seed_denylist(SHIPPED, skip=[("gore tex", "allow")], renamed=RENAMED) == 1

    assert await listed(repo) == [("gore", "deny", None), ("gore-tex", "allow", None)]


async def test_the_new_names_removal_keeps_it_out_and_the_old_name_is_still_retired(repo) -> None:
    await repo.seed_denylist([*OLDER, SHIPPED[1]])  # a database that started on a release that kept both names
    await repo.remove_denylist_entry("gore-tex", DenyKind.ALLOW)  # the operator removed the new one

    assert await repo.seed_denylist(SHIPPED, skip=[("gore-tex", "allow")], renamed=RENAMED) == 0

    assert await listed(repo) == [("gore", "deny", None)]
