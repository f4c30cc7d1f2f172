"""Each server's prompt gate: the shared list refuses everywhere, a server's own entries refuse in that server too.

The shared list — the shipped entries and the operator's edits (GLOBAL) — is checked first, with the full gate
(length, English, denylist). A server's moderators can only extend it: their deny entries are a second list checked
after it, and their allowlist phrases let through their own deny entries only, never a shared one.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping

from bot.moderation.policy import PROMPT, DenylistEntry, DenylistReport, PolicyGate, Verdict

log = logging.getLogger(__name__)

SERVER_REMEMBERED_FORMS = 10_000  # readings a server's own list keeps per memory: at most ≈7 MB a server, where the
# shared list keeps 50,000 (≈35 MB, once for every server); a server's list is short, so a reading forgotten is cheap


def _checked_already(text: str) -> bool:
    """The language check of a server's list: the shared gate ran the real one first."""
    return True


def _own_gate(entries: tuple[DenylistEntry, ...]) -> PolicyGate | None:
    """The gate of a server's own entries; None where it has no deny entry, and so needs no gate."""
    if not any(entry.kind == "deny" for entry in entries):
        return None
    return PolicyGate(entries, is_english=_checked_already, remembered=SERVER_REMEMBERED_FORMS)


class ServerGates:
    """The shared gate and each server's extension of it; `check_prompt(prompt, guild_id)` is what /video obeys."""

    def __init__(self, shared: PolicyGate, servers: Mapping[int, Iterable[DenylistEntry]] | None = None) -> None:
        self.shared = shared
        self._own: dict[int, tuple[DenylistEntry, ...]] = {}
        self._gates: dict[int, PolicyGate] = {}
        for guild_id, entries in (servers or {}).items():
            self.replace_server(guild_id, entries)

    def replace_shared(self, entries: Iterable[DenylistEntry]) -> None:
        """Use a new shared list from the next prompt on (every server's)."""
        self.shared.replace_entries(entries)

    def replace_server(self, guild_id: int, entries: Iterable[DenylistEntry]) -> None:
        """Use a server's new own entries from the next prompt on; a server with no deny entry needs no gate."""
        own = tuple(entries)
        gate = _own_gate(own)  # a malformed entry is a ValueError here, before anything changed
        self._own[guild_id] = own
        if gate is None:
            self._gates.pop(guild_id, None)
        else:
            self._gates[guild_id] = gate
            log.info("server %d's own denylist: %d entries", guild_id, len(own))

    def forget_server(self, guild_id: int) -> None:
        """The bot was removed from a server: drop its gate and what the gate remembers of prompts read (megabytes
        for a busy server). Its entries stay (the database keeps them too): invited back, the server's first prompt
        builds its gate again."""
        if self._gates.pop(guild_id, None) is not None:
            log.info("server %d's own denylist gate dropped: the bot was removed from the server", guild_id)

    def _gate(self, guild_id: int | None) -> PolicyGate | None:
        """A server's own gate, built again from its entries where it was forgotten; None where it has no deny entry."""
        if guild_id is None:
            return None
        gate = self._gates.get(guild_id)
        if gate is None and (gate := _own_gate(self._own.get(guild_id, ()))) is not None:
            self._gates[guild_id] = gate
        return gate

    def servers(self) -> set[int]:
        """The servers with a gate of their own now (a departed one's is dropped: forget_server)."""
        return set(self._gates)

    def own_entries(self, guild_id: int) -> tuple[DenylistEntry, ...]:
        """A server's own entries (what its moderators added)."""
        return self._own.get(guild_id, ())

    def warm_up(self) -> None:
        """Load the shared gate's detectors and tables now (seconds: off the event loop)."""
        self.shared.warm_up()

    def check_prompt(self, prompt: str, guild_id: int | None = None) -> Verdict:
        """The verdict on a prompt in a server (check_text for the prompt)."""
        return self.check_text(prompt, PROMPT, guild_id)

    def check_text(self, text: str, field: str = PROMPT, guild_id: int | None = None, *,
                   optional: bool = False) -> Verdict:
        """The shared gate's verdict on one piece of user text, then (when it allows) the server's own list's."""
        verdict = self.shared.check_text(text, field, optional=optional)
        gate = self._gate(guild_id) if verdict.allowed else None
        if gate is None:
            return verdict
        return gate.check_text(text, field, optional=optional)

    def explain(self, prompt: str, guild_id: int | None = None) -> DenylistReport:
        """Which shared and server entries fire on a prompt, and which allowlist phrases overrode some."""
        shared = self.shared.denylist.explain(prompt)
        gate = self._gate(guild_id)
        if gate is None:
            return shared
        own = gate.denylist.explain(prompt)
        return DenylistReport(shared.denied + own.denied, shared.allowed + own.allowed,
                              shared.overridden + own.overridden)
