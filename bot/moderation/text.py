"""Moderation's text at its edges: Discord timestamps, a sentence's end, what a blocked user is told,
and a block's length read from what a moderator typed (typed text is shown through bot.characters.shown)."""

from __future__ import annotations

import re
from datetime import datetime, timedelta

from bot.characters import shown
from bot.errors import InvalidInput
from storage import BlockRecord

MAX_BLOCK = timedelta(days=3650)
PERMANENT = ("permanent", "perm", "forever", "indefinite")
DURATION_FORMS = "a number and a unit such as 30m, 2h, 7d or 2w (or combined, 1d12h), or 'permanent'"
BUTTONS = {"reroll": "🔁 Reroll", "edit": "✏️ Edit prompt", "upscale": "⬆️ Upscale"}  # what made a request from a job
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_PART = r"(\d+)\s*(weeks?|wks?|w|days?|d|hours?|hrs?|h|minutes?|mins?|m|seconds?|secs?|s)"
_DURATION_RE = re.compile(rf"(?:{_PART}\s*)+")
_PART_RE = re.compile(_PART)
_CALENDAR_RE = re.compile(r"\d+\s*(?:months?|mos?|mths?|years?|yrs?|y)(?![a-z])")  # "1y", "6 months": no fixed length


def discord_time(when: datetime, style: str = "R") -> str:
    """A Discord timestamp: each reader sees it in their own time zone ("R": relative, "f": date and time)."""
    return f"<t:{int(when.timestamp())}:{style}>"


def parse_duration(text: str | None) -> timedelta | None:
    """A block's length from text such as 30m, 2h, 7d, 1w2d; None for permanent (or None given); InvalidInput, also
    for blank text (a typo must not make a block permanent)."""
    if text is None:
        return None
    words = " ".join(text.split()).lower()
    if not words:
        raise InvalidInput(f"The duration is blank: use {DURATION_FORMS}, or leave it out for a permanent block.")
    if words in PERMANENT:
        return None
    if not _DURATION_RE.fullmatch(words):
        calendar = ("; months and years are no unit, as their lengths vary: 30d is a month, 365d a year"
                    if _CALENDAR_RE.search(words) else "")
        raise InvalidInput(f"“{shown(text or '', 40)}” is not a duration: use {DURATION_FORMS}{calendar}.")
    seconds = sum(int(count) * _UNIT_SECONDS[unit[0]] for count, unit in _PART_RE.findall(words))
    if not 0 < seconds <= MAX_BLOCK.total_seconds():  # compared as a number: a huge one is no timedelta
        raise InvalidInput(f"A block of “{shown(words, 40)}” is out of range: it must be longer than 0 and at most "
                           f"{MAX_BLOCK.days} days; use 'permanent' for no end.")
    return timedelta(seconds=seconds)


def block_message(block: BlockRecord) -> str:
    """What a blocked user is told: the reason and until when."""
    if block.until is None:
        return f"You are blocked from making videos: {ended(shown(block.reason))} A moderator can lift the block."
    return (f"You are blocked from making videos until {discord_time(block.until, 'f')} "
            f"({discord_time(block.until)}): {ended(shown(block.reason))}")


def ended(text: str) -> str:
    """Text that ends its sentence: a full stop added unless it ends with one, a ?, a ! or a … (clipped)."""
    return text if text.endswith((".", "!", "?", "…")) else f"{text}."
