"""pytest fixtures for the fake Discord (loaded through pytest_plugins in tests/conftest.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import discord
import pytest
import yarl

from .server import FakeDiscord


@pytest.fixture
async def fake_discord(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[FakeDiscord]:
    """A started FakeDiscord with discord.py's REST base and gateway pointed at it (restored afterwards).

    At teardown it fails the test if the bot raised an unhandled exception that no wait reported (unless the
    test set `fake.fail_on_bot_errors = False`), so a command that breaks after the test's last wait is seen.
    """
    async with FakeDiscord() as fake:
        monkeypatch.setattr(discord.http.Route, "BASE", fake.api_url)
        monkeypatch.setattr(discord.gateway.DiscordWebSocket, "DEFAULT_GATEWAY", yarl.URL(fake.gateway_url))
        yield fake
        fake.check("the end of the test")
