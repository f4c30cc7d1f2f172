"""What Discord's refusals mean for the bot: its error codes, and the questions the delivery, the showcase and the
result buttons ask of a failed request (is the channel gone, the message deleted, the token dead, the upload too
large), each answered in one place."""

from __future__ import annotations

import discord

UNKNOWN_CHANNEL = 10003  # a channel deleted
UNKNOWN_MESSAGE = 10008  # a message deleted (a status or a post, by a member or a moderator)
MISSING_ACCESS = 50001  # a channel the bot cannot see
INVALID_WEBHOOK_TOKEN = 50027  # an interaction token expired
THREAD_ARCHIVED = 50083  # an edit or post in a thread archived (or locked by a moderator)
ENTITY_TOO_LARGE = 40005  # an upload over the size Discord accepts (HTTP 413)
SAID_CHARS = 200  # the longest error text of Discord's an apology quotes


def too_large(error: discord.HTTPException) -> bool:
    """413/40005: Discord accepts less than the interaction's advertised upload limit."""
    return error.status == 413 or error.code == ENTITY_TOO_LARGE


def out_of_reach(error: discord.HTTPException) -> bool:
    """403 or 404 from a channel route: the channel (or the message) was deleted, or the bot may no longer see it or
    post there; or a thread archived or locked (400 or 403, 50083); nothing to retry, and nothing the operator must
    fix."""
    return isinstance(error, discord.Forbidden | discord.NotFound) or error.code == THREAD_ARCHIVED


def channel_gone(error: discord.HTTPException) -> bool:
    """The channel itself is out of reach (deleted, hidden from the bot, or a thread archived or locked), not just
    this message (a preview the bot may not attach, 50013): nothing is posted there again."""
    return error.code in (UNKNOWN_CHANNEL, MISSING_ACCESS, THREAD_ARCHIVED)


def message_deleted(error: discord.HTTPException) -> bool:
    """404/10008 from a channel route for a message of the bot's: someone deleted it by hand; a deleted channel
    answers 10003. (Through an interaction token a deleted channel's message answers 10008 too.)"""
    return error.status == 404 and error.code == UNKNOWN_MESSAGE


def token_refused(error: discord.HTTPException) -> bool:
    """401/50027 (token expired) or 404 (response or token unknown): stop using the token."""
    return error.status in (401, 404) or error.code == INVALID_WEBHOOK_TOKEN


def discord_said(error: discord.HTTPException) -> str:
    """Discord's words for a failed request, as a user reads them in an apology: its message ("Service Unavailable"),
    or the HTTP status where there is none or it is no sentence (the HTML page a proxy in front of Discord serves)."""
    text = " ".join(str(error.text or "").split())
    return text if text and not text.startswith("<") and len(text) <= SAID_CHARS else f"HTTP {error.status}"
