"""The gate every piece of user text passes before any quota or GPU time, and before any public message shows it.

Order: length → empty → bidi and control characters → content denylist (on the normalised text, so an obfuscated
English word is refused for the content policy, not as "not English") → stacked combining marks ("zalgo" text) →
English. A refusal names the field: the prompt, the negative prompt, or whatever a future option adds
(`check_text(text, field)`).
"""

from __future__ import annotations

import logging
import unicodedata
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from typing import Literal

from bot.moderation.policy import lexicon
from bot.moderation.policy.denylist import MAX_REMEMBERED_FORMS, Denylist
from bot.moderation.policy.entries import DenylistEntry, load_default_entries
from bot.moderation.policy.language import english_detector, foreign_words, has_letters, is_latin_script
from bot.moderation.policy.normalise import MAX_STACKED_MARKS, fold_letter, stacked_marks, unsafe_characters

log = logging.getLogger(__name__)

MAX_PROMPT_CHARS = 500  # checked on the raw prompt, before any normalisation or model call

Reason = Literal["empty", "too_long", "invalid", "not_english", "denylist"]
PROMPT = "prompt"
NEGATIVE = "negative prompt"

LANGUAGE_NAMES = {"es": "Spanish", "fr": "French", "de": "German", "it": "Italian", "pt": "Portuguese", "nl": "Dutch"}

# User-facing names of the categories; refusals name the category, never the entry that fired.
CATEGORY_TEXT = {
    "sexual": "sexual content",
    "violence": "violent or graphic content",
    "hate": "hateful or demeaning content",
    "misinformation": "misinformation (content framed as real news or evidence)",
    "real_person": "a realistic depiction of a real person",
}


@dataclass(frozen=True)
class Verdict:
    """The gate's answer; `matched` names the deny entry for logs and moderators only, never for the user."""

    allowed: bool
    reason: Reason | None = None
    category: str | None = None
    message: str = ""
    matched: str | None = None
    field: str = PROMPT

    @property
    def logged(self) -> str | None:
        """The reason as the job row keeps it: `denylist:violence`, `invalid:characters`, `not_english`, ..."""
        if self.reason == "denylist":
            return f"denylist:{self.category}"
        return "invalid:characters" if self.reason == "invalid" else self.reason


ALLOWED = Verdict(allowed=True)


def _is_blank(prompt: str) -> bool:
    """True when the prompt is only whitespace and invisible format characters."""
    if prompt.isascii():
        return not prompt.strip()
    return all(c.isspace() or unicodedata.category(c) == "Cf" for c in prompt)


class PolicyGate:
    """English-only and content-policy checks over an editable list of entries; pure, no I/O after construction."""

    def __init__(
        self,
        entries: Iterable[DenylistEntry] | None = None,
        *,
        is_english: Callable[[str], bool] | None = None,
        remembered: int = MAX_REMEMBERED_FORMS,
    ) -> None:
        self._remembered = remembered  # readings the list keeps per memory (Denylist)
        self.denylist = Denylist(load_default_entries() if entries is None else entries, remembered=remembered)
        self._is_english = is_english or english_detector()

    def warm_up(self) -> None:
        """Load now what the first prompts would otherwise wait for (a few seconds: run it off the event loop): the
        language models, the word lists and the look-alike letter tables."""
        load = getattr(self._is_english, "load", None)
        if load is not None:
            load()
        lexicon.load()
        fold_letter("ɑ")  # confusable-homoglyphs reads its tables on the first non-ASCII letter

    def replace_entries(self, entries: Iterable[DenylistEntry]) -> None:
        """Use a new list from the next prompt on: it is compiled first, then swapped in with one assignment."""
        denylist = Denylist(entries, remembered=self._remembered)
        self.denylist = denylist
        log.info("denylist replaced: %d entries", len(denylist.entries))

    def check_prompt(self, prompt: str) -> Verdict:
        """Decide whether prompt may be generated; the first failing check gives the reason."""
        return self.check_text(prompt, PROMPT)

    def check_text(self, text: str, field: str = PROMPT, *, optional: bool = False) -> Verdict:
        """Decide whether one piece of user text may reach the model and a public message; `field` names it in the
        refusal; an `optional` field (the negative prompt) may be blank."""
        your = f"Your {field}"
        if len(text) > MAX_PROMPT_CHARS:
            return Verdict(False, "too_long", field=field, message=(
                f"{your} is {len(text)} characters long; the limit is {MAX_PROMPT_CHARS}. Please shorten it."))
        if _is_blank(text):
            if optional:
                return ALLOWED
            return Verdict(False, "empty", field=field,
                           message=f"{your} is empty. Describe the video you want, in English.")
        unsafe = unsafe_characters(text)
        if unsafe:
            return Verdict(False, "invalid", field=field, message=(
                f"{your} contains invisible control or text-direction characters ({', '.join(unsafe[:5])}). "
                "Please type it again without them."))
        entry = self.denylist.match(text)
        if entry is not None:
            log.debug("%s refused by denylist entry %r (%s)", field, entry.pattern, entry.category)
            return Verdict(False, "denylist", entry.category, matched=entry.pattern, field=field, message=(
                f"{your} was refused under the content policy: {CATEGORY_TEXT[entry.category]} "
                "is not allowed. Please describe something else."))
        stacked = stacked_marks(text)
        if stacked is not None:
            base, count = stacked
            on = f"one character (“{base}”)" if base.strip() and base.isprintable() else "one character"
            return Verdict(False, "invalid", field=field, message=(
                f"{your} has {count} accent marks stacked on {on}; a character takes at most {MAX_STACKED_MARKS}. "
                "Please type it again without them."))
        refusal = self._check_language(unicodedata.normalize("NFKC", text), your)
        if refusal is not None:
            return replace(refusal, field=field)
        return ALLOWED

    def _check_language(self, text: str, your: str) -> Verdict | None:
        """Refuse text with no letters, with non-Latin letters, or that the detectors do not read as English."""
        if not has_letters(text):
            message = f"{your} has no words. Describe the video you want, in English."
        elif not is_latin_script(text):
            message = f"{your} must be in English; it contains letters from another alphabet."
        elif not self._is_english(text):
            foreign = foreign_words(text)
            if foreign:  # say which word, so that the user can put the English one
                word, language = foreign[0]
                message = (f"{your} has a word of another language, “{word}” ({LANGUAGE_NAMES[language]}), and "
                           "everything the model reads must be English. Please use the English word.")
            else:
                message = (f"{your} does not look like English, and everything the model reads must be English. "
                           "If it is English, add a few more English words.")
        else:
            return None
        return Verdict(False, "not_english", message=message)
