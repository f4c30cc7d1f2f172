"""User text made inert for a public message: what Discord shows is what the policy read, and nothing more happens.

- control characters (NUL, ESC, ...) and bidi embeddings, overrides and isolates are removed, so the text cannot
  display in another order than the denylist read it, nor carry terminal escapes into logs or copies;
- one line: newlines and tabs become spaces;
- links are wrapped in <...>, which Discord shows as a link but never unfurls into a preview;
- markdown (bold, spoilers, masked links "[x](url)", headings, quotes) and mentions (@everyone, <@id>, <#id>) are
  escaped, so they show as typed;
- clipped to a length, with an ellipsis.
"""

from __future__ import annotations

import re

import discord

from bot.moderation.policy.normalise import UNSAFE_RE

PROMPT_SHOWN = 700  # characters of escaped prompt per message; Discord allows 2000 in all

_URL_RE = re.compile(r"\b(?:https?|ftp|discord)://[^\s<>]+|\bwww\.[^\s<>]+", re.IGNORECASE)
_MASKED_LINK_RE = re.compile(r"(?<!\\)([\[\]])")  # "[x](url)": escape_markdown leaves the brackets
_URL_END = ".,;:!?)]}'\""  # punctuation after a link belongs to the sentence
_SPACES = str.maketrans("\t\n\r", "   ")


def without_controls(text: str) -> str:
    """text minus the characters the policy gate refuses (controls, bidi controls); tabs and newlines become
    spaces."""
    return UNSAFE_RE.sub("", text).translate(_SPACES)


def shown(text: str, limit: int = PROMPT_SHOWN) -> str:
    """User text made inert for a message: no controls, one line, links not unfurled, markdown and mentions
    escaped, clipped to `limit` characters."""
    flat = " ".join(without_controls(text).split())
    pieces, last = [], 0
    for match in _URL_RE.finditer(flat):
        url = match.group().rstrip(_URL_END)
        pieces.append(_escaped(flat[last:match.start()]))
        pieces.append(f"<{url}>")
        last = match.start() + len(url)
    pieces.append(_escaped(flat[last:]))
    escaped = "".join(pieces)
    return escaped if len(escaped) <= limit else escaped[: limit - 1] + "…"


def _escaped(text: str) -> str:
    text = discord.utils.escape_markdown(text, ignore_links=False)
    return discord.utils.escape_mentions(_MASKED_LINK_RE.sub(r"\\\1", text))


def counted(count: int, noun: str, plural: str | None = None) -> str:
    """"1 video", "2 videos", "0 videos": a count with its noun in the right number (`plural`, else noun + s)."""
    return f"{count} {noun}" if count == 1 else f"{count} {plural or noun + 's'}"
