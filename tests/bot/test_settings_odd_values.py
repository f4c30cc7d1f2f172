"""Odd values a first-time operator types into `.env`: each refused in one line naming it, or read as meant."""

from __future__ import annotations

from pathlib import Path

from bot.env_file import malformed_lines


def test_a_setting_a_later_line_of_env_sets_again_to_another_value_is_one_line_naming_the_lines(tmp_path: Path):
    env = tmp_path / ".env"  # the operator's values on top of a copied .env.example, whose own lines come later
    env.write_text("DISCORD_TOKEN=a-token\nALLOWED_GUILD_IDS=123456789012345678\nlog_level=DEBUG\n\n"
                   "# --- .env.example ---\nDISCORD_TOKEN=\nALLOWED_GUILD_IDS=\nLOG_LEVEL=INFO\n")

    assert malformed_lines(str(env)) == [
        f"{env} sets DISCORD_TOKEN on lines 1 and 6 to different values: the bot would read only the last, which is "
        "empty (unset: the default); keep the one you mean and delete the others",
        f"{env} sets ALLOWED_GUILD_IDS on lines 2 and 7 to different values: the bot would read only the last, which "
        "is empty (unset: the default); keep the one you mean and delete the others",
        f"{env} sets LOG_LEVEL on lines 3 and 8 to different values: the bot would read only the last; keep the one "
        "you mean and delete the others"]
    assert not any("a-token" in line for line in malformed_lines(str(env)))  # a value may be a secret


def test_a_setting_repeated_with_its_value_or_filled_in_below_an_empty_line_is_no_conflict(tmp_path: Path):
    env = tmp_path / ".env"
    env.write_text('DISCORD_GUILD_ID=\nQUOTA_DEFAULT=5\nquota_default="5"\nDISCORD_GUILD_ID=123456789012345678\n'
                   "NOT_A_SETTING=1\nNOT_A_SETTING=2\n")

    assert malformed_lines(str(env)) == []
