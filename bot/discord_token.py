"""What a Discord bot token looks like, and what else the developer portal shows that gets pasted for it: the
settings' DISCORD_TOKEN checks (bot.settings) read these, so that a wrong value is one line before anything starts,
never echoing the token."""

from __future__ import annotations

import re

TOKEN_RE = re.compile(r"[A-Za-z0-9._-]+")  # a bot token's characters: base64url and the dots joining its parts
TOKEN_PARTS = 3  # a bot token's: the bot's user id, a timestamp and an HMAC (`shape_problem`)
TOKEN_PREFIXES = ("bot", "bearer")  # the Authorization header's words, pasted with the token
NOT_TOKENS = (  # what else the developer portal shows, pasted for the token: its form, and what it is then
    (re.compile(r"\d+"), "a number: an id (the application's, a user's or a server's)"),
    (re.compile(r"[0-9a-fA-F]{64}"), "64 hexadecimal digits: the application's public key (General Information)"),
    (re.compile(r"[A-Za-z0-9_-]{32}"), "32 characters without a dot: the OAuth2 client secret (a bot token is three "
                                        "parts joined by dots)"),
)


def shape_problem(token: str) -> str | None:
    """What is wrong with the shape of a token of TOKEN_RE's characters (its user id, timestamp and HMAC in base64url,
    joined by dots; the last two vary in length), in words that show none of it; None when it has that shape."""
    parts = token.split(".")
    if len(parts) == 1:
        return f"is {len(token)} character{'s' * (len(token) != 1)} without a dot"
    if len(parts) != TOKEN_PARTS:
        return f"has {len(parts)} parts joined by dots"
    if not parts[0]:
        return "starts with a dot"
    if not parts[-1]:
        return "ends with a dot"
    if not parts[1]:
        return "has two dots together"
    return None
