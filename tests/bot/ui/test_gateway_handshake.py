"""A gateway that answers TCP but fails the WebSocket handshake at the start: one clear line, never discord.py's
reconnect traceback (it reads the socket it never got: `'NoneType' object has no attribute 'sequence'`)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import discord
import pytest

from bot.errors import Unreachable
from bot.ui.client import VideoBot
from tests.bot.conftest import settings_for
from tests.bot.helpers import START_S, bot_child
from tests.bot.test_startup import env_for, errors
from tests.fakediscord import FakeDiscord


async def run_child(tmp_path: Path, fake: FakeDiscord, gateway: str, *, when: str = "",
                    then: Callable[[], None] = lambda: None) -> tuple[int, list[str]]:
    """`python -m bot` against the fake with DISCORD_GATEWAY_URL=`gateway`, to its end, calling `then` once it logs
    `when`; its exit status and lines."""
    env = env_for(tmp_path, DISCORD_TOKEN=fake.token, DISCORD_API_BASE=fake.api_url, DISCORD_GATEWAY_URL=gateway,
                  DISCORD_GUILD_ID=str(fake.guild.id))
    async with bot_child(tmp_path, env) as child:
        assert child.stderr is not None
        lines: list[str] = []
        while line := await asyncio.wait_for(child.stderr.readline(), START_S):
            lines.append(line.decode().rstrip())
            if when and when in lines[-1]:
                when = ""
                then()
        return await asyncio.wait_for(child.wait(), START_S), lines


async def test_a_gateway_url_whose_path_answers_404_is_one_settings_line_and_exit_2(tmp_path: Path,
                                                                                  fake_discord: FakeDiscord):
    gateway = f"ws://127.0.0.1:{fake_discord.port}/not-the-gateway"
    code, lines = await run_child(tmp_path, fake_discord, gateway)

    assert code == 2
    [line] = errors(lines)
    assert line.endswith(
        f"DISCORD_GATEWAY_URL={gateway}: the WebSocket handshake at {gateway}?v=10&encoding=json was answered 404 Not "
        "Found: nothing serves Discord's gateway at that address; set the address the proxy serves the gateway at (a "
        "ws:// or wss:// URL), or leave DISCORD_GATEWAY_URL empty for Discord's own")
    assert not any("Traceback" in line or "pipeline loaded" in line for line in lines)  # before the model loads
    assert fake_discord.gateway.connections == 0


async def test_a_gateway_failing_its_handshake_with_5xx_is_tried_again_then_one_line_and_exit_1(
        tmp_path: Path, fake_discord: FakeDiscord):
    fake_discord.gateway.refuse_handshakes(503, times=1000)
    code, lines = await run_child(tmp_path, fake_discord, fake_discord.gateway_url)

    assert code == 1
    [line] = errors(lines)
    assert (f"cannot reach Discord's gateway at {fake_discord.gateway_url}: the WebSocket handshake was answered 503 "
            "Service Unavailable; tried ") in line
    assert line.endswith("check DISCORD_GATEWAY_URL and that the proxy there is running")
    assert any("trying again in" in line for line in lines) and not any("Traceback" in line for line in lines)
    assert not any("pipeline loaded" in line for line in lines)


async def test_a_gateway_that_fails_while_the_model_loads_is_one_line_not_discord_pys_traceback(
        tmp_path: Path, fake_discord: FakeDiscord):
    """The login's handshake went through; the outage began while the model loaded, before the first connection."""
    # the setup ends with the command sync: held unanswered, it keeps the child inside the setup until the outage
    sync = fake_discord.hold_next(f"PUT /applications/{fake_discord.app_id}/guilds/*/commands")

    def outage() -> None:
        fake_discord.gateway.refuse_handshakes(503, times=1000)
        sync.set()

    code, lines = await run_child(tmp_path, fake_discord, fake_discord.gateway_url, when="t2v.loader: loaded",
                                  then=outage)

    assert code == 1
    [line] = errors(lines)
    assert (f"cannot reach Discord's gateway at {fake_discord.gateway_url}: the WebSocket handshake was answered 503 "
            "Service Unavailable; tried ") in line
    assert not any("Traceback" in line or "AttributeError" in line for line in lines)
    assert fake_discord.gateway.identifies == 0


async def test_a_first_connection_the_gateway_fails_right_after_its_handshake_went_through_is_unreachable(
        tmp_path: Path, fake_discord: FakeDiscord, monkeypatch: pytest.MonkeyPatch):
    """The outage begins between the start's handshake and discord.py's first connection: discord.py's reconnect
    then reads the socket it never got (AttributeError); the bot says what it could not reach instead."""
    settings = settings_for(f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}", discord_token=fake_discord.token,
                            discord_gateway_url=fake_discord.gateway_url)
    bot = VideoBot(settings, lambda events: None, repo=None, showcase_repo=None)  # type: ignore[arg-type]
    reach = bot._reach_gateway

    async def then_down() -> None:
        await reach()
        fake_discord.gateway.refuse_handshakes(503)

    monkeypatch.setattr(bot, "_reach_gateway", then_down)
    monkeypatch.setattr(discord.client, "ExponentialBackoff", NoWait)  # discord.py waits up to 2 s to reconnect
    await bot.http.static_login(fake_discord.token)
    try:
        with pytest.raises(Unreachable) as raised:
            await bot.connect()
    finally:
        await bot.close()

    assert str(raised.value) == (f"cannot reach Discord's gateway at {fake_discord.gateway_url}: its first connection "
                                 "failed; check DISCORD_GATEWAY_URL and that the proxy there is running")
    assert fake_discord.gateway.identifies == 0


class NoWait:
    """discord.py's reconnect backoff, without the wait."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        pass

    def delay(self) -> float:
        return 0.0
