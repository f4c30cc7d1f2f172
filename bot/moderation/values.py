"""The one text a member reads for a value /video's options cannot have: the aspect, the sampler, or a number of t2v's
request (whose rules t2v.request decides), in docs/voice.md's refusal form ("Steps must be 1–150; you asked for 0.").

The same words for /video, the buttons and restored jobs (bot.jobs.spec, which adds the prompt's) and for a server's
presets (bot.moderation.servers, which adds the style's and the caps'). The typed value is shown inert
(bot.characters.shown): a preset's comes from a moderator, a stored job's from the database.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from bot.characters import shown
from t2v.errors import InvalidRequest
from t2v.request import SAMPLER_NAMES, check_value, plain_number, value_range

# each option as a member reads it (docs/voice.md: in words, never as typed)
NAMED = {"aspect": "the aspect", "seed": "the seed", "steps": "steps", "guidance": "guidance", "frames": "frames",
         "width": "the width", "height": "the height", "fps": "the frame rate", "sampler": "the sampler"}
TYPED_CHARS = 40  # of a typed value, a refusal shows at most this many characters
CHOSEN = ("aspect", "sampler")  # values picked from a list, shown bare; a text typed where a number goes is quoted


def refusal(name: str, value: Any, aspects: Iterable[str], *, clause: bool = False) -> str | None:
    """Why the option `name` (one of NAMED) cannot be `value`, or None: one sentence naming it in words, the value
    and what would be right, the aspect one of `aspects`. With `clause`: the reason in lower case and without a full
    stop, to go on after words that name the setting (a failed job's "invalid settings: ", a log line's "preset
    steps=0 is left out: "): "steps must be 1–150, not 0"."""
    if name == "aspect":
        names = list(aspects)
        allowed = None if value in names else f"one of {', '.join(names)}"
    else:
        allowed = _allowed(name, value)
    if allowed is None:
        return None
    what, typed = NAMED[name], shown(str(value), TYPED_CHARS)
    if isinstance(value, str) and name not in CHOSEN:
        typed = f"“{typed}”"
    return f"{what} must be {allowed}, not {typed}" if clause else \
        f"{what[0].upper()}{what[1:]} must be {allowed}; you asked for {typed}."


def _allowed(name: str, value: Any) -> str | None:
    """What a request's field `name` may be, said for a member, where t2v refuses `value` (t2v.request.check_value);
    None where it takes it."""
    try:
        check_value(name, value)
    except InvalidRequest:
        pass
    else:
        return None
    if name == "sampler":
        return f"one of {', '.join(SAMPLER_NAMES)}"
    low, high = value_range(name)
    try:
        number = plain_number(value, name, real=name == "guidance")
    except InvalidRequest:
        return f"{'a number' if name == 'guidance' else 'a whole number'} from {low} to {high}"
    return f"{low}–{high}" if not low <= number <= high else f"a multiple of 64 from {low} to {high}"
