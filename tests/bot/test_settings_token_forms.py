"""The developer portal shows an application's id, its public key and its OAuth2 client secret beside the bot token;
any of them pasted for DISCORD_TOKEN is one line naming what it is, and a token not of a bot token's three parts (`abc`,
one cut short) one line saying how its shape is wrong, before the database is made or Discord asked (which would answer
401 only after the database was migrated), and the value is never shown."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from bot.errors import SettingsError
from bot.settings import load_settings
from tests.bot.helpers import START_S, child_env
from tests.fakediscord import BOT_TOKEN

APPLICATION_ID = "1177345678901234567"
PUBLIC_KEY = "3f9d1c0a7b2e4d5f8a6c9e0b1d2f3a4b5c6d7e8f90a1b2c3d4e5f60718293a4b"
CLIENT_SECRET = "Xq3_vT9kLmN2pR7sW-aB4cD6eF8gH0jK"  # the form of one: 32 URL-safe characters
FIX = "not the bot token: copy the token from the developer portal's Bot page (Reset Token)"


def refused(token: str) -> list[str]:
    with pytest.raises(SettingsError) as raised:
        load_settings({"DISCORD_TOKEN": token, "T2V_MODEL": "tiny-random", "T2V_ALLOW_TINY": "1",
                       "T2V_DEVICE": "cpu"}, env_file=None)
    return raised.value.lines


@pytest.mark.parametrize(("pasted", "named"), [
    (APPLICATION_ID, "a number: an id (the application's, a user's or a server's)"),
    (PUBLIC_KEY, "64 hexadecimal digits: the application's public key (General Information)"),
    (CLIENT_SECRET, "32 characters without a dot: the OAuth2 client secret (a bot token is three parts joined by "
                    "dots)"),
])
def test_a_value_the_portal_shows_beside_the_token_is_named_for_what_it_is(pasted: str, named: str) -> None:
    assert refused(pasted) == [f"DISCORD_TOKEN is {named}, {FIX}"]


SHAPE = "a bot token is three non-empty parts joined by dots: copy it again from the developer portal's Bot page " \
        "(Reset Token)"


@pytest.mark.parametrize(("token", "wrong"), [
    ("abc", "is 3 characters without a dot"),
    ("a", "is 1 character without a dot"),
    ("MTE3NzM0NTY3ODkwMTIzNDU2.GsTaRt", "has 2 parts joined by dots"),  # cut short at the second dot
    (f"{CLIENT_SECRET}.x", "has 2 parts joined by dots"),
    ("MTE3NzM0NTY3ODkwMTIzNDU2.GsTaRt.a-bot-token.MTE3NzM0NTY3ODkwMTIzNDU2", "has 4 parts joined by dots"),
    (".GsTaRt.a-bot-token", "starts with a dot"),
    ("MTE3NzM0NTY3ODkwMTIzNDU2.GsTaRt.", "ends with a dot"),
    ("MTE3NzM0NTY3ODkwMTIzNDU2..a-bot-token", "has two dots together"),
])
def test_a_token_not_of_three_parts_is_one_line_that_shows_none_of_it(token: str, wrong: str) -> None:
    lines = refused(token)
    assert lines == [f"DISCORD_TOKEN {wrong}, {SHAPE}"]
    assert not any(part in lines[0] for part in token.split(".") if len(part) > 2)


def test_a_bot_token_and_the_tests_tokens_are_taken() -> None:
    for token in ("MTE3NzM0NTY3ODkwMTIzNDU2.GsTaRt.a-startup-bot-token-2b7c", BOT_TOKEN, "a.token-of.a-bot",
                  "MTE3NzM0NTY3ODkwMTIzNDU2.Gs-_9a.x", "OTk.X.y_-Z"):  # the last two parts' lengths vary
        settings = load_settings({"DISCORD_TOKEN": token, "T2V_MODEL": "tiny-random", "T2V_ALLOW_TINY": "1",
                                  "T2V_DEVICE": "cpu"}, env_file=None)
        assert settings.discord_token.get_secret_value() == token


@pytest.mark.parametrize(("token", "expected"), [
    (CLIENT_SECRET, "DISCORD_TOKEN is 32 characters without a dot: the OAuth2 client secret (a bot token is three "
                    f"parts joined by dots), {FIX}"),
    ("abc", f"DISCORD_TOKEN is 3 characters without a dot, {SHAPE}")])
def test_python_m_bot_with_a_value_not_of_a_tokens_shape_stops_before_it_makes_the_database(
        tmp_path: Path, token: str, expected: str) -> None:
    env = child_env(DISCORD_TOKEN=token, T2V_MODEL="tiny-random", T2V_ALLOW_TINY="1", T2V_DEVICE="cpu",
                    DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}", MEDIA_DIR=str(tmp_path / "media"),
                    HEALTH_ENABLED="0", STARTUP_RETRY_S="0", DISCORD_LOGIN_TIMEOUT_S="0.2",
                    DISCORD_API_BASE="http://127.0.0.1:9/api/v10")
    result = subprocess.run([sys.executable, "-m", "bot"], cwd=tmp_path, env=env, capture_output=True, text=True,
                            timeout=START_S)

    assert result.returncode == 2
    assert result.stderr.splitlines() == [f"error: {expected}"]
    assert token not in result.stderr
    assert not (tmp_path / "bot.db").exists()
