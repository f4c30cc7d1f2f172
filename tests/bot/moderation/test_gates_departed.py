"""A server's own denylist gate once the bot leaves the server: the gate, and what it remembers of the prompts it read
(megabytes on a busy server), go when Discord says the bot was removed (on_guild_remove); the server's entries stay,
so a server that invites the bot back has its list again. A server's gate remembers less than the shared one."""

import gc
import weakref

import pytest

from bot.moderation import gates as gates_module
from bot.moderation.gates import ServerGates
from bot.moderation.policy import DenylistEntry, PolicyGate
from tests.bot.conftest import Stacks
from tests.bot.helpers import WAIT

pytestmark = pytest.mark.usefixtures("logged_errors")

KITTENS = DenylistEntry("exploding kittens", "violence")


def _server_gates() -> ServerGates:
    return ServerGates(PolicyGate([DenylistEntry("nude", "sexual")], is_english=lambda text: True), {7: [KITTENS]})


def test_a_forgotten_servers_gate_is_freed_and_its_list_still_refuses_when_it_is_back():
    gates = _server_gates()
    assert not gates.check_prompt("a herd of exploding kittens", 7).allowed
    old = weakref.ref(gates._gates[7])

    gates.forget_server(7)
    gc.collect()
    freed = old() is None
    again = gates.check_prompt("a herd of exploding kittens", 7)  # invited back: its first prompt builds the gate

    assert freed
    assert (again.allowed, again.matched) == (False, "exploding kittens")
    assert gates.own_entries(7) == (KITTENS,)
    assert gates.check_prompt("a herd of exploding kittens", 8).allowed  # another server's list is its own


def test_forgetting_a_server_without_a_list_of_its_own_changes_nothing():
    gates = _server_gates()
    gates.forget_server(8)

    assert not gates.check_prompt("a herd of exploding kittens", 7).allowed
    assert gates.check_prompt("a herd of exploding kittens", 8).allowed


def test_a_servers_gate_remembers_at_most_its_bound_of_readings(monkeypatch):
    monkeypatch.setattr(gates_module, "SERVER_REMEMBERED_FORMS", 50)
    gates = _server_gates()
    words = [f"qword{i}" for i in range(300)]

    allowed = [gates.check_prompt(" ".join(words[i:i + 10]), 7).allowed for i in range(0, len(words), 10)]
    terms = gates._gates[7].denylist._terms
    memories = [terms._readings, terms._near_forms, terms._prefix_readings, terms._strict_readings, terms._patterns]

    assert all(allowed)
    assert 0 < max(map(len, memories)) <= 50
    assert len(gates.shared.denylist._terms._readings) >= len(words)  # the shared gate keeps its own bound


async def test_removed_from_a_server_the_bot_drops_that_servers_gate(stacks: Stacks, scripted, monkeypatch):
    fake = stacks.fake
    other = fake.add_guild("Server B", moderator_role="Moderator")
    mod = fake.make_user(name="mod", roles=[other.role("Moderator")], guild=other)
    forgotten: list[int] = []
    forget = ServerGates.forget_server

    def forgetting(gates: ServerGates, guild_id: int) -> None:
        forget(gates, guild_id)
        forgotten.append(guild_id)
        fake.notify()

    monkeypatch.setattr(ServerGates, "forget_server", forgetting)
    async with stacks.run(lambda device: scripted) as stack:
        added = await (await fake.slash("videomod denylist add", {"pattern": "exploding kittens",
                                                                   "category": "violence"}, user=mod,
                                        guild=other)).wait_answer()
        gates = stack.bot.service.gate
        refused = gates.check_prompt("a herd of exploding kittens", other.id)
        old = weakref.ref(gates._gates[other.id])
        await fake.kick(other)  # GUILD_DELETE: on_guild_remove
        await fake.wait_for(lambda: forgotten, timeout=WAIT, what="the removed server's gate to be dropped")
        gc.collect()
        freed = old() is None
        entries = [entry.pattern for entry in gates.own_entries(other.id)]

    assert "exploding kittens" in added.content and not refused.allowed
    assert forgotten == [other.id] and freed
    assert entries == ["exploding kittens"]  # invited back, the server's list is there again
