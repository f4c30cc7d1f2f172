"""The shipped list in a database seeded by an older release: what the shared gate reads after the bot's next start,
where a shipped entry was renamed since (default_denylist.txt's '# renamed: old -> new')."""

from __future__ import annotations

import re

import pytest

from bot.moderation.denylist_edits import TARGET, load_gates, stored_entries
from bot.moderation.policy import load_default_entries
from bot.moderation.policy.entries import load_default_renames, parse_renames
from storage import DenyKind
from storage.records import GLOBAL

OPERATOR = 1_000_000_000_000_000_001


async def seeded_before_the_rename(repo, *, gore_tex: bool = True) -> None:
    """Seed the shared list as a release before 2026-12-07 did: 'gore tex' where the list now has 'gore-tex'."""
    shipped = [(e.pattern, e.category, e.kind) for e in load_default_entries() if e.pattern != "gore-tex"]
    await repo.seed_denylist([*shipped, *([("gore tex", "allow", "allow")] if gore_tex else [])])


async def tex_rows(repo) -> set[tuple[str, int | None]]:
    """The shared list's allow rows of gore tex, whatever their spelling, with who added them."""
    return {(row.pattern, row.added_by) for row in await repo.list_denylist(DenyKind.ALLOW, guild_ids=[GLOBAL])
            if "tex" in row.pattern}


def test_the_shipped_list_declares_gore_tex_as_the_new_name_of_gore_tex_spaced():
    assert load_default_renames() == {("gore tex", "allow"): "gore-tex"}


async def test_a_database_seeded_with_gore_tex_spaced_has_only_the_hyphenated_name_after_the_next_start(database,
                                                                                                       caplog):
    repo = database.repo()
    await seeded_before_the_rename(repo)
    caplog.set_level("INFO", logger="storage.repository")

    gates = await load_gates(repo, database.moderation())

    assert await tex_rows(repo) == {("gore-tex", None)}  # the stale shipped row is retired
    allowed = {e.pattern for e in await stored_entries(repo, GLOBAL) if e.kind == "allow"}
    assert allowed == {e.pattern for e in load_default_entries() if e.kind == "allow"}
    assert gates.check_prompt("a gore-tex-clad man", None).allowed
    assert not gates.check_prompt("a gore-tex-clad man in a pool of gore", None).allowed
    said = [record.getMessage() for record in caplog.records if record.name == "storage.repository"]
    assert said == ["the shared denylist renamed shipped entries: allow 'gore tex' → 'gore-tex'"]


async def test_an_operators_own_gore_tex_spaced_entry_is_kept(database):
    """Only a shipped row (added_by None) is retired: the operator's own entry of the old name is theirs."""
    repo = database.repo()
    await seeded_before_the_rename(repo, gore_tex=False)
    await repo.add_denylist_entry("gore tex", "allow", DenyKind.ALLOW, added_by=OPERATOR)

    await load_gates(repo, database.moderation())

    assert await tex_rows(repo) == {("gore tex", OPERATOR), ("gore-tex", None)}


async def test_an_operator_who_removed_gore_tex_spaced_does_not_get_gore_tex_back(database):
    repo, moderation = database.repo(), database.moderation()
    await seeded_before_the_rename(repo)
    await repo.remove_denylist_entry("gore tex", DenyKind.ALLOW)  # as `/videomod operator allowlist-remove` does
    await moderation.audit(OPERATOR, "allowlist.remove", f"{TARGET}gore tex", guild_id=GLOBAL)

    gates = await load_gates(repo, moderation)

    assert await tex_rows(repo) == set()
    assert not gates.check_prompt("a gore-tex-clad man", None).allowed


async def test_a_second_start_changes_nothing(database, caplog):
    repo, moderation = database.repo(), database.moderation()
    await seeded_before_the_rename(repo)
    await load_gates(repo, moderation)
    before = await repo.list_denylist()
    caplog.set_level("INFO", logger="storage.repository")

    await load_gates(repo, moderation)

    assert await repo.list_denylist() == before
    assert await tex_rows(repo) == {("gore-tex", None)}
    assert [record for record in caplog.records if record.name == "storage.repository"] == []


@pytest.mark.parametrize(("text", "says"), [
    ("# renamed: gore tex -> gore-tex\n[allow]\ngore-tex\n", "line 1: '# renamed: gore tex -> gore-tex' should read"),
    ("[allow]\ngore-tex\n# renamed: gore tex gore-tex\n",
     "line 3: '# renamed: gore tex gore-tex' should read '# renamed: old pattern -> new pattern'"),
    ("[allow]\ngore-tex\n# renamed:  -> gore-tex\n", "line 3: '# renamed:  -> gore-tex' should read"),
    ("[allow]\ngoretex\n# renamed: gore tex -> gore-tex\n", "line 3: '# renamed: gore tex -> gore-tex': the new "
     "pattern 'gore-tex' must be an entry of [allow]"),
    ("[violence]\ngore-tex\n[allow]\n# renamed: gore tex -> gore-tex\n", "line 4: '# renamed: gore tex -> gore-tex':"
     " the new pattern 'gore-tex' must be an entry of [allow]"),
    ("[allow]\ngore-tex\ngore tex\n# renamed: gore tex -> gore-tex\n", "line 4: '# renamed: gore tex -> gore-tex': "
     "the new pattern 'gore-tex' must be an entry of [allow] and the old 'gore tex' no longer one"),
])
def test_a_malformed_rename_is_refused_naming_its_line(text, says):
    with pytest.raises(ValueError, match="^" + re.escape(says)):
        parse_renames(text)


def test_a_rename_takes_the_kind_of_its_section_and_other_comments_are_not_renames():
    text = "# renamed things below\n[violence]\nbeheading\n# renamed: beheadings -> beheading\n[allow]\ngore-tex\n"
    assert parse_renames(text) == {("beheadings", "deny"): "beheading"}
