"""The characters no text the bot shows may carry, text made one line without them, typed text made inert for
Discord, and answers cut to fit one message. Pure (Discord's text rules, through discord.py's escapers).

C0/C1 controls (NUL, ESC, ...; Unicode's category Cc is exactly U+0000-001F and U+007F-009F) except tab and newlines,
and the bidi controls that make text display in another order than it is read: the marks (U+061C, U+200E, U+200F),
embeddings, overrides and isolates. The policy gate refuses them in what a member types (bot.moderation.policy), so
what Discord shows of a prompt is what the gate read; what passed no gate (names, a moderator's reason) is shown
without them: in Discord (`shown`, below) and on the web gallery's pages (bot.web.pages). A line for the operator
shows them escaped instead (t2v.errors.visible): a setting's value is named as it was given.

`shown`: text someone typed (a prompt, a name, a moderator's reason, a denylist pattern) made inert for a Discord
message, the one escaper of every answer and refusal, Discord's and moderation's alike — what Discord shows is what
the policy read, and nothing more happens:

- the characters above are removed, so the text cannot display in another order than the denylist read it, nor
  carry terminal escapes into logs or copies; one line: newlines and tabs become spaces;
- links are wrapped in <...>, which Discord shows as a link but never unfurls into a preview;
- markdown (bold, spoilers, masked links "[x](url)", headings, quotes), mentions (@everyone, <@id>, <#id>) and the
  other tags Discord draws as something else (custom emoji <:name:id>, which would show an image the denylist never
  read, timestamps <t:0:R>, command mentions </name:id>) are escaped, by discord.py's own escapers, so they show as
  typed;
- clipped to a length, with an ellipsis, between pieces (`clip`, below): a link is kept whole or left out whole, and
  an escape ("\\*") is never cut from the character it escapes.

`invisible`: whether typed text shows nothing at all (only spaces, zero-width and control characters), so that it
counts as blank wherever blank text has a meaning (a block's reason, a negative prompt).

`clip`: text cut to a length with an ellipsis, the cut of Discord's answers, its choices' names and the gallery's
titles alike: t2v.ellipsis's, the one cut of every text (between what reads as one character: a letter and its
accents, an emoji and its modifiers or what a zero-width joiner joins to it, a flag's two letters; never right after
a space, "snow …" reads as a gap; never over the length), and in text written for Discord, never inside an escape, a
link or a tag (<@id>, <https://...>).

And `clipped`: a list cut at an entry boundary to fit one message (MESSAGE_CHARS), "… and N more" included, for
Discord's answers and moderation's refusals alike.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator, Sequence

from discord.utils import escape_markdown, escape_mentions

from t2v import ellipsis
from t2v.errors import HIDDEN_RE
from t2v.request import INVISIBLE

MESSAGE_CHARS = 2000  # Discord's limit on the content of one message
SHOWN = 700  # characters of escaped text `shown` keeps unless told
UNSAFE_RE = re.compile(f"(?![\t\n\r\u2028\u2029]){HIDDEN_RE.pattern}")  # t2v's hidden characters but the breaks
_URL_RE = re.compile(r"\b(?:https?|ftp|discord)://[^\s<>]+|\bwww\.[^\s<>]+", re.IGNORECASE)
_MASKED_LINK_RE = re.compile(r"(?<!\\)([\[\]])")  # "[x](url)": escape_markdown leaves the brackets
_DISCORD_TAG_RE = re.compile(r"<(?=[@#:/]|a:|t:|id:)")  # <@user>, <#channel>, <:emoji:id>, <a:emoji:id>,
#                                                           </command:id>, <t:timestamp>, <id:customize>: a \< shows it
# in text written for Discord, what a cut keeps whole or leaves out whole: a wrapped link, a mention, an emoji, a link
_WHOLE_RE = re.compile(rf"(?<!\\)<[^\s<>]+>|{_URL_RE.pattern}", re.IGNORECASE)
_URL_END = ".,;:!?)]}'\""  # punctuation after a link belongs to the sentence


def one_line(text: str) -> str:
    """text without unsafe characters, on one line: each run of them and of whitespace is one space (some of them,
    \\x0b, \\x1c and \\x85, separate words), none at either end."""
    return " ".join(UNSAFE_RE.sub(" ", text).split())


def invisible(text: str) -> bool:
    """True when no character of `text` shows: nothing, or only spaces, controls and format characters (zero-width
    spaces, bidi marks), as t2v reads a blank prompt (t2v.request.INVISIBLE). Typed text that is invisible is blank:
    shown, it would read as nothing at all."""
    return all(unicodedata.category(char) in INVISIBLE for char in text)


def shown(text: str, limit: int = SHOWN) -> str:
    """Typed text made inert for a Discord message: no unsafe characters, one line, links not unfurled, markdown and
    mentions escaped, clipped to `limit` characters (at least 1) between pieces, with an ellipsis."""
    return ellipsis.cut(list(_pieces(one_line(text))), limit)


def clip(text: str, limit: int, *, discord: bool = False) -> str:
    """`text` as it is when it fits `limit` characters (at least 1), else cut to fit with an ellipsis: between
    symbols, with no space before the ellipsis (t2v.ellipsis.clip, the plain cut). `discord`: text written for a
    Discord message, whose escapes ("\\*"), links and tags (<@id>, <https://...>) are kept whole or left out whole
    too."""
    if len(text) <= limit or not discord:
        return ellipsis.clip(text, limit)
    pieces, last = [], 0
    for match in _WHOLE_RE.finditer(text):
        pieces += [*_escaped_symbols(text[last:match.start()]), match.group()]
        last = match.end()
    return ellipsis.cut([*pieces, *_escaped_symbols(text[last:])], limit)


def _escaped_symbols(text: str) -> list[str]:
    """`text` in symbols (t2v.ellipsis.symbols), each backslash with the symbol it escapes."""
    pieces: list[str] = []
    escaping = False
    for symbol in ellipsis.symbols(text):
        if escaping:
            pieces[-1] += symbol
        else:
            pieces.append(symbol)
        escaping = not escaping and symbol == "\\"
    return pieces


def _pieces(flat: str) -> Iterator[str]:
    """The escaped text in pieces that can be cut between: each link wrapped in <...>, each escape with the symbol
    it escapes, each other symbol alone."""
    last = 0
    for match in _URL_RE.finditer(flat):
        url = match.group().rstrip(_URL_END)
        yield from _escaped_symbols(_escaped(flat[last:match.start()]))
        yield f"<{url}>"
        last = match.start() + len(url)
    yield from _escaped_symbols(_escaped(flat[last:]))


def _escaped(text: str) -> str:
    text = escape_markdown(text, ignore_links=False)
    text = escape_mentions(_MASKED_LINK_RE.sub(r"\\\1", text))
    return _DISCORD_TAG_RE.sub(r"\\<", text)


def clipped(entries: Sequence[str], limit: int = MESSAGE_CHARS, *, more: int = 0, at_least: bool = False,
            sep: str = "\n") -> str:
    """The entries joined by `sep` (an entry may hold newlines of its own), cut at an entry boundary so that the
    whole, "… and N more" included, fits `limit` characters. N counts the entries cut and the `more` left out
    before (at least that many, when `at_least`: the caller could not count them all)."""
    def tail(left: int) -> str:
        return f"… and {'at least ' if at_least else ''}{left} more"

    sizes = [len(entry) for entry in entries]
    kept, size = len(entries), sum(sizes) + len(sep) * max(len(entries) - 1, 0)  # of sep.join(entries[:kept])
    while True:
        left = len(entries) - kept + more
        if kept == 0 or size + (len(sep) + len(tail(left)) if left else 0) <= limit:
            break
        kept -= 1
        size -= sizes[kept] + (len(sep) if kept else 0)
    return sep.join([*entries[:kept], *([tail(left)] if left else [])])


def counted(count: int, noun: str, plural: str | None = None) -> str:
    """"1 video", "2 videos", "0 videos": a count with its noun in the right number (`plural`, else noun + s), in
    Discord's answers and on the web pages alike."""
    return f"{count} {noun}" if count == 1 else f"{count} {plural or noun + 's'}"
