"""The policy gate for user text: no control characters, the moderators' content denylist, English only. Pure.

Usage: `PolicyGate(entries).check_text(text, field)` → `Verdict`; docs/policy.md has the design and its measured rates.
"""

from bot.moderation.policy.denylist import Denylist, DenylistReport
from bot.moderation.policy.entries import (
    CATEGORIES,
    DenylistEntry,
    load_default_entries,
    parse_entries,
    parse_pattern,
    validate_entry,
)
from bot.moderation.policy.gate import CATEGORY_TEXT, MAX_PROMPT_CHARS, NEGATIVE, PROMPT, PolicyGate, Verdict
from bot.moderation.policy.language import EnglishDetector, english_detector, is_latin_script
from bot.moderation.policy.normalise import normalise

__all__ = [
    "CATEGORIES",
    "CATEGORY_TEXT",
    "MAX_PROMPT_CHARS",
    "NEGATIVE",
    "PROMPT",
    "Denylist",
    "DenylistEntry",
    "DenylistReport",
    "EnglishDetector",
    "PolicyGate",
    "Verdict",
    "english_detector",
    "is_latin_script",
    "load_default_entries",
    "normalise",
    "parse_entries",
    "parse_pattern",
    "validate_entry",
]
