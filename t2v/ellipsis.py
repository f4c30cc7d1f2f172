"""Text cut to a length with an ellipsis: the one cut of text a person reads cut short, t2v's lines and the bot's
alike (bot.characters.clip builds on it for Discord's text, whose escapes, links and tags it keeps whole too).

A cut falls between what reads as one character (Unicode's extended grapheme clusters, by `regex`'s \\X: a letter
and its accents, an emoji and its modifiers or what a zero-width joiner joins to it, a flag's two letters), never
right after a space ("snow …" reads as a gap), and never over the length, the ellipsis included.

Its own module rather than t2v.errors beside `visible`: t2v.errors is the exception hierarchy every caller imports to
catch t2v's errors, and this needs a third-party module (`regex`: the standard library's `re` has no \\X) that the
errors need not load; nor is a cut an error's business. Torch-free and importing nothing of t2v, so the lowest
layers may use it: t2v's own checks (t2v.preflight) and the bot's start (bot.startup, bot.app), which may not import
bot.characters.
"""

from __future__ import annotations

from collections.abc import Sequence

import regex

ELLIPSIS = "…"
_SYMBOL_RE = regex.compile(r"\X")  # one grapheme cluster: what a reader sees as one character


def clip(text: str, limit: int) -> str:
    """`text` as it is when it fits `limit` characters (at least 1), else cut to fit with an ellipsis: between
    symbols (`symbols`), with no space before the ellipsis."""
    return text if len(text) <= limit else cut(symbols(text), limit)


def cut(pieces: Sequence[str], limit: int) -> str:
    """The pieces joined when that fits `limit` characters (at least 1), else as many of them as fit with an ellipsis
    after them, none a space before it: a caller's pieces are what a cut may not split (symbols, or a link whole)."""
    if limit < 1:
        raise ValueError(f"a text is cut to 1 character or more, not {limit}")
    if sum(map(len, pieces)) <= limit:
        return "".join(pieces)
    kept, size = [], len(ELLIPSIS)
    for piece in pieces:
        size += len(piece)
        if size > limit:
            break
        kept.append(piece)
    while kept and kept[-1].isspace():  # "snow …" reads as a gap: "snow…"
        kept.pop()
    return "".join(kept) + ELLIPSIS


def symbols(text: str) -> list[str]:
    """`text` in what a reader sees as one character each: Unicode's extended grapheme clusters, by `regex`'s \\X."""
    return _SYMBOL_RE.findall(text)
