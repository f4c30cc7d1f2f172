"""DISCORD_API_BASE naming a proxy that does not serve Discord's REST API at that address (its /api/v10 left out:
Discord itself answers 404 to /users/@me) or that turns the bot away: the start stops with one line naming the
setting and the answer (exit status 2: restarting cannot help), not a traceback after which a supervisor would start
it again every few seconds for ever."""

from __future__ import annotations

from pathlib import Path

import discord
import pytest
import yarl

import bot.app
from bot.errors import SettingsError
from tests.bot.conftest import settings_for
from tests.fakediscord import FakeDiscord

FIX = ("give the address at which the proxy serves Discord's REST API (Discord's own is https://discord.com/api/v10), "
       "such as https://discord-proxy.internal/api/v10")


async def test_an_api_base_without_its_api_path_stops_the_start_with_one_line(fake_discord: FakeDiscord,
                                                                              tmp_path: Path) -> None:
    base = fake_discord.url  # the proxy's root, where Discord's API is at /api/v10
    settings = settings_for(f"sqlite+aiosqlite:///{tmp_path / 'videobot.db'}", discord_api_base=base,
                            startup_retry_s=0)

    with pytest.raises(SettingsError) as raised:
        await bot.app.run(settings)

    [line] = raised.value.lines
    assert line.startswith(f"DISCORD_API_BASE={base}: the login's first request, GET {base}/users/@me, was answered "
                           "404 Not Found")
    assert line.endswith(FIX)
    assert not fake_discord.gateway.connections  # it went no further


def test_only_the_login_s_request_through_a_proxy_is_taken_for_the_proxy_s_answer() -> None:
    class Response:
        status, reason, method = 404, "Not Found", "GET"
        url = yarl.URL("https://proxy.internal/api/v10/channels/1/messages")  # after the login: another matter

    settings = settings_for("sqlite+aiosqlite:///x.db", discord_api_base="https://proxy.internal/api/v10")
    assert bot.app.proxy_refused_login(settings, discord.NotFound(Response(), "Unknown Channel")) is None
    Response.url = yarl.URL("https://proxy.internal/users/@me")
    assert bot.app.proxy_refused_login(settings, discord.NotFound(Response(), "<html> Not\n Found </html>")) == (
        "DISCORD_API_BASE=https://proxy.internal/api/v10: the login's first request, GET "
        f"https://proxy.internal/users/@me, was answered 404 Not Found: <html> Not Found </html>; {FIX}")
    no_proxy = settings_for("sqlite+aiosqlite:///x.db")
    assert bot.app.proxy_refused_login(no_proxy, discord.NotFound(Response(), "")) is None
