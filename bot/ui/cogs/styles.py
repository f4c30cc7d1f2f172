"""/videostyle: a server's moderators see the bot's styles (STYLES_FILE), turn one off or on for their server, and
name the style /video takes when a member names none (a preset of the server).

Moderator rights are checked in code on every command, as for /videomod (bot.ui.permissions.check_moderator);
every change is audited in the server's log; answers are private.
"""

from __future__ import annotations

import logging

import discord
from discord import app_commands
from discord.ext import commands

from bot.characters import clipped, shown
from bot.errors import InvalidInput
from bot.gpu.styles import NONE
from bot.moderation.rules import Moderation
from bot.moderation.servers import ServerSettings
from bot.moderation.styles import ServerStyles, closest, listed
from bot.settings import Settings
from bot.ui.cogs import MAX_CHOICES
from bot.ui.permissions import check_moderator, server
from bot.ui.replies import reply

log = logging.getLogger(__name__)

OFF_DEFAULT = "It is off in this server: /video renders without a style until it is on again."


@app_commands.guild_only()
@app_commands.default_permissions(manage_guild=True)
class StylesCog(commands.GroupCog, group_name="videostyle", group_description="The styles /video offers here"):
    """The /videostyle command group; every command passes `interaction_check` first."""

    def __init__(self, settings: Settings, moderation: Moderation, styles: ServerStyles,
                 servers: ServerSettings) -> None:
        self.settings, self.moderation, self.styles, self.servers = settings, moderation, styles, servers
        super().__init__()

    async def interaction_check(self, interaction: discord.Interaction) -> bool:  # type: ignore[override]
        """Let the server's moderators through; log, audit and refuse everyone else."""
        return await check_moderator(interaction, self.settings, self.moderation,
                                     target=f"channel:{interaction.channel_id}")

    @app_commands.command(name="list", description="The bot's styles: which are on here, and this server's default")
    async def list_styles(self, interaction: discord.Interaction) -> None:
        await reply(interaction, await self.listing(server(interaction)))

    @app_commands.command(name="off", description="Turn a style off in this server: /video refuses it")
    @app_commands.describe(style="The style to turn off")
    async def style_off(self, interaction: discord.Interaction, style: str) -> None:
        await self._turn(interaction, style, on=False)

    @app_commands.command(name="on", description="Turn a style back on in this server")
    @app_commands.describe(style="The style to turn on")
    async def style_on(self, interaction: discord.Interaction, style: str) -> None:
        await self._turn(interaction, style, on=True)

    async def _turn(self, interaction: discord.Interaction, style: str, *, on: bool) -> None:
        """Turn `style` on or off in the interaction's server and answer with what changed and the listing."""
        guild, state, style = server(interaction), "on" if on else "off", self._named(style)
        changed = await self.styles.turn(interaction.user.id, guild, style, on=on)
        head = (f"The style {style} is now {state} in this server." if changed
                else f"The style {style} was already {state}.")
        if not on and (await self.servers.presets(guild)).style == style:
            head += " It is this server's default style: /video renders without a style until it is on again."
        await reply(interaction, await self.listing(guild, head))

    @app_commands.command(name="default", description="The style /video uses here when a member names none")
    @app_commands.describe(style=f"A style, or {NONE} for no default style")
    async def style_default(self, interaction: discord.Interaction, style: str) -> None:
        guild = server(interaction)
        chosen = None if style.strip().lower() == NONE else self._named(style)
        await self.servers.set_default_style(interaction.user.id, guild, chosen)
        head = ("This server has no default style now." if chosen is None
                else f"/video now uses the style {chosen} here when a member names none.")
        if chosen in await self.styles.off(guild):
            head += f" {OFF_DEFAULT}"
        await reply(interaction, await self.listing(guild, head))

    def _named(self, style: str) -> str:
        """The style a moderator typed, as the styles file names it; InvalidInput for a blank one or one that is no
        style, naming the closest and as many styles as fit one message."""
        named = self.styles.named(style)
        if named in self.styles.offered:
            return named
        offered = list(self.styles.offered)
        if not named:
            raise InvalidInput(f"The style is blank; name one of this bot's styles: {listed(offered)}.")
        raise InvalidInput(f"There is no style {shown(named, 40)}; the styles are: {listed(offered)}."
                           f"{closest(named, offered)}")

    @style_off.autocomplete("style")
    @style_on.autocomplete("style")
    @style_default.autocomplete("style")
    async def style_choices(self, interaction: discord.Interaction, typed: str) -> list[app_commands.Choice[str]]:
        """Every style of the bot whose name holds what was typed (and `none` for the default)."""
        names = [*self.styles.offered, *([NONE] if getattr(interaction.command, "name", None) == "default" else [])]
        return [app_commands.Choice(name=name, value=name) for name in names
                if typed.strip().lower() in name][:MAX_CHOICES]

    async def listing(self, guild_id: int, head: str | None = None) -> str:
        """The bot's styles with their state in the server, and the server's default style, under `head` if given;
        cut to fit one message."""
        lines = [] if head is None else [head]
        if not self.styles.offered:
            return "\n".join([*lines, "This bot has no styles: its operator has not listed any."])
        off = await self.styles.off(guild_id)
        default = (await self.servers.presets(guild_id)).style
        lines.append("**Styles** of /video in this server")
        if default is None:
            lines.append("-# No default style: a member who names none gets none.")
        for name, description in self.styles.offered.items():
            state = "off" if name in off else "on"
            mark = " · default" if name == default else ""
            lines.append(f"• `{name}` · {state}{mark}" + (f" — {shown(description, 80)}" if description else ""))
        return clipped(lines)
