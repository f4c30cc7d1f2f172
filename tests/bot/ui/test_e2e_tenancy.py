"""Every server its own, end to end: the real discord.py client on the fake Discord with two servers, A and B, and
people who are members of both. A moderator of B — Manage Server there — can change, list or read nothing of A's
through any /videomod subcommand; quotas, blocks, denylist additions, channel rules, the showcase and the /video
presets stay apart; the shared denylist is out of a server's reach; the bot's operators act on every server; a
server not on ALLOWED_GUILD_IDS is left at start and when the bot is invited to it."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

import pytest

from bot.moderation.gates import ServerGates
from storage import GLOBAL, JobState
from storage.records import ShowcaseState
from tests.bot.conftest import Stack, Stacks
from tests.bot.helpers import WAIT, has_video, required, subcommands
from tests.fakediscord import FakeChannel, FakeDiscord, FakeGuild, FakeMessage, FakeRole, FakeUser

pytestmark = pytest.mark.usefixtures("logged_errors")

A_PROMPT = "a lighthouse of server A at dusk"
A_MARKERS = ("exploding kittens", "spamming in A", "blurry-server-a", A_PROMPT)  # text only A's records hold


@dataclass
class World:
    """Two servers; alice moderates A, mallory moderates B; bob, carol and dave are members of both."""

    fake: FakeDiscord
    a: FakeGuild
    b: FakeGuild
    a_art: FakeChannel  # a second channel of A
    a_showcase: FakeChannel
    b_showcase: FakeChannel
    a_helpers: FakeRole  # a role of A without moderator rights
    alice: FakeUser
    mallory: FakeUser
    bob: FakeUser
    carol: FakeUser
    dave: FakeUser

    @property
    def b_moderators(self) -> FakeRole:
        return self.b.role("Moderator")


def two_servers(fake: FakeDiscord) -> World:
    """Server B and the people, added before the bot connects (A is the fake's default guild)."""
    a, b = fake.guild, fake.add_guild("Server B", channels=["lobby", "b-showcase"], moderator_role="Moderator")
    a_art, a_showcase = fake.add_channel("art"), fake.add_channel("a-showcase")
    a_helpers = fake.add_role("A helpers")
    alice = fake.make_user(name="alice", roles=[fake.moderator_role])
    mallory = fake.make_user(name="mallory")  # a plain member of A
    fake.add_member(mallory, b, roles=[b.role("Moderator")])  # Manage Server in B
    people = [fake.make_user(name=name) for name in ("bob", "carol", "dave")]
    for person in (alice, *people):
        fake.add_member(person, b)
    return World(fake, a, b, a_art, a_showcase, b.channels[1], a_helpers, alice, mallory, *people)


async def command(fake: FakeDiscord, path: str, actor: FakeUser, guild: FakeGuild, /, **options: Any) -> FakeMessage:
    """Run a slash command as `actor` in `guild` and return its (private) answer."""
    return await (await fake.slash(path, options, user=actor, guild=guild)).wait_answer()


async def video(fake: FakeDiscord, prompt: str, user: FakeUser, guild: FakeGuild,
                channel: FakeChannel | None = None) -> FakeMessage:
    """Run /video in `guild` (its first channel unless given) and return its answer once it says more than
    "thinking" (queued, refused, a video)."""
    handle = await fake.slash("video", {"prompt": prompt, "aspect": "tiny"}, user=user, guild=guild, channel=channel)
    return await handle.wait_answer(lambda m: not m.loading and m.content != "")


async def fill_server_a(stack: Stack, w: World) -> FakeMessage:
    """A's moderator sets every kind of record of A; bob's video in A is nominated. Returns that result."""
    fake, a, alice = stack.fake, w.a, w.alice
    for path, options in [
        ("videomod quota set", {"user": w.bob, "limit": 3}),
        ("videomod quota default", {"limit": 7, "period": "week"}),
        ("videomod quota default", {"limit": 9, "role": w.a_helpers}),
        ("videomod block", {"user": w.carol, "reason": "spamming in A"}),
        ("videomod channel deny", {"channel": w.a_art}),
        ("videomod denylist add", {"pattern": "exploding kittens", "category": "violence"}),
        ("videomod allowlist add", {"phrase": "exploding kittens cake"}),
        ("videomod defaults set", {"negative": "blurry-server-a", "steps": 2}),
        ("videomod showcase channel", {"channel": w.a_showcase}),
    ]:
        answer = await command(fake, path, alice, a, **options)
        assert "moderators only" not in answer.content and "is not" not in answer.content, (path, answer.content)
    result = await (await fake.slash("video", {"prompt": A_PROMPT, "aspect": "tiny"}, user=w.bob,
                                     guild=a)).wait_followup(has_video)
    nominated = await (await fake.click(result, "video:showcase:1", user=alice)).wait_answer()
    assert nominated.content.startswith("⭐ Job #1 is nominated"), nominated.content
    return result


async def records_of(stack: Stack, guild_id: int, people: list[FakeUser]) -> tuple[Any, ...]:
    """Every record of one server (GLOBAL: the shared ones) that a /videomod command reads or changes."""
    repo, servers = stack.moderation.repo, stack.bot.showcase.servers
    assert servers is not None
    return (
        [(row.pattern, row.kind) for row in await stack.repo.list_denylist(guild_ids=[guild_id])],
        await repo.active_blocks(guild_id=guild_id), await repo.channel_rules([guild_id]),
        await repo.role_quotas(guild_id=guild_id),
        [await repo.quota_override(person.id, guild_id=guild_id) for person in people],
        await stack.moderation.default_quota(guild_id), await repo.latest_audit(100, guild_id=guild_id),
        await stack.bot.showcase.repo.pending(guild_id=guild_id), await servers.presets(guild_id),
        await servers.showcase_channel(guild_id), stack.bot.service.gate.own_entries(guild_id),  # type: ignore[union-attr]
    )


def shown(message: FakeMessage) -> str:
    """All a member can read of an answer: its text and its attached files."""
    return message.content + "".join(attachment.data.decode(errors="replace") for attachment in message.attachments)


async def test_a_moderator_of_server_b_can_change_list_or_read_nothing_of_server_a(stacks: Stacks, scripted):
    w = two_servers(stacks.fake)
    async with stacks.run(lambda device: scripted) as stack:
        fake = stack.fake
        await fill_server_a(stack, w)
        people = [w.alice, w.bob, w.carol, w.mallory]
        before = [await records_of(stack, scope, people) for scope in (w.a.id, GLOBAL)]
        paths = subcommands(fake.find_command("videomod", fake.guild))
        in_b = {path: await command(fake, path, w.mallory, w.b, **required(
            fake, options, w.bob, channel=w.b.channels[0], role=w.b_moderators)) for path, options in paths}
        forged = [await command(fake, path, w.mallory, w.b, **options) for path, options in [
            ("videomod channel allow", {"channel": w.a_art}),  # A's channels, roles and jobs, named from B
            ("videomod quota default", {"limit": 10_000, "role": w.a_helpers}),
            ("videomod showcase approve", {"job": 1}),
            ("videomod showcase channel", {"channel": w.a_showcase}),
            ("videomod denylist remove", {"pattern": "exploding kittens"}),
        ]]
        after = [await records_of(stack, scope, people) for scope in (w.a.id, GLOBAL)]
        in_a = {path: await command(fake, path, w.mallory, w.a, **required(fake, options, w.bob))
                for path, options in paths}
        tried_in_a = await records_of(stack, w.a.id, people)
        a_art_works = await video(fake, "a quiet pond", w.dave, w.a, channel=w.a_art)

    assert after[0] == before[0]  # A's records, every one of them
    audit = 6  # the shared records are unchanged too; the operators' audit log gained the refused attempts
    assert after[1][:audit] + after[1][audit + 1:] == before[1][:audit] + before[1][audit + 1:]
    new_rows = [row for row in after[1][audit] if row not in before[1][audit]]
    assert new_rows and {(row.actor_id, row.allowed) for row in new_rows} == {(w.mallory.id, False)}
    assert len(paths) > 30 and {"videomod defaults set", "videomod showcase approve", "videomod operator block",
                                "videomod denylist list", "videomod stats", "videomod audit"} <= {p for p, _ in paths}
    for path, answer in in_b.items():  # B's own records, and nothing of A's
        assert answer.ephemeral and not any(marker in shown(answer) for marker in A_MARKERS), (path, shown(answer))
        assert str(w.alice.id) not in answer.content and str(w.carol.id) not in answer.content, path
    assert in_b["videomod stats"].content.splitlines()[1] == "Requests: 0"
    assert in_b["videomod showcase pending"].content == "No nominations are waiting."
    assert "Server default: 20 videos (the bot's)" in in_b["videomod quota show"].content
    assert in_b["videomod operator servers"].content.startswith("/videomod operator servers is for the bot's operators")
    assert [answer.content for answer in forged] == [
        f"<#{w.a_art.id}> is not a channel of this server: pick one of its own.",
        f"<@&{w.a_helpers.id}> is not a role of this server: pick one of its own.",
        "Job #1 has not been nominated for the showcase.",
        f"<#{w.a_showcase.id}> is not a channel of this server: pick one of its own.",
        "This server's denylist has no entry “exploding kittens”; `/videomod denylist list` shows them all.",
    ]
    assert tried_in_a[:audit] + tried_in_a[audit + 1:] == before[0][:audit] + before[0][audit + 1:]
    attempts = [row for row in tried_in_a[audit] if row not in before[0][audit]]  # A's log shows the refusals
    assert len(attempts) == len([p for p, _ in paths if "operator" not in p])
    assert {(row.actor_id, row.allowed) for row in attempts} == {(w.mallory.id, False)}
    for path, answer in in_a.items():  # in A, mallory is a plain member
        assert answer.ephemeral and ("is for moderators only" in answer.content
                                     or "is for the bot's operators only" in answer.content), (path, answer.content)
    assert a_art_works.ephemeral and a_art_works.content == "Videos cannot be made in this channel."  # A's rule holds


async def test_quotas_blocks_denylist_additions_channel_rules_and_presets_stay_in_their_server(stacks: Stacks,
                                                                                             scripted):
    w = two_servers(stacks.fake)
    async with stacks.run(lambda device: scripted) as stack:
        fake, a, b = stack.fake, w.a, w.b
        await command(fake, "videomod quota set", w.alice, a, user=w.bob, limit=1)
        await command(fake, "videomod block", w.mallory, b, user=w.dave, reason="spam in B")
        await command(fake, "videomod denylist add", w.alice, a, pattern="exploding kittens", category="violence")
        await command(fake, "videomod channel deny", w.mallory, b, channel=b.channels[0])
        await command(fake, "videomod defaults set", w.alice, a, steps=2, negative="blurry", aspect="16:9")
        answers = {
            "bob in A": await video(fake, "a red kite", w.bob, a),
            "bob in A again": await video(fake, "a blue kite", w.bob, a),
            "dave in B": await video(fake, "a green kite", w.dave, b, channel=w.b_showcase),
            "dave in A": await video(fake, "a yellow kite", w.dave, a),
            "kittens in A": await video(fake, "a herd of exploding kittens", w.carol, a),
            "kittens in B": await video(fake, "a herd of exploding kittens", w.carol, b, channel=w.b_showcase),
            "B's lobby": await video(fake, "a grey kite", w.carol, b),
        }
        preset_a = await (await fake.slash("video", {"prompt": "a pink kite"}, user=w.alice, guild=a)).wait_answer()
        preset_b = await (await fake.slash("video", {"prompt": "a pink kite", "aspect": "tiny"}, user=w.alice,
                                           guild=b, channel=w.b_showcase)).wait_answer()
        pinks = [job for job in await stack.jobs() if job.prompt == "a pink kite"]
        quota_in_b = await command(fake, "quota", w.bob, b)
        bobs = [job for job in await stack.jobs() if job.user_id == w.bob.id]

    refused = {name for name, answer in answers.items() if answer.ephemeral}
    assert refused == {"bob in A again", "dave in B", "kittens in A", "B's lobby"}
    assert answers["dave in B"].content.startswith("You are blocked from making videos: spam in B.")
    assert "violent or graphic content" in answers["kittens in A"].content
    assert not preset_a.ephemeral and not preset_b.ephemeral
    assert sorted((job.guild_id, job.params["steps"], job.negative_prompt, job.params["aspect"]) for job in pinks) \
        == sorted([(a.id, 2, "blurry", "16:9"), (b.id, 3, "", "tiny")])  # A's presets; B gets the bot's
    assert "0 of 20 videos used today" in quota_in_b.content  # bob's video in A does not count in B
    assert [(job.guild_id, job.state == JobState.REFUSED) for job in bobs] == [(a.id, False), (a.id, True)]


async def test_each_servers_showcase_is_its_own(stacks: Stacks, scripted):
    w = two_servers(stacks.fake)
    async with stacks.run(lambda device: scripted, showcase_channel_id=w.a_showcase.id) as stack:
        fake, a, b = stack.fake, w.a, w.b
        in_a = await (await fake.slash("video", {"prompt": "a cat in server A", "aspect": "tiny"}, user=w.bob,
                                       guild=a)).wait_followup(has_video)
        in_b = await (await fake.slash("video", {"prompt": "a dog in server B", "aspect": "tiny"}, user=w.bob,
                                       guild=b)).wait_followup(has_video)
        for result, job in ((in_a, 1), (in_b, 2)):
            await (await fake.click(result, f"video:showcase:{job}", user=w.carol)).wait_answer()
        pending_b = await command(fake, "videomod showcase pending", w.mallory, b)
        steal = await command(fake, "videomod showcase approve", w.mallory, b, job=1)
        b_default = await command(fake, "videomod showcase approve", w.mallory, b, job=2)
        await command(fake, "videomod showcase channel", w.mallory, b, channel=w.b_showcase)
        await command(fake, "videomod showcase reject", w.mallory, b, job=1, reason="not ours")
        approved_a = await command(fake, "videomod showcase approve", w.alice, a, job=1)
        entries = [await stack.bot.showcase.repo.get(job) for job in (1, 2)]
        posts = {channel.name: [m.content.split("\n")[0] for m in fake.messages.values()
                                if m.channel_id == channel.id and not m.deleted]
                 for channel in (w.a_showcase, w.b_showcase)}

    assert "a dog in server B" in pending_b.content and "a cat in server A" not in pending_b.content
    assert steal.content == "Job #1 has not been nominated for the showcase."
    assert b_default.content.startswith("Approved job #2. This server has no showcase channel")  # not A's default
    assert approved_a.content.startswith(f"Approved job #1. Posted in <#{w.a_showcase.id}>")
    assert [(e.guild_id, e.state) for e in entries] == [(a.id, ShowcaseState.APPROVED), (b.id, ShowcaseState.APPROVED)]
    assert posts == {"a-showcase": ["⭐ **Showcase** · job #1 · by bob"], "b-showcase": []}


async def test_the_shared_denylist_is_out_of_a_servers_reach_and_an_operator_acts_on_every_server(stacks: Stacks,
                                                                                                  scripted):
    w = two_servers(stacks.fake)
    operator = w.mallory  # the bot's operator happens to moderate B and be a plain member of A
    async with stacks.run(lambda device: scripted, operator_user_ids=operator.id) as stack:
        fake, a, b = stack.fake, w.a, w.b
        removal = await command(fake, "videomod denylist remove", w.alice, a, pattern="nude")
        still_refused = await video(fake, "a nude statue in a museum", w.bob, a)
        listing = await command(fake, "videomod denylist list", w.alice, a)
        servers = await command(fake, "videomod operator servers", operator, a)
        await command(fake, "videomod operator block", operator, b, user=w.dave, reason="abuse everywhere")
        await command(fake, "videomod operator quota-default", operator, a, limit=1)
        await command(fake, "videomod operator denylist-add", operator, b, pattern="melting clocks",
                      category="violence")
        shared_removal = await command(fake, "videomod operator denylist-remove", operator, a, pattern="nude")
        answers = {
            "dave in A": await video(fake, "a paper boat", w.dave, a),
            "dave in B": await video(fake, "a paper boat", w.dave, b),
            "clocks in A": await video(fake, "two melting clocks", w.carol, a),
            "statue in B": await video(fake, "a nude statue in a museum", w.carol, b),
            "carol in B again": await video(fake, "a paper plane", w.carol, b),
        }
        operators_audit = await command(fake, "videomod operator audit", operator, a)
        a_audit = await command(fake, "videomod operator audit", operator, a, server=str(a.id))

    assert removal.ephemeral and removal.content.startswith(
        "“nude” is on the shared denylist, which holds in every server and only the bot's operators can change")
    assert still_refused.ephemeral and "sexual content is not allowed" in still_refused.content
    assert "The shared list (every server; only the bot's operators change it)" in shown(listing)
    assert "Test Guild" in servers.content and "Server B" in servers.content
    assert shared_removal.content.startswith("Removed “nude” from the shared denylist")
    refused = {name for name, answer in answers.items() if answer.ephemeral}
    assert refused == {"dave in A", "dave in B", "clocks in A", "carol in B again"}  # the bot's default is 1 now
    assert answers["dave in A"].content.startswith("You are blocked from making videos: abuse everywhere.")
    assert "quota" in answers["carol in B again"].content
    assert "quota.default" in operators_audit.content and "denylist.remove" in operators_audit.content
    assert "denylist.remove" in a_audit.content and "⛔ refused" in a_audit.content  # alice's refused removal


async def test_every_command_an_operator_runs_with_valid_options_answers_without_an_error(stacks: Stacks, scripted):
    w = two_servers(stacks.fake)
    operator = w.alice  # the bot's operator, and A's moderator
    async with stacks.run(lambda device: scripted, operator_user_ids=operator.id) as stack:
        fake = stack.fake
        await fill_server_a(stack, w)
        names = ["videomod", *(c["name"] for c in fake.commands if c["name"] != "videomod")]
        paths = [(name, path, options) for name in names for path, options in subcommands(fake.find_command(name, w.a))]
        answers = {path: await command(fake, path, operator, w.a, **required(fake, options, w.bob))
                   for _, path, options in paths}
        capped = await command(fake, "videomod operator quota-set", operator, w.a, user=w.dave, limit=0)
        refused = await video(fake, "a paper boat", w.dave, w.a)
        shown_cap = await command(fake, "videomod operator quota-show", operator, w.a, user=w.dave)
        cleared = await command(fake, "videomod operator quota-clear", operator, w.a, user=w.dave)
        odd_servers = [await command(fake, "videomod operator audit", operator, w.a, server=server)
                       for server in ("²", "99999999999999999999", "0", " 12x ")]

    assert len(paths) > 40 and any(path.startswith("videomod operator quota-") for _, path, _ in paths)
    for path, answer in answers.items():
        assert not answer.content.startswith("Something went wrong"), (path, answer.content)
    assert capped.content.startswith(f"Cap set across every server.\n**Cap of <@{w.dave.id}> across every server**: "
                                     "0 of 0 videos used today")
    assert refused.ephemeral and "quota across every server is 0 per day" in refused.content
    assert shown_cap.content.count("across every server") == 1  # the cap once, then the quota in direct messages
    assert f"**In direct messages, video quota of <@{w.dave.id}>**" in shown_cap.content
    assert cleared.content.startswith(f"Cap removed.\n<@{w.dave.id}> has no cap across every server")
    for server, answer in zip(("²", "99999999999999999999", "0", "12x"), odd_servers, strict=True):
        assert answer.content.startswith(f"“{server}” is not a server id: use the number"), answer.content


async def test_removed_from_a_server_the_bot_cancels_its_jobs_and_serves_the_others(stacks: Stacks, scripted, caplog):
    w = two_servers(stacks.fake)
    caplog.set_level(logging.INFO, logger="bot")
    scripted.gate("a lantern in B")  # it never gets a step: it waits for one until it is cancelled
    async with stacks.run(lambda device: scripted) as stack:
        fake = stack.fake
        lantern = await video(fake, "a lantern in B", w.bob, w.b)
        await scripted.finished_step("a lantern in B", 0)
        await video(fake, "a kite in B", w.carol, w.b)
        in_a = await fake.slash("video", {"prompt": "a kite in A", "aspect": "tiny"}, user=w.dave, guild=w.a)
        await fake.kick(w.b)  # B's running job stops at once (it was waiting for its next step), A's job goes next
        delivered = await in_a.wait_followup(has_video)
        await fake.wait_for(lambda: "removed from the server" in lantern.content, what="the lantern's status to end")
        jobs = await stack.jobs()

    assert [(job.prompt, job.state) for job in jobs] == [
        ("a lantern in B", JobState.CANCELLED), ("a kite in B", JobState.CANCELLED), ("a kite in A", JobState.DONE)]
    assert delivered.attachments and "a kite in B" not in scripted.started
    assert lantern.content.endswith(f"✖ Job #{jobs[0].id} was cancelled: the bot was removed from the server it was "
                                    "asked in. Nothing was charged.")  # not "✖ Cancelled", as if bob had cancelled it
    assert f"removed from server Server B ({w.b.id}): cancelled 1 queued and 1 running jobs of it" in caplog.text


async def test_a_video_being_queued_as_the_bot_is_removed_from_its_server_is_cancelled_not_rendered(
        stacks: Stacks, scripted, caplog):
    """/video in B writes its row while the bot is removed from B: the removal's cancels look before the job is in the
    queue (found when /video began to defer before reading the server's presets); the job is cancelled once queued,
    never rendered, and nothing is answered in B."""
    w = two_servers(stacks.fake)
    caplog.set_level(logging.INFO, logger="bot")
    async with stacks.run(lambda device: scripted) as stack:
        fake, create, removed = stack.fake, stack.repo.create_job, asyncio.Event()
        writing, written = asyncio.Event(), asyncio.Event()
        cancel_server = stack.service.cancel_server

        async def held_create(*args: Any, **kwargs: Any) -> Any:
            writing.set()
            await written.wait()
            return await create(*args, **kwargs)

        async def cancelled_server(guild_id: int) -> tuple[int, int]:
            counts = await cancel_server(guild_id)
            removed.set()
            return counts

        stack.repo.create_job, stack.service.cancel_server = held_create, cancelled_server
        kite = await fake.slash("video", {"prompt": "a kite in B", "aspect": "tiny"}, user=w.carol, guild=w.b)
        await asyncio.wait_for(writing.wait(), WAIT)
        await fake.kick(w.b)
        await asyncio.wait_for(removed.wait(), WAIT)  # B's jobs cancelled: none was in the queue yet
        stack.repo.create_job = create
        written.set()
        in_a = await fake.slash("video", {"prompt": "a kite in A", "aspect": "tiny"}, user=w.dave, guild=w.a)
        await in_a.wait_followup(has_video)  # the worker is past anything queued before A's kite
        jobs = await stack.jobs()

    assert [(job.prompt, job.state) for job in jobs] == [("a kite in B", JobState.CANCELLED),
                                                         ("a kite in A", JobState.DONE)]
    assert "a kite in B" not in scripted.started and not (kite.answer and kite.answer.content)  # no "Queued" in B
    assert f"job {jobs[0].id} was queued as the bot was removed from server {w.b.id}: cancelled 1 queued" in caplog.text


async def test_removed_from_a_server_while_the_bot_was_down_its_restored_jobs_are_cancelled_once_servers_arrive(
        stacks: Stacks, scripted, caplog):
    w = two_servers(stacks.fake)
    caplog.set_level(logging.INFO, logger="bot")
    scripted.gate("a lantern in A")  # holds the worker: the others are still queued when the bot stops
    async with stacks.run(lambda device: scripted) as stack:
        await video(stack.fake, "a lantern in A", w.bob, w.a)
        await scripted.finished_step("a lantern in A", 0)
        await video(stack.fake, "a kite in B", w.carol, w.b)
        boat = await stack.fake.slash("video", {"prompt": "a boat in A", "aspect": "tiny"}, user=w.dave, guild=w.a)
        await boat.wait_answer(lambda m: m.content.startswith("Queued"))
    stacks.fake.leave(w.b.id)  # B's owner removes the bot while it is not running: no event will ever say so
    scripted.open("a lantern in A")
    scripted.gate("a kite in B")  # were it started before the servers arrive, it would wait there to be cancelled
    async with stacks.run(lambda device: scripted) as stack:
        await boat.wait_followup(has_video)
        jobs = await stack.jobs()

    assert [(job.prompt, job.state) for job in jobs] == [
        ("a lantern in A", JobState.DONE), ("a kite in B", JobState.CANCELLED), ("a boat in A", JobState.DONE)]
    assert f"not in server {w.b.id} since before the start: cancelled " in caplog.text


def recording_forgets(stacks: Stacks, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The servers whose own denylist gate is dropped from now on (ServerGates.forget_server), in order; each drop
    wakes the fake's waiters."""
    forgotten: list[int] = []
    forget = ServerGates.forget_server

    def forgetting(gates: ServerGates, guild_id: int) -> None:
        forget(gates, guild_id)
        forgotten.append(guild_id)
        stacks.fake.notify()

    monkeypatch.setattr(ServerGates, "forget_server", forgetting)
    return forgotten


async def test_removed_from_a_server_while_the_bot_was_down_its_denylist_gate_is_dropped_once_servers_arrive(
        stacks: Stacks, scripted, monkeypatch):
    w = two_servers(stacks.fake)
    scripted.gate("a lantern in A")  # holds the worker, across the restart too: B's job stays queued
    async with stacks.run(lambda device: scripted) as stack:
        await command(stack.fake, "videomod denylist add", w.mallory, w.b, pattern="exploding kittens",
                      category="violence")
        await video(stack.fake, "a lantern in A", w.bob, w.a)
        await scripted.finished_step("a lantern in A", 0)
        await video(stack.fake, "a kite in B", w.carol, w.b)
    stacks.fake.leave(w.b.id)  # removed while the bot is not running: no GUILD_DELETE will ever say so
    forgotten = recording_forgets(stacks, monkeypatch)
    async with stacks.run(lambda device: scripted) as stack:
        gates = stack.bot.service.gate  # built at the start with B's list, as for every server with one
        await stack.fake.wait_for(lambda: forgotten, what="the gate of the server left meanwhile to be dropped")
        kept = [entry.pattern for entry in gates.own_entries(w.b.id)]

    assert forgotten == [w.b.id] and w.b.id not in gates._gates  # what it remembered of B's prompts goes with it
    assert kept == ["exploding kittens"]  # invited back, B's list is there again


async def test_removed_while_the_bot_was_down_a_server_with_no_job_has_its_denylist_gate_dropped_too(stacks: Stacks,
                                                                                                     scripted,
                                                                                                     monkeypatch):
    w = two_servers(stacks.fake)
    async with stacks.run(lambda device: scripted) as stack:
        await command(stack.fake, "videomod denylist add", w.mallory, w.b, pattern="exploding kittens",
                      category="violence")
    stacks.fake.leave(w.b.id)  # no job of B's is queued or running: the sweep found nothing of B's to cancel
    forgotten = recording_forgets(stacks, monkeypatch)
    async with stacks.run(lambda device: scripted) as stack:
        gates = stack.bot.service.gate
        await stack.fake.wait_for(lambda: forgotten, what="B's gate to be dropped")
        assert forgotten == [w.b.id] and w.b.id not in gates.servers()
        assert [entry.pattern for entry in gates.own_entries(w.b.id)] == ["exploding kittens"]


async def test_a_server_not_on_the_allowlist_is_left_at_start_and_when_invited(stacks: Stacks, scripted, caplog):
    fake = stacks.fake
    stranger = fake.add_guild("Stranger's server")
    caplog.set_level(logging.INFO, logger="bot")
    async with stacks.run(lambda device: scripted, allowed_guild_ids=fake.guild.id) as stack:
        await fake.wait_for(lambda: stranger in fake.left, what="the bot leaving the stranger's server")
        removed = asyncio.ensure_future(stack.bot.wait_for("guild_remove", check=lambda g: g.name == "Invited later"))
        invited = await fake.invite("Invited later")
        await asyncio.wait_for(removed, WAIT)  # the gateway's GUILD_DELETEs arrive in order: the stranger's first
        still = [guild.id for guild in stack.bot.guilds]

    assert fake.left == [stranger, invited] and still == [fake.guild.id]
    assert f"leaving server Stranger's server ({stranger.id}) at start: it is not in ALLOWED_GUILD_IDS" in caplog.text
    assert f"leaving server Invited later ({invited.id}) when invited: it is not in ALLOWED_GUILD_IDS" in caplog.text
