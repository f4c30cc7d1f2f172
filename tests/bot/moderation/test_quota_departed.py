"""Quotas that outlive who they were for, end to end on the fake Discord: a role's default quota goes when Discord
deletes the role (or, deleted while the bot was not running, when its server arrives at the next start), and a
member who left the server keeps a personal quota that `quota show` and `quota clear` still reach."""

import pytest

from bot.moderation.rules import Moderation
from tests.bot.conftest import Stack, Stacks
from tests.bot.helpers import audit_actions, command, people

pytestmark = pytest.mark.usefixtures("logged_errors")


def recording_role_removals(stacks: Stacks, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The role ids whose default quota the bot removes from now on, in order, each once its removal is done, audit
    row included (each wakes the fake's waiters; recorded at the row's delete, a test read the audit log before the
    removal's row was written, now and then)."""
    removed: list[int] = []
    remove = Moderation.remove_role_default

    async def removing(moderation: Moderation, actor: int, role_id: int, *, guild_id: int) -> bool:
        found = await remove(moderation, actor, role_id, guild_id=guild_id)
        removed.append(role_id)
        stacks.fake.notify()
        return found

    monkeypatch.setattr(Moderation, "remove_role_default", removing)
    return removed


async def role_rows(stack: Stack) -> list[int]:
    return [row.role_id for row in await stack.moderation.repo.role_quotas(guild_id=stack.fake.guild.id)]


# --- a deleted role's default quota ----------------------------------------------------------------------------------


async def test_a_deleted_roles_default_quota_is_forgotten_and_no_longer_shown(stacks: Stacks, scripted,
                                                                              monkeypatch):
    artists, guests = stacks.fake.add_role("artists"), stacks.fake.add_role("guests")
    async with stacks.run(lambda device: scripted) as stack:
        fake = stack.fake
        mod, _ = people(fake)
        for role, limit in ((artists, 5), (guests, 1)):
            await command(fake, "videomod quota default", mod, limit=limit, role=role)
        removed = recording_role_removals(stacks, monkeypatch)
        await fake.delete_role(artists)  # GUILD_ROLE_DELETE
        await fake.wait_for(lambda: removed, what="the deleted role's default quota to be forgotten")
        shown = await command(fake, "videomod quota show", mod)
        rows = await role_rows(stack)
        [latest, *_] = await stack.moderation.repo.latest_audit(1, guild_id=fake.guild.id)

    assert removed == [artists.id] and rows == [guests.id]
    assert f"<@&{artists.id}>" not in shown.content and f"• <@&{guests.id}>: 1 video" in shown.content
    assert (latest.action, latest.target, latest.actor_id) == ("quota.default.remove", f"role:{artists.id}",
                                                               fake.bot_user.id)  # audited as the bot's removal


async def test_a_role_without_a_default_quota_deleted_changes_and_audits_nothing(stacks: Stacks, scripted,
                                                                                 monkeypatch):
    guests = stacks.fake.add_role("guests")
    async with stacks.run(lambda device: scripted) as stack:
        removed = recording_role_removals(stacks, monkeypatch)
        await stack.fake.delete_role(guests)
        await stack.fake.wait_for(lambda: removed, what="the bot to look for the deleted role's default quota")
        actions = await audit_actions(stack)

    assert removed == [guests.id] and actions == []


async def test_a_role_deleted_while_the_bot_was_down_loses_its_default_when_its_server_arrives(stacks: Stacks,
                                                                                                 scripted,
                                                                                                 monkeypatch):
    artists, guests = stacks.fake.add_role("artists"), stacks.fake.add_role("guests")
    async with stacks.run(lambda device: scripted) as stack:
        mod, _ = people(stack.fake)
        for role in (artists, guests, stack.fake.moderator_role):
            await command(stack.fake, "videomod quota default", mod, limit=2, role=role)
    await stacks.fake.delete_role(artists, away=True)  # no event tells the bot: it is not running
    removed = recording_role_removals(stacks, monkeypatch)
    async with stacks.run(lambda device: scripted) as stack:
        await stack.fake.wait_for(lambda: removed, what="the deleted role's default quota to be forgotten")
        shown = await command(stack.fake, "videomod quota show", mod)
        rows = await role_rows(stack)

    assert removed == [artists.id]  # the roles the server still has keep theirs
    assert sorted(rows) == sorted([guests.id, stacks.fake.moderator_role.id])
    assert f"<@&{artists.id}>" not in shown.content


# --- a member who left the server ------------------------------------------------------------------------------------


async def test_a_departed_members_personal_quota_is_shown_and_cleared_by_id(stacks: Stacks, scripted):
    async with stacks.run(lambda device: scripted) as stack:
        fake = stack.fake
        mod, bob = people(fake)
        await command(fake, "videomod quota set", mod, user=bob, limit=7)
        fake.remove_member(bob)  # a user option naming bob now resolves to a user without member data
        shown = await command(fake, "videomod quota show", mod, user=bob)
        cleared = await command(fake, "videomod quota clear", mod, user=bob)
        again = await command(fake, "videomod quota clear", mod, user=bob)
        override = await stack.moderation.repo.quota_override(bob.id, guild_id=fake.guild.id)
        actions = await audit_actions(stack)

    assert shown.content.splitlines()[0] == f"**Video quota of <@{bob.id}>** (not a member of this server now)"
    assert "7 left · limit from a personal limit" in shown.content
    assert cleared.content.startswith("Personal quota removed.\n")
    assert "limit from the bot's default" in cleared.content
    assert again.content.startswith(f"<@{bob.id}> had no personal quota here.\n")
    assert override is not None and override.max_videos is None
    assert actions[:2] == [("quota.clear", True), ("quota.set", True)]


@pytest.mark.parametrize(("path", "options"), [("videomod quota set", {"limit": 3}), ("videomod quota reset", {})])
async def test_a_new_limit_or_a_fresh_allowance_for_a_departed_member_is_refused_in_one_line(stacks: Stacks, scripted,
                                                                                             path, options):
    async with stacks.run(lambda device: scripted) as stack:
        fake = stack.fake
        mod, bob = people(fake)
        fake.remove_member(bob)
        answer = await command(fake, path, mod, user=bob, **options)
        override = await stack.moderation.repo.quota_override(bob.id, guild_id=fake.guild.id)
        actions = await audit_actions(stack)

    assert answer.ephemeral and answer.content == (f"<@{bob.id}> is not a member of this server (any more): pick one "
                                                   "of its members.")
    assert override is None and actions == []

