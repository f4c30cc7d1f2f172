"""Sizes as people read them, the one way every message writes them: a byte count ('12.3 MB', decimal units as the
Hugging Face Hub shows a file) and a frame's width×height ('256×256'). For t2v's command line and errors, and the
bot's replies, logs and health page alike. Loads no torch."""

from __future__ import annotations

MB, GB = 10**6, 10**9  # decimal units: what bytes_text writes, and what a setting named in GB counts


def bytes_text(count: int | float) -> str:
    """A byte count: '1,000 bytes', '12.3 MB', '3.4 GB' (decimal units, as the Hub shows)."""
    if count >= GB:
        return f"{count / GB:.1f} GB"
    return f"{count / MB:.1f} MB" if count >= MB else f"{int(count):,} bytes"


def frame_text(width: object, height: object) -> str:
    """A frame's size, width first: '256×256', '576×320'."""
    return f"{width}×{height}"
