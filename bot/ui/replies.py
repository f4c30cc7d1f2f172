"""Errors as users read them, and private answers that work at any stage of an interaction."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

import discord
from discord import app_commands
from discord.ext import commands

from bot.characters import MESSAGE_CHARS, clip, shown
from bot.errors import UserError
from storage import ShowcaseError
from storage.errors import said, unavailable
from t2v.errors import InvalidRequest

log = logging.getLogger(__name__)

INTERNAL_ERROR = "Something went wrong on our side; it has been logged. Please try again later."
DATABASE_DOWN = "The bot cannot reach its database right now; please try again in a few minutes."
NOT_LOADED = "This button is not available right now; please try again later."
QUIET = discord.AllowedMentions.none()  # answers that ping nobody
CogT = TypeVar("CogT", bound=commands.Cog)


def user_message(error: Exception) -> str | None:
    """What to tell the user about an error, or None when it is a bug to log. An InvalidRequest a member can reach
    (a /video's or a button's bad value) is worded for them by bot.moderation.values (through bot.jobs.spec), so it
    is said as it is."""
    cause = error.original if isinstance(error, app_commands.CommandInvokeError) else error
    if isinstance(cause, UserError | ShowcaseError):
        return cause.message
    if isinstance(cause, InvalidRequest):
        return str(cause)
    if isinstance(cause, app_commands.CommandOnCooldown):
        return f"Slow down a little: try again in {cause.retry_after:.0f} s."
    if isinstance(cause, app_commands.TransformerError):
        return _unconverted(cause)
    if isinstance(cause, app_commands.CheckFailure):
        return str(cause)
    return None


def _unconverted(error: app_commands.TransformerError) -> str:
    """A value discord.py could not turn into the option's type: the commonest, a user who is not (or no longer) a
    member of the server where a member is asked for, said as such ("Failed to convert stranger to Member")."""
    value = getattr(error.value, "id", error.value)
    if error.type is discord.AppCommandOptionType.user:
        return f"<@{value}> is not a member of this server (any more): pick one of its members."
    return f"“{shown(str(value), 60)}” is not a {error.type.name}: pick one from the list Discord offers."


def fitting(text: str) -> str:
    """`text` cut to one message (MESSAGE_CHARS) with an ellipsis, and a WARNING: an answer made longer is a bug, but
    Discord refuses a message over its limit whole, and the member would get no answer at all."""
    if len(text) <= MESSAGE_CHARS:
        return text
    log.warning("an answer of %d characters was cut to Discord's %d: %.80s…", len(text), MESSAGE_CHARS, text)
    return clip(text, MESSAGE_CHARS, discord=True)


async def answer_privately(interaction: discord.Interaction, text: str) -> None:
    """Reply, edit the deferred placeholder, or follow up, whichever the interaction still allows (cut to fit)."""
    quiet, text = discord.AllowedMentions.none(), fitting(text)
    try:
        if not interaction.response.is_done():
            await interaction.response.send_message(text, ephemeral=True, allowed_mentions=quiet)
        elif interaction.response.type == discord.InteractionResponseType.deferred_channel_message:
            await interaction.edit_original_response(content=text, allowed_mentions=quiet)
        else:
            await interaction.followup.send(text, ephemeral=True, allowed_mentions=quiet)
    except discord.HTTPException:
        log.exception("could not tell user %d: %s", interaction.user.id, text)


async def answer_refusal(interaction: discord.Interaction, text: str, *, placeholder_public: bool) -> None:
    """Answer privately after `defer(thinking=True)`: in the private placeholder; a public one is deleted first (or
    found deleted already), so that the answer goes out as a private followup (the placeholder's first followup
    would be public)."""
    if not placeholder_public:
        await answer_privately(interaction, text)
        return
    try:
        try:
            await interaction.delete_original_response()
        except discord.NotFound:  # deleted by hand meanwhile (a moderator tidying the channel): the answer still goes
            log.info("the placeholder answering user %d was already deleted", interaction.user.id)
        await interaction.followup.send(fitting(text), ephemeral=True, allowed_mentions=discord.AllowedMentions.none())
    except discord.HTTPException:
        log.exception("could not tell user %d: %s", interaction.user.id, text)


async def answer_error(interaction: discord.Interaction, error: Exception, what: str, *,
                       placeholder_public: bool = False, after: str = "") -> None:
    """Answer a failed interaction privately: a domain error's own text; for a database that cannot serve right now
    (locked past the retries, its disk full, its server down: storage.errors.unavailable) one ERROR line for the
    operator and a try-again for the user; else an apology after logging the bug with its traceback. After a public
    `defer(thinking=True)` (`placeholder_public`) the placeholder goes and the answer is a private followup
    (`answer_refusal`): the channel never reads the error, nor a placeholder left thinking. `after` ends the answer
    (a typed prompt quoted back)."""
    text = user_message(error)
    if text is None and unavailable(error):
        log.error("%s by user %d failed: the database cannot serve right now (%s)", what, interaction.user.id,
                  said(error))
        text = DATABASE_DOWN
    elif text is None:
        log.error("%s by user %d failed", what, interaction.user.id, exc_info=error)
        text = INTERNAL_ERROR
    else:
        log.info("%s by user %d answered: %s", what, interaction.user.id, text)
    await answer_refusal(interaction, text + after, placeholder_public=placeholder_public)


async def handler(interaction: discord.Interaction, name: str, kind: type[CogT]) -> CogT | None:
    """The loaded cog that handles a button press, or None once the presser is told the button is not available
    (the cog is not loaded yet, or any more)."""
    cog = interaction.client.get_cog(name) if isinstance(interaction.client, commands.Bot) else None
    if isinstance(cog, kind):
        return cog
    await answer_privately(interaction, NOT_LOADED)
    return None


async def carried_out(interaction: discord.Interaction, name: str, kind: type[CogT],
                      act: Callable[[CogT], Awaitable[object]], what: str) -> None:
    """A button press carried out by its cog (`act`), with the cog's absence (`handler`) and a failure
    (`answer_error`, naming `what`) answered privately."""
    cog = await handler(interaction, name, kind)
    if cog is None:
        return
    try:
        await act(cog)
    except Exception as error:
        await answer_error(interaction, error, what)


async def reply(interaction: discord.Interaction, content: str) -> None:
    """A private answer that pings nobody (cut to fit)."""
    await interaction.response.send_message(fitting(content), ephemeral=True, allowed_mentions=QUIET)
