"""The gate's lists in the database: seeded with the shipped defaults, and moderators' edits of the denylist and
allowlist — validated, stored, audited, and live from the next prompt.

The database is the truth; at start the gate is built from it (`load_gate`), and after every change its list is
rebuilt from it (one edit at a time, so two moderators editing at once cannot leave the gate with a stale list).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from bot.errors import InvalidInput
from bot.moderation.policy import (
    DenylistEntry,
    DenylistReport,
    PolicyGate,
    Verdict,
    load_default_entries,
    validate_entry,
)
from bot.moderation.policy.entries import ALLOW_CATEGORY, Kind
from bot.moderation.rules import Moderation, inert
from storage import DenyKind, DuplicateEntryError, Repository

log = logging.getLogger(__name__)

LIST_NAMES = {"deny": "denylist", "allow": "allowlist"}


@dataclass(frozen=True)
class PromptTest:
    """What the gate says about a prompt, and which list entries fire or were overridden (for moderators only)."""

    verdict: Verdict
    report: DenylistReport


def canonical(pattern: str) -> str:
    """A pattern as stored: lower case, single spaces."""
    return " ".join(pattern.split()).lower()


class DenylistEditor:
    """Adds and removes deny/allow entries for moderators and keeps the live gate in step with the database."""

    def __init__(self, repo: Repository, gate: PolicyGate, moderation: Moderation) -> None:
        self._repo = repo
        self._gate = gate
        self._moderation = moderation
        self._lock = asyncio.Lock()

    def entries(self, kind: Kind | None = None) -> list[DenylistEntry]:
        """The entries the gate uses now (of one kind, or all), in list order."""
        return [entry for entry in self._gate.denylist.entries if kind is None or entry.kind == kind]

    def test(self, prompt: str) -> PromptTest:
        """Run the full gate on a prompt and explain the denylist's part in the answer."""
        return PromptTest(self._gate.check_prompt(prompt), self._gate.denylist.explain(prompt))

    async def add(self, actor: int, pattern: str, category: str, kind: Kind = "deny") -> DenylistEntry:
        """Validate and store an entry, then make it live; InvalidInput says what is wrong with it."""
        pattern = canonical(pattern)
        try:
            entry = validate_entry(DenylistEntry(pattern, ALLOW_CATEGORY if kind == "allow" else category, kind))
        except ValueError as error:
            raise InvalidInput(f"Not added: {inert(str(error), 400)}") from None
        async with self._lock:
            try:
                await self._repo.add_denylist_entry(entry.pattern, entry.category, DenyKind(kind), added_by=actor)
            except DuplicateEntryError:
                raise InvalidInput(f"“{inert(pattern)}” is already on the {LIST_NAMES[kind]}.") from None
            await self._reload()
        await self._moderation.audit(actor, f"{LIST_NAMES[kind]}.add", f"pattern:{pattern}",
                                     {"category": entry.category})
        return entry

    async def remove(self, actor: int, pattern: str, kind: Kind = "deny") -> bool:
        """Remove an entry and make the change live; False when the list has no such entry."""
        pattern = canonical(pattern)
        async with self._lock:
            removed = await self._repo.remove_denylist_entry(pattern, DenyKind(kind))
            if removed:
                await self._reload()
        if removed:
            await self._moderation.audit(actor, f"{LIST_NAMES[kind]}.remove", f"pattern:{pattern}")
        return removed

    async def _reload(self) -> None:
        """Rebuild the gate's list from the database."""
        self._gate.replace_entries(await stored_entries(self._repo))


async def load_gate(repo: Repository) -> PolicyGate:
    """Seed the denylist table with the shipped defaults when it is empty; build the gate from the table."""
    await repo.seed_denylist((e.pattern, e.category, e.kind) for e in load_default_entries())
    gate = PolicyGate(await stored_entries(repo))
    await asyncio.to_thread(gate.warm_up)  # seconds, off the loop, rather than on the first users' commands
    return gate


async def stored_entries(repo: Repository) -> list[DenylistEntry]:
    """The denylist and allowlist as the database keeps them."""
    rows = await repo.list_denylist()
    return [DenylistEntry(row.pattern, row.category, row.kind.value) for row in rows]  # type: ignore[arg-type]
