"""/videomod operator as a stranger operator uses it, end to end on the fake Discord (and the shared list's edits
without Discord): undoing what was never there, entries that the list's own allowlist would cancel, a rule typed with
its parts in another order, audit logs of servers the bot is in, left, or never was in, and the servers list beside
ALLOWED_GUILD_IDS. Each test reads what the operator sees and what the database keeps."""

from __future__ import annotations

from typing import Any

import pytest

from bot.errors import InvalidInput
from storage import GLOBAL
from tests.bot.conftest import Stacks
from tests.bot.moderation import test_moderation
from tests.bot.moderation.test_moderation import MOD, Lists
from tests.bot.ui.test_e2e_tenancy import command, two_servers, video
from tests.fakediscord import gateway

pytestmark = pytest.mark.usefixtures("logged_errors")
lists = test_moderation.lists  # the shared list holding “nude”, its gates and audit log, without Discord


# --- caps across every server --------------------------------------------------------------------------------------


async def test_resetting_the_usage_of_someone_without_a_cap_is_refused_and_keeps_nothing(stacks: Stacks, scripted):
    w = two_servers(stacks.fake)
    async with stacks.run(lambda device: scripted, operator_user_ids=w.mallory.id) as stack:
        fake = stack.fake
        answer = await command(fake, "videomod operator quota-reset", w.mallory, w.a, user=w.bob)
        kept = await stack.moderation.repo.quota_override(w.bob.id, guild_id=GLOBAL)
        audit = await stack.moderation.repo.latest_audit(5, guild_id=GLOBAL)

    assert answer.content == (f"<@{w.bob.id}> has no cap across every server and no videos counted in direct "
                              "messages today (UTC day), so there is nothing to reset: each server's moderators give "
                              "a fresh allowance there with `/videomod quota reset`.")  # was "Usage reset", and
    #                                                                             nothing was
    assert kept is None and audit == []


# --- the shared list: entries its own allowlist would cancel, and rules typed in another order ----------------------


async def test_a_deny_entry_the_lists_allowlist_lets_through_is_refused_before_it_is_stored(lists: Lists):
    await lists.edits.add(MOD, "nude beach volleyball", "allow", "allow", guild_id=GLOBAL)
    with pytest.raises(InvalidInput) as error:
        await lists.edits.add(MOD, "Nude Beach Volleyball finals", "sexual", guild_id=GLOBAL)

    assert error.value.message == ("“nude beach volleyball finals” would refuse nothing: “nude beach volleyball” on "
                                   "the shared allowlist lets it through wherever it appears; remove that phrase "
                                   "first (/videomod operator allowlist-remove).")
    assert lists.allowed("the nude beach volleyball finals", 600)  # as it was: nothing was added
    assert [e.pattern for e in lists.edits.entries("deny", guild_id=GLOBAL)] == ["nude"]
    assert [row.action for row in await lists.mods.latest_audit(guild_id=GLOBAL)] == ["allowlist.add"]


async def test_an_allowlist_phrase_that_would_cancel_a_deny_entry_of_its_list_is_refused(lists: Lists):
    await lists.edits.add(MOD, "melting clocks", "violence", guild_id=GLOBAL)
    await lists.edits.add(MOD, "exploding kittens", "violence", guild_id=600)  # a server's own
    with pytest.raises(InvalidInput) as shared:
        await lists.edits.add(MOD, "melting", "allow", "allow", guild_id=GLOBAL)
    with pytest.raises(InvalidInput) as own:
        await lists.edits.add(MOD, "exploding kittens", "allow", "allow", guild_id=600)
    wider = await lists.edits.add(MOD, "melting clocks museum", "allow", "allow", guild_id=GLOBAL)  # its use

    assert shared.value.message == ("“melting” would let through every prompt “melting clocks” on the shared denylist "
                                    "refuses, so that entry would refuse nothing; to stop refusing it, remove it "
                                    "(/videomod operator denylist-remove).")
    assert own.value.message.endswith("on this server's denylist refuses, so that entry would refuse nothing; to stop "
                                      "refusing it, remove it (/videomod denylist remove).")
    assert not lists.allowed("two melting clocks", 600) and not lists.allowed("exploding kittens", 600)
    assert wider.pattern == "melting clocks museum" and lists.allowed("the melting clocks museum", 600)


async def test_a_rule_with_its_parts_in_another_order_is_the_same_rule(lists: Lists):
    await lists.edits.add(MOD, "moon landing + staged", "misinformation", guild_id=GLOBAL)
    with pytest.raises(InvalidInput) as shared:
        await lists.edits.add(MOD, "Staged + Moon Landing", "misinformation", guild_id=GLOBAL)
    with pytest.raises(InvalidInput) as own:
        await lists.edits.add(MOD, "staged + moon landing", "misinformation", guild_id=600)

    message = ("“staged + moon landing” is already on the shared denylist as “moon landing + staged” (the parts of "
               "a + b may come in any order); nothing to add.")
    assert shared.value.message == own.value.message == message
    assert [e.pattern for e in lists.edits.entries("deny", guild_id=GLOBAL)] == ["nude", "moon landing + staged"]
    assert lists.edits.entries(guild_id=600) == []
    assert await lists.edits.remove(MOD, "moon landing + staged", guild_id=GLOBAL)
    assert lists.allowed("the moon landing was staged", 600)  # one removal lifts the rule: no twin is left


# --- audit logs ----------------------------------------------------------------------------------------------------


async def test_the_audit_of_a_server_names_whose_log_it_is_and_an_id_that_is_no_server_is_refused(stacks: Stacks,
                                                                                                  scripted):
    w = two_servers(stacks.fake)
    async with stacks.run(lambda device: scripted, operator_user_ids=w.mallory.id) as stack:
        fake = stack.fake
        await command(fake, "videomod block", w.mallory, w.b, user=w.bob, reason="spam in B")
        await command(fake, "videomod operator block", w.mallory, w.a, user=w.dave, reason="spam everywhere")
        operators = await command(fake, "videomod operator audit", w.mallory, w.a)
        in_b = await command(fake, "videomod operator audit", w.mallory, w.a, server=str(w.b.id))
        quiet_a = await command(fake, "videomod operator audit", w.mallory, w.b, server=str(w.a.id))
        a_channel = await command(fake, "videomod operator audit", w.mallory, w.a, server=str(w.a_art.id))
        await fake.kick(w.b)
        left_b = await command(fake, "videomod operator audit", w.mallory, w.a, server=str(w.b.id))

    assert operators.content.startswith("**Audit log** of the bot's operators, newest first\n")
    assert "spam everywhere" in operators.content and "spam in B" not in operators.content
    assert in_b.content.startswith(f"**Audit log** of Server B (`{w.b.id}`), newest first\n")
    assert "spam in B" in in_b.content
    assert quiet_a.content == f"The audit log of Test Guild (`{w.a.id}`) is empty."
    assert a_channel.content == (f"The bot is not in server `{w.a_art.id}`, and no audit entry names it: use "
                                 "an id `/videomod operator servers` lists (leave server out for the operators' own "
                                 "log).")  # was "The audit log is empty.", as if a server had none
    assert left_b.content.startswith(f"**Audit log** of server `{w.b.id}` (the bot is no longer in it), newest first")


# --- the servers list ----------------------------------------------------------------------------------------------


async def test_servers_not_on_allowed_guild_ids_are_marked_in_the_servers_list(stacks: Stacks, scripted,
                                                                                logged_errors):
    w = two_servers(stacks.fake)
    typo = w.a.id + 1  # lists none of the bot's servers: it stays in every one (and logs an ERROR)
    logged_errors.expect("lists none of the servers the bot is in")
    async with stacks.run(lambda device: scripted, operator_user_ids=w.mallory.id,
                          allowed_guild_ids=str(typo)) as stack:
        listed = await command(stack.fake, "videomod operator servers", w.mallory, w.a)

    lines = listed.content.splitlines()
    assert lines[1].endswith("no requests · ⚠️ not on ALLOWED_GUILD_IDS")
    assert lines[2].endswith("no requests · ⚠️ not on ALLOWED_GUILD_IDS")
    assert lines[-1] == f"-# ALLOWED_GUILD_IDS: `{typo}`"


async def test_a_server_still_unavailable_after_the_start_is_listed_by_id_with_a_word_for_its_name(stacks: Stacks,
                                                                                                  scripted,
                                                                                                  monkeypatch):
    w = two_servers(stacks.fake)
    whole = gateway.guild_create_payload

    def held_back(guild: Any, *args: Any) -> dict[str, Any]:  # B's GUILD_CREATE held back: a Discord outage
        return {"id": str(guild.id), "unavailable": True} if guild is w.b else whole(guild, *args)

    monkeypatch.setattr(gateway, "guild_create_payload", held_back)
    async with stacks.run(lambda device: scripted, operator_user_ids=w.mallory.id) as stack:
        listed = await command(stack.fake, "videomod operator servers", w.mallory, w.a)

    assert f"• (unavailable: name not known yet) · `{w.b.id}` · no requests" in listed.content.splitlines()


async def test_the_bots_default_set_by_an_operator_can_be_cleared_back_to_the_settings(stacks: Stacks, scripted):
    w = two_servers(stacks.fake)
    async with stacks.run(lambda device: scripted, operator_user_ids=w.mallory.id, quota_default=2) as stack:
        fake = stack.fake
        await command(fake, "videomod operator quota-default", w.mallory, w.a, limit=0, period="hour")
        refused = await video(fake, "a red kite", w.bob, w.a)
        cleared = await command(fake, "videomod operator quota-default-clear", w.mallory, w.a)
        again = await command(fake, "videomod operator quota-default-clear", w.mallory, w.a)
        made = await video(fake, "a red kite", w.bob, w.a)
        shown = await command(fake, "videomod operator quota-show", w.mallory, w.a)

    assert refused.ephemeral and refused.content.startswith("Your video quota is 0 per hour")
    assert cleared.content == ("The bot's default quota set with quota-default was removed; QUOTA_DEFAULT and "
                               "QUOTA_PERIOD apply: 2 videos per day.")  # was: no way back but setting it again
    assert again.content.startswith("No default quota was set with quota-default; QUOTA_DEFAULT")
    assert not made.ephemeral
    assert "Server default: 2 videos (the bot's)" in shown.content
