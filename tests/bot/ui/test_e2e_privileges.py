"""Privilege escalation, end to end: a member without moderator rights gets no /videomod command (showcase review
included) even when a server admin shows them the commands, and nobody can cancel, delete, edit or reroll someone
else's job, nor submit someone else's edit form."""

from __future__ import annotations

from typing import Any

import pytest

from storage import GLOBAL, JobState
from storage.records import ShowcaseState
from tests.bot.conftest import Stack, Stacks
from tests.bot.helpers import InstantPipeline, has_video, required, subcommands, video
from tests.fakediscord import FakeUser

pytestmark = pytest.mark.usefixtures("logged_errors")

NOT_A_MODERATOR = "is for moderators only (Manage Server permission or the moderator role)."
NOT_AN_OPERATOR = "is for the bot's operators only; a server's moderators use /videomod."
NOT_YOURS = "Job #1 is not yours; only the person who asked for it can do that."


async def moderation_state(stack: Stack, user: FakeUser, guild_id: int) -> tuple[Any, ...]:
    """Everything a /videomod command could change in a server, and above the servers."""
    repo, servers = stack.moderation.repo, stack.bot.showcase.servers
    assert servers is not None
    denylist = [(row.pattern, row.kind, row.guild_id) for row in await stack.repo.list_denylist()]
    per_server = [(await repo.active_blocks(guild_id=scope), await repo.channel_rules([scope]),
                   await repo.role_quotas(guild_id=scope), await repo.quota_override(user.id, guild_id=scope),
                   await stack.moderation.default_quota(scope)) for scope in (guild_id, GLOBAL)]
    return (denylist, per_server, await stack.bot.showcase.repo.pending(guild_id=guild_id),
            await servers.presets(guild_id), await servers.showcase_channel(guild_id))


async def test_no_videomod_command_works_for_a_member_without_moderator_rights(stacks: Stacks):
    async with stacks.run(lambda device: InstantPipeline()) as stack:
        fake = stack.fake
        eve, bob = fake.make_user(name="eve"), fake.make_user(name="bob")
        result = await (await video(fake, "a kite over a beach", user=bob)).wait_followup(has_video)
        await (await fake.click(result, "video:showcase:1", user=bob)).wait_answer()  # anyone may nominate
        before = await moderation_state(stack, bob, fake.guild.id)
        paths = subcommands(fake.find_command("videomod", fake.guild))
        answers = {path: await (await fake.slash(path, required(fake, options, bob), user=eve)).wait_answer()
                   for path, options in paths}
        after = await moderation_state(stack, bob, fake.guild.id)
        audit = await stack.moderation.repo.latest_audit(len(paths) + 5, guild_id=fake.guild.id)
        operators = await stack.moderation.repo.latest_audit(len(paths) + 5, guild_id=GLOBAL)
        entry = await stack.bot.showcase.repo.get(1)

    assert {"videomod block", "videomod quota set", "videomod denylist add", "videomod showcase approve",
            "videomod showcase reject"} <= {path for path, _ in paths}
    for path, answer in answers.items():
        refusal = NOT_AN_OPERATOR if path.startswith("videomod operator") else NOT_A_MODERATOR
        assert answer.ephemeral and answer.content == f"/{path} {refusal}", path
    assert after == before and entry.state == ShowcaseState.PENDING
    server_paths = [path for path, _ in paths if not path.startswith("videomod operator")]
    assert sorted((row.actor_id, row.action, row.allowed) for row in audit) == sorted(
        (eve.id, f"/{path}", False) for path in server_paths)
    assert len(operators) == len(paths) - len(server_paths) > 10  # the operators' log has the rest


async def test_nobody_can_cancel_someone_elses_running_or_queued_job(stacks: Stacks, scripted):
    running = scripted.gate("a long train journey")
    async with stacks.run(lambda device: scripted) as stack:
        fake = stack.fake
        bob, eve = fake.make_user(name="bob"), fake.make_user(name="eve")
        first = await video(fake, "a long train journey", user=bob)
        await first.wait_original(lambda m: m.content.startswith("Starting"))
        second = await video(fake, "a short boat trip", user=bob)
        await second.wait_original(lambda m: m.content.startswith("Queued"))
        tries = [await (await fake.slash("cancel", options, user=eve)).wait_answer()
                 for options in ({"job": 1}, {"job": 2}, {})]
        states = [job.state for job in await stack.jobs()]
        running.release(100)
        await first.wait_followup(has_video)
        await second.wait_followup(has_video)

    assert [t.content for t in tries] == ["Job #1 is not yours; you can only cancel your own videos.",
                                          "Job #2 is not yours; you can only cancel your own videos.",
                                          "You have no queued or running videos to cancel."]
    assert all(t.ephemeral for t in tries) and states == [JobState.RUNNING, JobState.QUEUED]


async def test_someone_elses_edit_form_cannot_be_submitted_and_stays_usable_for_its_owner(stacks: Stacks):
    async with stacks.run(lambda device: InstantPipeline()) as stack:
        fake = stack.fake
        bob, eve = fake.make_user(name="bob"), fake.make_user(name="eve")
        result = await (await video(fake, "a hot air balloon over hills", user=bob)).wait_followup(has_video)
        shown = await fake.click(result, "video:edit:1", user=bob)
        await shown.wait_modal()
        forged = await fake.submit_modal("video:edit-prompt:1", {"prompt": "a balloon on fire"}, user=eve,
                                         shown_by=shown)  # discord.py routes a form by its custom_id alone
        refusal = await forged.wait_answer()
        own = await fake.submit_modal("video:edit-prompt:1", {"prompt": "a balloon over a lake"}, user=bob,
                                      shown_by=shown)
        edited = await own.wait_followup(has_video)
        jobs = await stack.jobs()

    assert refusal.ephemeral and refusal.content == NOT_YOURS + "\nYour prompt, to try again:\n> a balloon on fire"
    assert "> a balloon over a lake" in edited.content
    assert [(job.user_id, job.prompt) for job in jobs] == [(bob.id, "a hot air balloon over hills"),
                                                           (bob.id, "a balloon over a lake")]
