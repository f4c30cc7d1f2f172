"""A user:password@ in DISCORD_API_BASE (a proxy's Basic auth, written into its URL) can never work: every request
carries the bot token in its Authorization header and aiohttp refuses to send credentials from the URL beside it, so
the start ended in a traceback (exit status 1, restarted for ever) after the database was made. In GALLERY_PUBLIC_URL
they would be shown to every visitor in the video pages' links. Each is one line at the settings check, the password
never shown."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from bot.errors import SettingsError
from bot.settings import load_settings
from tests.bot.helpers import START_S, child_env

VALID = {"DISCORD_TOKEN": "a.token-of.a-bot", "T2V_MODEL": "tiny-random", "T2V_ALLOW_TINY": "1", "T2V_DEVICE": "cpu"}
PROXY_REFUSES = ("every request carries the bot token in its Authorization header, which leaves no room for them (the "
                 "HTTP client refuses to send both), so the bot could not log in; let the proxy admit the bot another "
                 "way (its address, a network of its own); give the address alone, such as "
                 "https://discord-proxy.internal/api/v10")


@pytest.mark.parametrize(("setting", "url", "line"), [
    ("DISCORD_API_BASE", "https://bot:pr0xy-Secret@proxy.internal/api/v10/",
     f"DISCORD_API_BASE=https://***@proxy.internal/api/v10 holds credentials (user:password@): {PROXY_REFUSES}"),
    ("DISCORD_API_BASE", "http://pr0xy-Secret@proxy.internal:8080/api/v10",
     f"DISCORD_API_BASE=http://***@proxy.internal:8080/api/v10 holds credentials (user:password@): {PROXY_REFUSES}"),
    ("GALLERY_PUBLIC_URL", "https://viewer:pr0xy-Secret@videos.example.org",
     "GALLERY_PUBLIC_URL=https://***@videos.example.org holds credentials (user:password@): the links in every video "
     "page's tags would show them to each visitor; give the address alone, such as https://videos.example.org"),
])
def test_credentials_in_an_address_that_cannot_use_them_are_one_line_without_the_password(setting, url, line):
    with pytest.raises(SettingsError) as raised:
        load_settings({**VALID, setting: url}, env_file=None)

    assert raised.value.lines == [line]


def test_a_gateway_url_may_carry_them_the_gateway_takes_the_token_in_its_first_message():
    settings = load_settings({**VALID, "DISCORD_GATEWAY_URL": "wss://bot:pw@proxy.internal/gateway"}, env_file=None)
    assert settings.discord_gateway_url == "wss://bot:pw@proxy.internal/gateway"


def test_python_m_bot_with_a_proxy_password_in_the_api_base_stops_before_it_makes_the_database(tmp_path: Path):
    env = child_env(**VALID, DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}", MEDIA_DIR=str(tmp_path / "m"),
                    HEALTH_ENABLED="0", STARTUP_RETRY_S="0", DISCORD_LOGIN_TIMEOUT_S="0.2",
                    DISCORD_API_BASE="http://bot:pr0xy-Secret@127.0.0.1:9/api/v10")
    result = subprocess.run([sys.executable, "-m", "bot"], cwd=tmp_path, env=env, capture_output=True, text=True,
                            timeout=START_S)

    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        f"error: DISCORD_API_BASE=http://***@127.0.0.1:9/api/v10 holds credentials (user:password@): {PROXY_REFUSES}"]
    assert not (tmp_path / "bot.db").exists()
