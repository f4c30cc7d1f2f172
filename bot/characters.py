"""The characters no text the bot shows may carry, and text made one line without them. Pure.

C0/C1 controls (NUL, ESC, ...; Unicode's category Cc is exactly U+0000-001F and U+007F-009F) except tab and newlines,
and the bidi controls that make text display in another order than it is read: the marks (U+061C, U+200E, U+200F),
embeddings, overrides and isolates. The policy gate refuses them in what a member types (bot.moderation.policy), so
what Discord shows of a prompt is what the gate read; what passed no gate (names, a moderator's reason) is shown
without them: in Discord (bot.ui.text, bot.moderation.text) and on the web gallery's pages (bot.web.pages). A line
for the operator shows them escaped instead (t2v.errors.visible): a setting's value is named as it was given.
"""

from __future__ import annotations

import re

UNSAFE_RE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def one_line(text: str) -> str:
    """text without unsafe characters, on one line: each run of them and of whitespace is one space (some of them,
    \\x0b, \\x1c and \\x85, separate words), none at either end."""
    return " ".join(UNSAFE_RE.sub(" ", text).split())
