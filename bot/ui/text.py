"""User text made inert for a public message, and answers cut to fit one message.

`shown` makes user text inert: what Discord shows is what the policy read, and nothing more happens.

- control characters (NUL, ESC, ...) and bidi embeddings, overrides and isolates are removed, so the text cannot
  display in another order than the denylist read it, nor carry terminal escapes into logs or copies;
- one line: newlines and tabs become spaces;
- links are wrapped in <...>, which Discord shows as a link but never unfurls into a preview;
- markdown (bold, spoilers, masked links "[x](url)", headings, quotes), mentions (@everyone, <@id>, <#id>) and the
  other tags Discord draws as something else (custom emoji <:name:id>, which would show an image the denylist never
  read, timestamps <t:0:R>, command mentions </name:id>) are escaped, so they show as typed;
- clipped to a length, with an ellipsis, between pieces: a link is kept whole or left out whole, and an escape
  ("\\*") is never cut from the character it escapes.

A list answer is cut to one message by bot.characters.clipped.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import discord

from bot.characters import one_line

PROMPT_SHOWN = 700  # characters of escaped prompt per message

_URL_RE = re.compile(r"\b(?:https?|ftp|discord)://[^\s<>]+|\bwww\.[^\s<>]+", re.IGNORECASE)
_MASKED_LINK_RE = re.compile(r"(?<!\\)([\[\]])")  # "[x](url)": escape_markdown leaves the brackets
_DISCORD_TAG_RE = re.compile(r"<(?=[@#:/]|a:|t:|id:)")  # <@user>, <#channel>, <:emoji:id>, <a:emoji:id>,
#                                                           </command:id>, <t:timestamp>, <id:customize>: a \< shows it
_ESCAPED_UNIT_RE = re.compile(r"\\.|.", re.DOTALL)  # an escape and the character it escapes, or one character
_URL_END = ".,;:!?)]}'\""  # punctuation after a link belongs to the sentence
_ELLIPSIS = "…"


def shown(text: str, limit: int = PROMPT_SHOWN) -> str:
    """User text made inert for a message: no controls, one line, links not unfurled, markdown and mentions
    escaped, clipped to `limit` characters (at least 1) between pieces, with an ellipsis."""
    pieces = list(_pieces(one_line(text)))
    if sum(map(len, pieces)) <= limit:
        return "".join(pieces)
    kept, size = [], len(_ELLIPSIS)
    for piece in pieces:
        size += len(piece)
        if size > limit:
            break
        kept.append(piece)
    while kept and kept[-1] == " ":  # "snow …" reads as a gap: "snow…"
        kept.pop()
    return "".join(kept) + _ELLIPSIS


def _pieces(flat: str) -> Iterator[str]:
    """The escaped text in pieces that can be cut between: each link wrapped in <...>, each escape with the
    character it escapes, each other character alone."""
    last = 0
    for match in _URL_RE.finditer(flat):
        url = match.group().rstrip(_URL_END)
        yield from _ESCAPED_UNIT_RE.findall(_escaped(flat[last:match.start()]))
        yield f"<{url}>"
        last = match.start() + len(url)
    yield from _ESCAPED_UNIT_RE.findall(_escaped(flat[last:]))


def _escaped(text: str) -> str:
    text = discord.utils.escape_markdown(text, ignore_links=False)
    text = discord.utils.escape_mentions(_MASKED_LINK_RE.sub(r"\\\1", text))
    return _DISCORD_TAG_RE.sub(r"\\<", text)


def counted(count: int, noun: str, plural: str | None = None) -> str:
    """"1 video", "2 videos", "0 videos": a count with its noun in the right number (`plural`, else noun + s)."""
    return f"{count} {noun}" if count == 1 else f"{count} {plural or noun + 's'}"
