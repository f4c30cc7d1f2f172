"""The servers a start is told about: a DISCORD_GUILD_ID the bot cannot use stops it before the model loads; an
ALLOWED_GUILD_IDS that names none of its servers (a typo) makes it leave none of them; a MOD_ROLE_ID,
SHOWCASE_CHANNEL_ID or GALLERY_FRONT_PAGE that names nothing in them is a warning once they have all arrived."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from bot.errors import SettingsError
from tests.bot.conftest import Stacks
from tests.bot.helpers import LogWaker
from tests.fakediscord import FakeDiscord, gateway

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


@contextmanager
def warnings_of_servers(fake: FakeDiscord, caplog: pytest.LogCaptureFixture) -> Iterator[list[str]]:
    """The warnings the servers cog logs, as they come (a list that grows), the fake woken by each log record."""
    caplog.set_level(logging.INFO, logger="bot")
    handler = LogWaker(fake)
    logging.getLogger().addHandler(handler)
    lines: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if record.levelno >= logging.WARNING:
                lines.append(record.getMessage())

    collect = Collect()
    logging.getLogger("bot.ui.cogs.servers").addHandler(collect)
    try:
        yield lines
    finally:
        logging.getLogger("bot.ui.cogs.servers").removeHandler(collect)
        logging.getLogger().removeHandler(handler)


async def test_ids_that_name_nothing_in_the_bots_servers_are_each_one_warning_once_connected(stacks: Stacks,
                                                                                               caplog):
    fake = stacks.fake
    other = fake.add_guild("Second server")
    servers = f"{fake.guild.name} ({fake.guild.id}), Second server ({other.id})"
    role, channel, server = (fake.moderator_role.id + 1000, fake.channel.id + 1000, other.id + 1000)  # typos
    with warnings_of_servers(fake, caplog) as warned:
        async with stacks.run(mod_role_id=role, showcase_channel_id=channel, gallery_enabled=1,
                              gallery_front_page=server):
            await fake.wait_for(lambda: len(warned) == 3, what="three warnings")

    assert warned == [
        f"MOD_ROLE_ID={role} is no role of the servers the bot is in ({servers}): only members with Manage Server "
        "are moderators; set it to the moderators' role (Server Settings → Roles → right-click the role → Copy Role "
        "ID), or leave it empty",
        f"SHOWCASE_CHANNEL_ID={channel} is no channel of the servers the bot is in ({servers}): no approved video is "
        "posted there; set it to the channel's id (right-click the channel → Copy Channel ID), or leave it empty and "
        "let each server's moderators pick one with /videomod showcase channel",
        f"GALLERY_FRONT_PAGE={server} is no server the bot is in ({servers}): the gallery's front page shows that "
        "server's videos only, and none are made there; set it to one of those servers' ids (right-click a server's "
        "icon → Copy Server ID), all or servers"]


async def test_ids_of_any_of_the_bots_servers_pass_and_a_servers_id_as_the_mod_role_is_named(stacks: Stacks, caplog):
    """A server's id is its @everyone role's: as MOD_ROLE_ID (a Copy Server ID for Copy Role ID) every member there
    would count as a moderator."""
    fake = stacks.fake
    other = fake.add_guild("Second server", channels=["showcase"])
    with warnings_of_servers(fake, caplog) as warned:
        async with stacks.run(mod_role_id=fake.guild.id, showcase_channel_id=other.channels[0].id, gallery_enabled=1,
                              gallery_front_page=other.id):
            await fake.wait_for(lambda: warned, what="the warning")

    assert warned == [
        f"MOD_ROLE_ID={fake.guild.id} is the id of the server {fake.guild.name} ({fake.guild.id}) and so of its "
        "@everyone role: every member there counts as a moderator; set it to the moderators' role (Server Settings "
        "→ Roles → right-click the role → Copy Role ID)"]


async def test_ids_are_checked_once_every_server_has_arrived_not_while_one_is_still_unavailable(
        stacks: Stacks, caplog, monkeypatch):
    fake = stacks.fake
    late = fake.add_guild("Late server", moderator_role="Mods")  # in READY, its GUILD_CREATE held back (an outage)
    whole = gateway.guild_create_payload

    def held_back(guild: Any, *args: Any) -> dict[str, Any]:
        return {"id": str(guild.id), "unavailable": True} if guild is late else whole(guild, *args)

    monkeypatch.setattr(gateway, "guild_create_payload", held_back)
    typo = fake.channel.id + 1000
    with warnings_of_servers(fake, caplog) as warned:
        async with stacks.run(mod_role_id=late.role("Mods").id, showcase_channel_id=typo) as stack:
            assert stack.bot.get_guild(late.id).unavailable and warned == []
            await fake.gateway.dispatch("GUILD_CREATE", whole(late, fake.users, fake.started_at))  # it comes back
            await fake.wait_for(lambda: warned, what="the warning")

    assert [line.split(" is ")[0] for line in warned] == [f"SHOWCASE_CHANNEL_ID={typo}"]  # the role is found in it


async def test_a_bot_started_in_no_server_checks_the_ids_when_it_joins_its_first(stacks: Stacks, caplog):
    """Set up before its first invite (the README's order: settings, then the invite link), the bot has no server to
    check the ids against at start; a typo'd id is named when it joins one, not never."""
    fake = stacks.fake
    fake.leave(fake.guild.id)
    with warnings_of_servers(fake, caplog) as warned:
        async with stacks.run(mod_role_id=12345678901234567, showcase_channel_id=fake.channel.id) as stack:
            assert list(stack.bot.guilds) == [] and warned == []
            first = await fake.invite("First server", moderator_role="Mods")
            await fake.wait_for(lambda: warned, what="the warning")
            await fake.invite("Second server")  # once a start: no second warning

    assert warned == [
        f"MOD_ROLE_ID=12345678901234567 is no role of the servers the bot is in (First server ({first.id})): only "
        "members with Manage Server are moderators; set it to the moderators' role (Server Settings → Roles → "
        "right-click the role → Copy Role ID), or leave it empty",
        f"SHOWCASE_CHANNEL_ID={fake.channel.id} is no channel of the servers the bot is in (First server "
        f"({first.id})): no approved video is posted there; set it to the channel's id (right-click the channel → "
        "Copy Channel ID), or leave it empty and let each server's moderators pick one with /videomod showcase "
        "channel"]
