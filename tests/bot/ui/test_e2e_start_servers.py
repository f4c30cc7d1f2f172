"""The servers a start is told about: a DISCORD_GUILD_ID the bot cannot use stops it before the model loads; an
ALLOWED_GUILD_IDS that names none of its servers (a typo) makes it leave none of them."""

from __future__ import annotations

import logging

import pytest

from bot.errors import SettingsError
from tests.bot.conftest import Stacks

UNKNOWN_SERVER = 123456789012345678


async def test_a_discord_guild_id_the_bot_cannot_use_stops_the_start_with_one_line_before_the_model_loads(
        stacks: Stacks):
    loaded: list[str] = []
    with pytest.raises(SettingsError) as refused:
        async with stacks.run(lambda device: loaded.append(device), discord_guild_id=UNKNOWN_SERVER):
            pass

    assert refused.value.lines == [
        f"DISCORD_GUILD_ID={UNKNOWN_SERVER}: Discord refused the bot's commands in that server (403 Missing Access): "
        "the bot is not in it, or was invited without the applications.commands scope; invite it with the link of "
        "README step 2, check the id (right-click the server's icon → Copy Server ID), or leave DISCORD_GUILD_ID "
        "empty for commands in every server"]
    assert loaded == [] and stacks.fake.guild_commands.get(UNKNOWN_SERVER) is None


async def test_the_home_guild_s_own_commands_are_removed_once_discord_guild_id_is_left_empty(stacks: Stacks):
    fake = stacks.fake
    async with stacks.run(discord_guild_id=fake.guild.id):
        pass
    testing = {command["name"] for command in fake.guild_commands[fake.guild.id]}
    async with stacks.run():  # in production: the global commands only, else that server shows each one twice
        pass
    async with stacks.run():  # and nothing more to remove at the next start
        pass

    assert "video" in testing and fake.guild_commands[fake.guild.id] == []
    assert "video" in {command["name"] for command in fake.commands}
    assert len(fake.requests_to(f"PUT /applications/*/guilds/{fake.guild.id}/commands")) == 2


async def test_an_allowlist_naming_none_of_the_bots_servers_leaves_none_and_says_so(stacks: Stacks, scripted,
                                                                                     caplog, logged_errors):
    logged_errors.expect("lists none of the servers the bot is in")
    fake = stacks.fake
    other = fake.add_guild("Second server")
    caplog.set_level(logging.INFO, logger="bot")
    typo = fake.guild.id // 10  # one digit short
    async with stacks.run(lambda device: scripted, allowed_guild_ids=typo) as stack:
        await fake.wait_for(lambda: "lists none of the servers" in caplog.text, what="the error line")
        still = sorted(guild.id for guild in stack.bot.guilds)

    assert fake.left == [] and still == sorted([fake.guild.id, other.id])
    assert (f"ALLOWED_GUILD_IDS={typo} lists none of the servers the bot is in ({fake.guild.name} ({fake.guild.id}), "
            f"Second server ({other.id})): leaving none of them" in caplog.text)
