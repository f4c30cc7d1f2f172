"""The fake Discord drives the real, unmodified discord.py client: commands, components, reconnects, faults."""

import asyncio
import io

import aiohttp
import discord
import pytest
from discord import app_commands
from discord.ext import commands

from tests.fakediscord import BOT_TOKEN, FakeDiscord, action_row, button, running_bot

VIDEO = b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00" + bytes(range(256)) * 8  # MP4-looking bytes


class CountButton(discord.ui.DynamicItem[discord.ui.Button], template=r"test:btn:(?P<n>\d+)"):
    def __init__(self, n: int) -> None:
        super().__init__(discord.ui.Button(label=f"#{n}", custom_id=f"test:btn:{n}"))
        self.n = n

    @classmethod
    async def from_custom_id(cls, interaction: discord.Interaction, item: discord.ui.Button, match):
        return cls(int(match["n"]))

    async def callback(self, interaction: discord.Interaction) -> None:
        await interaction.response.send_message(f"button {self.n} pressed by {interaction.user.name}", ephemeral=True)


class FeedbackModal(discord.ui.Modal, title="Feedback"):
    text = discord.ui.TextInput(label="What went wrong?", custom_id="feedback:text")

    async def on_submit(self, interaction: discord.Interaction) -> None:
        await interaction.response.send_message(f"thanks: {self.text.value}")


class SmallBot(commands.Bot):
    """A tiny bot in the shape of the real one: slow deferred command, moderator group, buttons, a modal."""

    def __init__(self) -> None:
        super().__init__(command_prefix=commands.when_mentioned, intents=discord.Intents.default())
        self.gate = asyncio.Event()  # /slow waits on it, so the test decides when the "job" finishes
        self.outcomes: asyncio.Queue[object] = asyncio.Queue()

    async def before_identify_hook(self, shard_id: int | None, *, initial: bool = False) -> None:
        pass  # discord.py waits 5 s before every re-IDENTIFY; nothing to be polite to here

    async def setup_hook(self) -> None:
        self.add_dynamic_items(CountButton)
        self.tree.add_command(ping)
        self.tree.add_command(slow)
        self.tree.add_command(feedback)
        self.tree.add_command(boom)
        self.tree.add_command(videomod)


@app_commands.command(description="Answer like a video job")
async def ping(interaction: discord.Interaction, text: str) -> None:
    await interaction.response.defer(thinking=True)
    await interaction.edit_original_response(content=f"queued: {text}")
    await interaction.edit_original_response(content=f"rendering: {text}")
    video = discord.File(io.BytesIO(VIDEO), filename="video.mp4")
    await interaction.edit_original_response(content=f"done: {text}", attachments=[video])
    await interaction.followup.send(f"followup: {text}")
    await interaction.channel.send(f"{interaction.user.mention} your video of {text} is ready")


@app_commands.command(description="Defer, wait for the test, then try to deliver a file")
async def slow(interaction: discord.Interaction, size: int) -> None:
    await interaction.response.defer(thinking=True)
    bot: SmallBot = interaction.client  # type: ignore[assignment]
    await bot.gate.wait()
    try:
        file = discord.File(io.BytesIO(bytes(size)), filename="video.mp4")
        await interaction.edit_original_response(content="done", attachments=[file])
    except discord.HTTPException as error:
        bot.outcomes.put_nowait((error.status, error.code))
    else:
        bot.outcomes.put_nowait("delivered")


@app_commands.command(description="Tell us what went wrong")
async def feedback(interaction: discord.Interaction) -> None:
    await interaction.response.send_modal(FeedbackModal())


@app_commands.command(description="Fail without answering")
async def boom(interaction: discord.Interaction) -> None:
    raise ZeroDivisionError("the command crashed")


videomod = app_commands.Group(name="videomod", description="Moderator tools")
quota = app_commands.Group(name="quota", description="Per-user quotas", parent=videomod)


@quota.command(name="set", description="Set a member's daily quota")
async def quota_set(interaction: discord.Interaction, member: discord.Member, per_day: int) -> None:
    allowed = interaction.permissions.manage_guild
    await interaction.response.send_message(f"{member.name}: {per_day}/day (manage_guild={allowed})")


@pytest.fixture
async def bot(fake_discord: FakeDiscord):
    async with running_bot(SmallBot(), fake_discord) as running:
        await running.tree.sync()
        yield running


async def test_slash_command_defers_edits_uploads_and_follows_up(fake_discord, bot):
    fake = fake_discord
    [sync] = fake.requests_to(f"PUT /applications/{fake.app_id}/commands")
    assert [c["name"] for c in sync.json] == ["ping", "slow", "feedback", "boom", "videomod"]
    assert [(o["name"], o["type"], o["required"]) for o in sync.json[0]["options"]] == [("text", 3, True)]
    assert fake.find_command("ping", None)["id"].isdigit()

    handle = await fake.slash("ping", {"text": "a cat surfing"})
    announcement = await fake.wait_for_message(lambda m: m.kind == "channel")  # the command's last step

    assert handle.callback_type == 5
    original = handle.original
    assert [h["content"] for h in original.history] == ["", "queued: a cat surfing", "rendering: a cat surfing"]
    assert original.content == "done: a cat surfing" and original.edits == 3
    [video] = original.attachments
    assert (video.filename, video.content_type, video.data) == ("video.mp4", "video/mp4", VIDEO)
    edits = fake.requests_to("PATCH /webhooks/*/messages/@original")
    assert [len(e.files) for e in edits] == [0, 0, 1] and edits[-1].files[0].data == VIDEO
    [followup] = handle.followups
    assert followup.content == "followup: a cat surfing" and followup.id != original.id
    assert announcement.content == f"<@{fake.default_user.id}> your video of a cat surfing is ready"
    assert announcement.author is fake.bot_user and announcement.channel_id == fake.channel.id


async def test_dynamic_button_from_before_a_restart_is_routed_to_its_callback(fake_discord, bot):
    old = fake_discord.seed_message("your video", components=[action_row(button("test:btn:42", "#42"))])

    handle = await fake_discord.click(old.id, "test:btn:42")
    reply = await handle.wait_original()

    assert handle.callback_type == 4
    assert reply.content == "button 42 pressed by alice" and reply.ephemeral


async def test_subcommand_group_gets_typed_options_and_moderator_permissions(fake_discord, bot):
    fake = fake_discord
    mod, bob = fake.make_user(name="mod", roles=[fake.moderator_role]), fake.make_user(name="bob")

    as_mod = await fake.slash("videomod quota set", {"member": bob, "per_day": 5}, user=mod)
    as_bob = await fake.slash("videomod quota set", {"member": bob, "per_day": 9}, user=bob)

    assert (await as_mod.wait_original()).content == "bob: 5/day (manage_guild=True)"
    assert (await as_bob.wait_original()).content == "bob: 9/day (manage_guild=False)"
    [group] = as_mod.record.payload["data"]["options"]
    assert [(o["name"], o["type"]) for o in group["options"][0]["options"]] == [("member", 6), ("per_day", 4)]
    with pytest.raises(ValueError, match="missing required"):
        await fake.slash("videomod quota set", {"member": bob})


async def test_modal_shown_by_the_bot_can_be_submitted(fake_discord, bot):
    shown = await fake_discord.slash("feedback")
    await shown.wait_modal()

    submitted = await fake_discord.submit_modal(shown.modal["custom_id"], {"feedback:text": "too slow"})

    assert (await submitted.wait_original()).content == "thanks: too slow"


@pytest.mark.parametrize(
    ("fault", "identifies", "resumes"),
    [("reconnect", 1, 1), ("disconnect", 1, 1), ("invalidate_session", 2, 0)],
)
async def test_gateway_faults_are_survived(fake_discord, bot, fault, identifies, resumes):
    fake = fake_discord
    await getattr(fake, fault)()
    await fake.wait_for(lambda: fake.gateway.connections == 2 and fake.gateway.connected, what="a new session")

    handle = await fake.slash("ping", {"text": "after"})
    await fake.wait_for_message(lambda m: m.content.endswith("your video of after is ready"))

    assert handle.original.content == "done: after" and handle.original.attachments[0].data == VIDEO
    assert (fake.gateway.identifies, fake.gateway.resumes) == (identifies, resumes)
    if resumes:
        assert fake.gateway.urls[-1].startswith("/gateway-resume?v=10")


async def test_rate_limited_edit_is_retried_by_discord_py(fake_discord, bot):
    fake = fake_discord
    fake.rate_limit_next("PATCH /webhooks/*/messages/@original", retry_after=0.01)

    handle = await fake.slash("ping", {"text": "busy"})
    await fake.wait_for_message(lambda m: m.content.endswith("your video of busy is ready"))
    original = handle.original

    statuses = [r.status for r in fake.requests_to("PATCH /webhooks/*/messages/@original")]
    assert statuses == [429, 200, 200, 200]
    assert [h["content"] for h in original.history] == ["", "queued: busy", "rendering: busy"]


async def test_a_held_edit_is_in_flight_until_the_test_lets_it_go(fake_discord, bot):
    fake = fake_discord
    queued = fake.hold_next("PATCH /webhooks/*/messages/@original")

    handle = await fake.slash("ping", {"text": "held"})
    held = await fake.wait_held(queued)
    meanwhile = (held.status, handle.original.content)  # in flight: unanswered, the message unchanged
    queued.set()
    await fake.wait_for_message(lambda m: m.content.endswith("your video of held is ready"))

    assert meanwhile == (0, "") and held.json["content"] == "queued: held"
    assert [r.status for r in fake.requests_to("PATCH /webhooks/*/messages/@original")] == [200, 200, 200]


async def test_a_forgotten_hold_holds_nothing_and_one_left_on_is_answered_when_the_fake_closes():
    guard = aiohttp.ClientTimeout(total=30)  # a hang guard only
    async with aiohttp.ClientSession(headers={"Authorization": f"Bot {BOT_TOKEN}"}, timeout=guard) as session:
        async with FakeDiscord() as fake:
            me = f"{fake.api_url}/users/@me"
            fake.hold_next("GET /users/@me")
            fake.forget_faults()  # meant for a client gone since
            forgotten = await session.get(me)
            left_on = fake.hold_next("GET /users/@me")
            answer = asyncio.create_task(session.get(me))
            in_flight = (await fake.wait_held(left_on)).status
        answered = await answer  # without the fake letting it go, its server would wait 60 s, then cut it off

    assert (forgotten.status, in_flight, answered.status) == (200, 0, 200)


async def test_expired_token_and_oversized_upload_fail_like_discord(fake_discord, bot):
    fake = fake_discord
    expired = await fake.slash("slow", {"size": 10})
    await expired.wait_deferred()
    fake.expire_token(expired)
    bot.gate.set()
    assert await asyncio.wait_for(bot.outcomes.get(), 10) == (401, 50027)

    too_big = await fake.slash("slow", {"size": 2048}, attachment_size_limit=1024)
    assert await asyncio.wait_for(bot.outcomes.get(), 10) == (413, 40005)
    assert too_big.original.loading and too_big.original.edits == 0


async def test_an_unhandled_error_in_the_bot_fails_the_wait_at_once(fake_discord, bot):
    handle = await fake_discord.slash("boom")

    with pytest.raises(AssertionError, match="ZeroDivisionError"):
        await handle.wait_callback(timeout=10)
