"""The prompt policy gate: English only, then the moderators' content denylist. Discord-free and pure.

Usage: `PolicyGate(entries).check_prompt(prompt)` → `Verdict`; see shared/research/policy-libs.md for the design.
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
from bot.moderation.policy.gate import CATEGORY_TEXT, MAX_PROMPT_CHARS, PolicyGate, Verdict
from bot.moderation.policy.language import EnglishDetector, english_detector, is_latin_script
from bot.moderation.policy.normalise import normalise

__all__ = [
    "CATEGORIES",
    "CATEGORY_TEXT",
    "MAX_PROMPT_CHARS",
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
