"""The characters no text the bot shows may carry, and text made one line without them. Pure.

C0/C1 controls (NUL, ESC, ...; Unicode's category Cc is exactly U+0000-001F and U+007F-009F) except tab and newlines,
and the bidi controls that make text display in another order than it is read: the marks (U+061C, U+200E, U+200F),
embeddings, overrides and isolates. The policy gate refuses them in what a member types (bot.moderation.policy), so
what Discord shows of a prompt is what the gate read; what passed no gate (names, a moderator's reason) is shown
without them: in Discord (bot.ui.text, bot.moderation.text) and on the web gallery's pages (bot.web.pages). A line
for the operator shows them escaped instead (t2v.errors.visible): a setting's value is named as it was given.
And `clipped`: a list cut at an entry boundary to fit one message (MESSAGE_CHARS), "… and N more" included, for
Discord's answers and moderation's refusals alike.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from t2v.errors import HIDDEN_RE

MESSAGE_CHARS = 2000  # Discord's limit on the content of one message
UNSAFE_RE = re.compile(f"(?![\t\n\r\u2028\u2029]){HIDDEN_RE.pattern}")  # t2v's hidden characters but the breaks


def one_line(text: str) -> str:
    """text without unsafe characters, on one line: each run of them and of whitespace is one space (some of them,
    \\x0b, \\x1c and \\x85, separate words), none at either end."""
    return " ".join(UNSAFE_RE.sub(" ", text).split())


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
