"""The prompt gate, run before any quota or GPU time: length → empty → English → content denylist."""

from __future__ import annotations

import logging
import unicodedata
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Literal

from bot.moderation.policy.denylist import Denylist
from bot.moderation.policy.entries import DenylistEntry, load_default_entries
from bot.moderation.policy.language import english_detector, has_letters, is_latin_script

log = logging.getLogger(__name__)

MAX_PROMPT_CHARS = 500  # checked on the raw prompt, before any normalisation or model call

Reason = Literal["empty", "too_long", "not_english", "denylist"]

# User-facing names of the categories; refusals name the category, never the entry that fired.
CATEGORY_TEXT = {
    "sexual": "sexual content",
    "violence": "violent or graphic content",
    "hate": "hateful or demeaning content",
    "misinformation": "misinformation (content framed as real news or evidence)",
    "real_person": "realistic depictions of real people",
}


@dataclass(frozen=True)
class Verdict:
    """The gate's answer; `matched` names the deny entry for logs and moderators only, never for the user."""

    allowed: bool
    reason: Reason | None = None
    category: str | None = None
    message: str = ""
    matched: str | None = None


ALLOWED = Verdict(allowed=True)


def _is_blank(prompt: str) -> bool:
    """True when the prompt is only whitespace and invisible format characters."""
    return all(c.isspace() or unicodedata.category(c) == "Cf" for c in prompt)


class PolicyGate:
    """English-only and content-policy checks over an editable list of entries; pure, no I/O after construction."""

    def __init__(
        self,
        entries: Iterable[DenylistEntry] | None = None,
        *,
        is_english: Callable[[str], bool] | None = None,
    ) -> None:
        self.denylist = Denylist(load_default_entries() if entries is None else entries)
        self._is_english = is_english or english_detector()

    def replace_entries(self, entries: Iterable[DenylistEntry]) -> None:
        """Use a new list from the next prompt on: it is compiled first, then swapped in with one assignment."""
        denylist = Denylist(entries)
        self.denylist = denylist
        log.info("denylist replaced: %d entries", len(denylist.entries))

    def check_prompt(self, prompt: str) -> Verdict:
        """Decide whether prompt may be generated; the first failing check gives the reason."""
        if len(prompt) > MAX_PROMPT_CHARS:
            return Verdict(False, "too_long", message=f"Your prompt is {len(prompt)} characters long; "
                                                      f"the limit is {MAX_PROMPT_CHARS}. Please shorten it.")
        if _is_blank(prompt):
            return Verdict(False, "empty", message="Your prompt is empty. Describe the video you want, in English.")
        refusal = self._check_language(unicodedata.normalize("NFKC", prompt))
        if refusal is not None:
            return refusal
        entry = self.denylist.match(prompt)
        if entry is not None:
            log.debug("prompt refused by denylist entry %r (%s)", entry.pattern, entry.category)
            return Verdict(False, "denylist", entry.category, matched=entry.pattern, message=(
                f"This prompt was refused under the content policy: {CATEGORY_TEXT[entry.category]} "
                "is not allowed. Please describe something else."))
        return ALLOWED

    def _check_language(self, text: str) -> Verdict | None:
        """Refuse text with no letters, with non-Latin letters, or that the detectors do not read as English."""
        if not has_letters(text):
            message = "Your prompt has no words. Describe the video you want, in English."
        elif not is_latin_script(text):
            message = "Prompts must be in English; this one contains letters from another alphabet."
        elif not self._is_english(text):
            message = ("This prompt does not look like English, and prompts must be in English. "
                       "If it is English, add a few more English words.")
        else:
            return None
        return Verdict(False, "not_english", message=message)
