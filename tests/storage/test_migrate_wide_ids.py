"""`python -m storage migrate` reads a server id typed in full-width digits (１２３) as the bot reads DISCORD_GUILD_ID:
the id its ASCII digits write (tests/bot/test_wide_digit_ids.py has the bot's side)."""

from __future__ import annotations

from pathlib import Path

import pytest

from storage.__main__ import main
from tests.storage.test_migrate_command import HEAD, schema

WIDE_ID = "１２３４５６７８９０１２３４５６７８"  # 123456789012345678


def test_a_server_id_in_full_width_digits_is_taken_from_the_option_and_from_discord_guild_id(
        bot_folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert main(["migrate", "--to", "0003"]) == 0
    assert main(["migrate", "--home-guild-id", WIDE_ID]) == 0
    assert main(["migrate", "--to", "0003"]) == 0
    monkeypatch.setenv("DISCORD_GUILD_ID", WIDE_ID)
    assert main(["migrate"]) == 0
    assert schema(bot_folder / "videobot.db")[0] == HEAD
