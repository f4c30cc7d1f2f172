"""Words of the Discord layer's answers: a count with its noun in the right number. Typed text is made inert by
bot.characters.shown, and list answers are cut to one message by bot.characters.clipped."""

from __future__ import annotations


def counted(count: int, noun: str, plural: str | None = None) -> str:
    """"1 video", "2 videos", "0 videos": a count with its noun in the right number (`plural`, else noun + s)."""
    return f"{count} {noun}" if count == 1 else f"{count} {plural or noun + 's'}"
