"""The shipped list in a database seeded by an older release: what the shared gate reads after the bot's next start."""

from __future__ import annotations

from bot.moderation.denylist_edits import load_gates, stored_entries
from bot.moderation.policy import load_default_entries
from storage.records import GLOBAL


async def test_a_database_seeded_with_gore_tex_spaced_gains_the_hyphenated_name_at_the_next_start(database):
    repo = database.repo()
    shipped = [(e.pattern, e.category, e.kind) for e in load_default_entries() if e.pattern != "gore-tex"]
    await repo.seed_denylist([*shipped, ("gore tex", "allow", "allow")])  # as a release before 2026-12-07 seeded it
    gates = await load_gates(repo, database.moderation())
    allowed = {e.pattern for e in await stored_entries(repo, GLOBAL) if e.kind == "allow" and "tex" in e.pattern}
    assert allowed == {"gore tex", "gore-tex"}  # the old row stays beside the new one: nothing retires it
    assert gates.check_prompt("a gore-tex-clad man", None).allowed
    assert not gates.check_prompt("a gore-tex-clad man in a pool of gore", None).allowed
