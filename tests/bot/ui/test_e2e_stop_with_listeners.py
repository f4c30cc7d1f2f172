"""The bot stopping while an event listener or a command is still at work (a message deleted by hand being forgotten
in the database, a /video storing its status id): close() returned under it, the engine closed, and its pooled
connection was left to the garbage collector ("The garbage collector is trying to clean up non-checked-in
connection"); on PostgreSQL a slot held until then, and the write, begun before the stop, never done."""

import asyncio
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field

import discord
import pytest
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

import bot.ui.client
import tests.bot.conftest
from bot.ui.cogs.video import VIDEO_COG
from storage import create_engine
from storage.transactions import Work
from tests.bot.conftest import Stacks
from tests.bot.helpers import video
from tests.fakediscord import action_row, button

pytestmark = pytest.mark.usefixtures("logged_errors")


@dataclass
class Pool:
    """The stack's engine's connections: how many were out of the pool when the engine closed."""

    out: int = 0
    out_at_dispose: list[int] = field(default_factory=list)


@pytest.fixture
def pool(monkeypatch: pytest.MonkeyPatch) -> Iterator[Pool]:
    watched = Pool()

    def watched_engine(url: str) -> AsyncEngine:
        engine = create_engine(url)
        sync = engine.sync_engine
        event.listen(sync, "checkout", lambda *_: setattr(watched, "out", watched.out + 1))
        event.listen(sync, "checkin", lambda *_: setattr(watched, "out", watched.out - 1))
        event.listen(sync, "engine_disposed", lambda _: watched.out_at_dispose.append(watched.out))
        return engine

    monkeypatch.setattr(tests.bot.conftest, "create_engine", watched_engine)
    yield watched


@pytest.fixture
def left_discord(monkeypatch: pytest.MonkeyPatch) -> asyncio.Event:
    """Set once the bot has left Discord: held work waits for it, so it goes on during the stop."""
    left = asyncio.Event()
    client_close = discord.Client.close

    async def leave_discord(self: discord.Client) -> None:
        await client_close(self)
        left.set()

    monkeypatch.setattr(discord.Client, "close", leave_discord)
    return left


def record_close(client: discord.Client, steps: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """`steps` gains "closed" when the bot's close returns."""
    close = client.close

    async def closed() -> None:
        await close()
        steps.append("closed")

    monkeypatch.setattr(client, "close", closed)


async def test_a_deleted_message_being_forgotten_as_the_bot_stops_is_forgotten_before_close_returns(
        stacks: Stacks, pool: Pool, left_discord: asyncio.Event, monkeypatch: pytest.MonkeyPatch):
    steps: list[str] = []
    async with stacks.run() as stack:
        showcase, client = stack.bot.showcase, stack.bot
        forget = showcase.forget
        started = asyncio.Event()

        async def forget_after_the_stop(*args: object) -> None:
            started.set()
            await left_discord.wait()
            await forget(*args)
            steps.append("forgotten")

        monkeypatch.setattr(showcase, "forget", forget_after_the_stop)
        record_close(client, steps, monkeypatch)
        await stack.fake.delete_by_hand(stack.fake.seed_message("an old post"))
        await started.wait()

    assert steps == ["forgotten", "closed"]
    assert pool.out_at_dispose == [0]


async def test_a_listener_still_in_its_transaction_after_the_grace_is_cancelled_and_its_connection_returned(
        stacks: Stacks, pool: Pool, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture):
    monkeypatch.setattr(bot.ui.client, "HANDLERS_GRACE_S", 0.0)
    async with stacks.run() as stack:
        repo = stack.bot.showcase.repo
        run = repo._run
        in_transaction, never = asyncio.Event(), asyncio.Event()

        async def stuck(work: Work[object]) -> object:
            async def held(session: AsyncSession) -> object:
                result = await work(session)
                in_transaction.set()
                await never.wait()  # a database that stopped answering, in the middle of the transaction
                return result

            return await run(held)

        monkeypatch.setattr(repo, "_run", stuck)
        await stack.fake.delete_by_hand(stack.fake.seed_message("an old post"))
        await in_transaction.wait()
        assert pool.out == 1
        caplog.set_level(logging.WARNING, logger="bot.ui.client")

    assert pool.out_at_dispose == [0]
    assert [record.getMessage() for record in caplog.records if record.name == "bot.ui.client"] == [
        "event listeners and commands still running 0 s into the stop, cancelled: discord.py: on_raw_message_delete"]


async def test_a_video_whose_status_is_being_stored_as_the_bot_stops_has_it_stored_before_close_returns(
        stacks: Stacks, pool: Pool, left_discord: asyncio.Event, monkeypatch: pytest.MonkeyPatch):
    """/video's command goes on after its answer (the status message's id is stored, for the edits after a restart);
    the stop cut it short."""
    steps: list[str] = []
    async with stacks.run() as stack:
        repo, client = stack.repo, stack.bot
        store = repo.set_status_message
        started = asyncio.Event()

        async def store_after_the_stop(job_id: int, message_id: int) -> object:
            started.set()
            await left_discord.wait()
            stored = await store(job_id, message_id)
            steps.append("stored")
            return stored

        monkeypatch.setattr(repo, "set_status_message", store_after_the_stop)
        record_close(client, steps, monkeypatch)
        await video(stack.fake, "a lighthouse in a storm")
        await started.wait()

    assert steps == ["stored", "closed"]
    assert pool.out_at_dispose == [0]


async def test_a_button_press_still_at_work_as_the_bot_stops_is_finished_before_close_returns(
        stacks: Stacks, pool: Pool, left_discord: asyncio.Event, monkeypatch: pytest.MonkeyPatch):
    """✖ Cancel, 🗑 Delete, ⭐: each press runs in a task of its own; the stop returned under it."""
    steps: list[str] = []
    async with stacks.run() as stack:
        cog, client = stack.bot.get_cog(VIDEO_COG), stack.bot
        started = asyncio.Event()

        async def cancel_after_the_stop(interaction: discord.Interaction, job_id: int | None) -> None:
            started.set()
            await left_discord.wait()
            assert await stack.repo.get_job(1) is None  # a read after the stop, on the engine still open
            steps.append("pressed")

        monkeypatch.setattr(cog, "cancel_job", cancel_after_the_stop)
        record_close(client, steps, monkeypatch)
        status = stack.fake.seed_message("Queued", components=[action_row(button("video:cancel:1"))])
        await stack.fake.click(status, "video:cancel:1")
        await started.wait()

    assert steps == ["pressed", "closed"]
    assert pool.out_at_dispose == [0]
