"""The gates' lists in the database: the shared list (the shipped entries, a new release's added at start) and each
server's own, and the edits of them — validated, stored, audited, and live from the next prompt.

A server's moderators add deny entries and allowlist phrases to their server's own list, and remove only those: the
shared list (GLOBAL: the shipped entries and the operator's) is changed by the bot's operators alone, so a server can
extend it but never weaken it (bot.moderation.gates). The database is the truth; at start the gates are built from
it (`load_gates`), and after every change the changed list is rebuilt from it (one edit at a time, so two moderators
editing at once cannot leave a gate with a stale list).
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from dataclasses import dataclass

from bot.characters import shown
from bot.errors import Denied, InvalidInput
from bot.moderation.gates import ServerGates
from bot.moderation.policy import (
    DenylistEntry,
    DenylistReport,
    PolicyGate,
    Verdict,
    load_default_entries,
    validate_entry,
)
from bot.moderation.policy.entries import ALLOW_CATEGORY, Kind, load_default_renames
from bot.moderation.policy.normalise import normalise
from bot.moderation.rules import Moderation
from bot.moderation.text import ended
from storage import GLOBAL, DenyKind, DenylistRecord, DuplicateEntryError, ModerationRepository, Repository

log = logging.getLogger(__name__)

LIST_NAMES = {"deny": "denylist", "allow": "allowlist"}
BLANK = {"deny": "The pattern is blank: give a word, phrase, stem* or a + b, such as “exploding kittens”.",
         "allow": "The phrase is blank: give a word or phrase the denylist refuses, such as a place name."}
TARGET = "pattern:"  # an edit's audit target: TARGET + the pattern
REMOVALS = tuple(f"{name}.remove" for name in LIST_NAMES.values())  # audit rows each start reads back (load_gates):
# kept whatever their age (bot.retention), else a removed shipped entry would come back a year later


@dataclass(frozen=True)
class PromptTest:
    """What the gate says about a prompt, and which list entries fire or were overridden (for moderators only)."""

    verdict: Verdict
    report: DenylistReport


def canonical(pattern: str) -> str:
    """A pattern as stored: read as the gate reads text (normalise: fullwidth and look-alike letters, accents,
    zero-width and bidi characters folded or dropped, lower case), single spaces: "ｎｕｄｅ" is "nude", a duplicate."""
    return " ".join(normalise(pattern).split())


def _nonblank(pattern: str, kind: Kind) -> str:
    """The pattern as stored (`canonical`); InvalidInput for one with nothing in it to match."""
    stored = canonical(pattern)
    if not stored:
        raise InvalidInput(BLANK[kind])
    return stored


def list_name(kind: Kind, guild_id: int) -> str:
    """“the denylist” of a server, or “the shared denylist” of every server."""
    return f"the shared {LIST_NAMES[kind]}" if guild_id == GLOBAL else f"this server's {LIST_NAMES[kind]}"


class DenylistEditor:
    """Adds and removes deny/allow entries of a server (GLOBAL: the shared list, for operators) and keeps the live
    gates in step with the database."""

    def __init__(self, repo: Repository, gates: ServerGates, moderation: Moderation) -> None:
        self._repo = repo
        self.gates = gates
        self._moderation = moderation
        self._lock = asyncio.Lock()

    def entries(self, kind: Kind | None = None, *, guild_id: int) -> list[DenylistEntry]:
        """The entries a list holds now (a server's own, or the shared ones for GLOBAL), in list order."""
        entries = self.gates.shared.denylist.entries if guild_id == GLOBAL else self.gates.own_entries(guild_id)
        return [entry for entry in entries if kind is None or entry.kind == kind]

    def test(self, prompt: str, guild_id: int) -> PromptTest:
        """Run a server's full gate (GLOBAL: the shared one) on a prompt and explain the lists' part in the answer."""
        scope = None if guild_id == GLOBAL else guild_id
        return PromptTest(self.gates.check_prompt(prompt, scope), self.gates.explain(prompt, scope))

    async def add(self, actor: int, pattern: str, category: str, kind: Kind = "deny", *,
                  guild_id: int) -> DenylistEntry:
        """Validate and store an entry of a server's list (GLOBAL: the shared one), then make it live; InvalidInput
        says what is wrong with it."""
        pattern = _nonblank(pattern, kind)
        category = ALLOW_CATEGORY if kind == "allow" else " ".join(category.split()).lower()
        try:
            entry = validate_entry(DenylistEntry(pattern, category, kind))
        except ValueError as error:
            raise InvalidInput(f"Not added: {ended(shown(str(error), 400))}") from None
        problem = self._redundant(pattern, kind, guild_id)
        if problem is not None:
            raise InvalidInput(problem)
        async with self._lock:
            try:
                await self._repo.add_denylist_entry(entry.pattern, entry.category, DenyKind(kind), added_by=actor,
                                                    guild_id=guild_id)
            except DuplicateEntryError:
                raise InvalidInput(f"“{shown(pattern)}” is already on {list_name(kind, guild_id)}.") from None
            await self._reload(guild_id)
        await self._moderation.audit(actor, f"{LIST_NAMES[kind]}.add", f"{TARGET}{pattern}",
                                     {"category": entry.category}, guild_id=guild_id)
        return entry

    def _redundant(self, pattern: str, kind: Kind, guild_id: int) -> str | None:
        """Why a new entry would change nothing, or None: the shared list holds it (for a server's deny entry), an
        entry refuses it already, the same `a + b` rule is there with its parts in another order, or the list's
        other kind silences it (an allowlist phrase within a deny pattern's words lets it through wherever it fires;
        an allowlist phrase within a deny entry's words makes that entry refuse nothing)."""
        if guild_id != GLOBAL and kind == "deny" and any(e.pattern == pattern for e in self.entries("deny",
                                                                                                    guild_id=GLOBAL)):
            return f"“{shown(pattern)}” is already on the shared denylist, which holds in every server."
        same = _same_rule(pattern, self.entries(kind, guild_id=guild_id)
                          + (self.entries("deny", guild_id=GLOBAL) if kind == "deny" and guild_id != GLOBAL else []))
        if same is not None:
            where = list_name(kind, GLOBAL if same in self.entries(guild_id=GLOBAL) else guild_id)
            return (f"“{shown(pattern)}” is already on {where} as “{shown(same.pattern)}” (the parts of a + b may "
                    "come in any order); nothing to add.")
        covering = self._covering(pattern, guild_id) if kind == "deny" else None
        if covering is not None:
            where = list_name("deny", GLOBAL if covering in self.entries(guild_id=GLOBAL) else guild_id)
            return f"“{shown(pattern)}” is already refused by “{shown(covering.pattern)}” on {where}; nothing to add."
        return self._silenced(pattern, kind, guild_id)

    def _silenced(self, pattern: str, kind: Kind, guild_id: int) -> str | None:
        """Why a word or phrase entry and the same list's other kind would cancel out, or None. A list's allowlist
        phrases let through its own deny entries only, so only that list is read; stems and `a + b` rules are left
        to the moderator."""
        other: Kind = "allow" if kind == "deny" else "deny"
        for entry in self.entries(other, guild_id=guild_id):
            deny, allow = (pattern, entry.pattern) if kind == "deny" else (entry.pattern, pattern)
            if any("*" in text or " + " in text for text in (deny, allow)) or f" {allow} " not in f" {deny} ":
                continue
            command = "/videomod operator allowlist-remove" if guild_id == GLOBAL else "/videomod allowlist remove"
            if kind == "deny":
                return (f"“{shown(pattern)}” would refuse nothing: “{shown(allow)}” on {list_name('allow', guild_id)} "
                        f"lets it through wherever it appears; remove that phrase first ({command}).")
            command = "/videomod operator denylist-remove" if guild_id == GLOBAL else "/videomod denylist remove"
            return (f"“{shown(pattern)}” would let through every prompt “{shown(deny)}” on "
                    f"{list_name('deny', guild_id)} refuses, so that entry would refuse nothing; to stop refusing it, "
                    f"remove it ({command}).")
        return None

    def _covering(self, pattern: str, guild_id: int) -> DenylistEntry | None:
        """Another deny entry (the shared list's, or for a server its own) that fires on a word or phrase entry's own
        words, and so already refuses every prompt the entry would; None, also for stems and `a + b` rules."""
        if "*" in pattern or " + " in pattern:
            return None
        fires = self.gates.explain(pattern, None if guild_id == GLOBAL else guild_id).denied
        return next((entry for entry in fires if entry.pattern != pattern), None)

    async def remove(self, actor: int, pattern: str, kind: Kind = "deny", *, guild_id: int) -> bool:
        """Remove an entry of a server's list (GLOBAL: the shared one) and make the change live; False when that
        list has no such entry; Denied when only the shared list has it (a server cannot weaken it)."""
        typed, pattern = " ".join(pattern.split()).lower(), _nonblank(pattern, kind)
        async with self._lock:
            removed = await self._repo.remove_denylist_entry(pattern, DenyKind(kind), guild_id=guild_id)
            if not removed and typed != pattern:  # stored before entries were normalised, as typed
                removed = await self._repo.remove_denylist_entry(typed, DenyKind(kind), guild_id=guild_id)
            if removed:
                await self._reload(guild_id)
        if removed:
            await self._moderation.audit(actor, f"{LIST_NAMES[kind]}.remove", f"{TARGET}{pattern}",
                                         guild_id=guild_id)
        elif guild_id != GLOBAL and any(e.pattern == pattern for e in self.entries(kind, guild_id=GLOBAL)):
            log.warning("user %d tried to remove %r from the shared %s in server %d", actor, pattern,
                        LIST_NAMES[kind], guild_id)
            await self._moderation.audit(actor, f"{LIST_NAMES[kind]}.remove", f"{TARGET}{pattern}",
                                         {"refused": "shared entry"}, guild_id=guild_id, allowed=False)
            raise Denied(f"“{shown(pattern)}” is on the shared {LIST_NAMES[kind]}, which holds in every server and "
                         "only the bot's operators can change; this server can add entries of its own, not remove "
                         "shared ones.")
        return removed

    async def _reload(self, guild_id: int) -> None:
        """Rebuild a list's gate from the database."""
        entries = await stored_entries(self._repo, guild_id)
        if guild_id == GLOBAL:
            self.gates.replace_shared(entries)
        else:
            self.gates.replace_server(guild_id, entries)


async def load_gates(repo: Repository, moderation: ModerationRepository) -> ServerGates:
    """Add the shipped entries the shared list lacks (all of them into a new database; a new release's into an
    existing one), except those ever removed (the audit log remembers), and retire a renamed one's old name (its
    removal then keeps the new name out); build the gates from the table.

    Removals in any server count: before servers had their own lists (migration 0004) the operators' removals were
    audited under no server, and the migration filed them under DISCORD_GUILD_ID's. A server's removal of its own
    entry of the same pattern counts too: a new release's entry of that pattern is then not added, and an operator
    adds it with `/videomod operator denylist-add` if wanted."""
    skip = [(target.removeprefix(TARGET), kind) for kind, name in LIST_NAMES.items()
            for target in await moderation.audited_targets([f"{name}.remove"], guild_id=None)  # REMOVALS
            if target.startswith(TARGET)]
    await repo.seed_denylist(((e.pattern, e.category, e.kind) for e in load_default_entries()), skip=skip,
                             renamed=load_default_renames())
    by_server: defaultdict[int, list[DenylistEntry]] = defaultdict(list)
    for row in await repo.list_denylist():
        by_server[row.guild_id].append(_entry(row))
    shared = PolicyGate(by_server.pop(GLOBAL, []))
    await asyncio.to_thread(shared.warm_up)  # seconds, off the loop, rather than on the first users' commands
    return ServerGates(shared, by_server)


async def stored_entries(repo: Repository, guild_id: int = GLOBAL) -> list[DenylistEntry]:
    """A list (a server's own, or the shared one) as the database keeps it."""
    return [_entry(row) for row in await repo.list_denylist(guild_ids=[guild_id])]


def _same_rule(pattern: str, entries: list[DenylistEntry]) -> DenylistEntry | None:
    """An `a + b` entry with the same parts as the pattern's in another order (the parts of a rule may be anywhere
    in a prompt, so it is the same rule), or None."""
    if " + " not in pattern:
        return None
    parts = sorted(pattern.split(" + "))
    return next((e for e in entries if e.pattern != pattern and sorted(e.pattern.split(" + ")) == parts), None)


def _entry(row: DenylistRecord) -> DenylistEntry:
    return DenylistEntry(row.pattern, row.category, row.kind.value)  # type: ignore[arg-type]
