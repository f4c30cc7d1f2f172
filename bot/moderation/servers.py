"""What each server's moderators set for their server besides quotas: the /video presets and the showcase channel.

A server's presets are its defaults for /video's options (aspect, frames, steps, sampler, guidance, negative prompt,
style: set with /videostyle default),
always within the operator's limits (MAX_STEPS, MAX_FRAMES, t2v's ranges); an option the user leaves out takes the
server's preset, then the operator's default. Stored as moderation settings of the server, audited, and cached here
(this process is the only writer; the database is the truth at start).
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from bot.characters import invisible, shown
from bot.errors import InvalidInput
from bot.moderation import values
from bot.moderation.gates import ServerGates
from bot.moderation.policy import NEGATIVE
from bot.moderation.rules import Moderation
from bot.moderation.styles import closest, listed
from bot.moderation.text import BUTTONS
from t2v.request import check_value, negative_is_prompt

log = logging.getLogger(__name__)

PRESETS_KEY = "presets"  # moderation_settings key of a server's /video presets
SHOWCASE_KEY = "showcase_channel"  # ... and of its showcase channel
MAX_NEGATIVE_CHARS = 300  # /video's negative option takes as much


@dataclass(frozen=True)
class Presets:
    """A server's defaults for /video's options; None: the operator's default applies."""

    aspect: str | None = None
    frames: int | None = None
    steps: int | None = None
    sampler: str | None = None
    guidance: float | None = None
    negative: str | None = None
    style: str | None = None  # a style of STYLES_FILE; used while it is on in the server (bot.moderation.styles)

    def given(self) -> dict[str, Any]:
        """The options this server set, by name."""
        return {name: value for name, value in asdict(self).items() if value is not None}


PRESET_NAMES = tuple(field.name for field in fields(Presets))


@dataclass(frozen=True)
class PresetLimits:
    """The operator's limits presets must stay within."""

    aspects: tuple[str, ...]  # the aspect names /video offers
    max_steps: int
    max_frames: int
    styles: tuple[str, ...] = ()  # the styles the workers loaded

    def check(self, name: str, value: Any) -> Any:
        """The value if a preset may have it, else InvalidInput naming it and what is allowed (`refusal`)."""
        problem = self.refusal(name, value)
        if problem is not None:
            raise InvalidInput(problem)
        if name == "negative":
            text = " ".join(str(value).split())
            return None if invisible(text) else text  # zero-width spaces alone read, and render, as none
        if name in ("aspect", "style"):
            return value
        value = check_value(name, value)  # a NumPy scalar as the plain number it is
        return float(value) if name == "guidance" else value

    def refusal(self, name: str, value: Any, *, clause: bool = False) -> str | None:
        """Why a preset cannot have `value`, or None: one sentence in docs/voice.md's refusal form, what is wrong
        naming the value and what would be right ("Steps must be 1–150; you asked for 0."): the negative prompt's
        length, the style and the caps here, the others bot.moderation.values' (the aspect one of `aspects`), as
        /video's are. With `clause`: the reason in lower case and without a full stop, to go on after words that name
        the preset (a log line's "preset steps=0 is left out: steps must be 1–150, not 0")."""
        if name == "negative":  # only its length is a limit here (its words are for the server's gate)
            length = len(" ".join(str(value).split()))
            if length <= MAX_NEGATIVE_CHARS:
                return None
            if clause:
                return f"the negative prompt is {length} characters long, above the limit of {MAX_NEGATIVE_CHARS}"
            return f"The negative prompt is {length} characters long; the limit is {MAX_NEGATIVE_CHARS}."
        if name == "style":
            if value in self.styles:
                return None
            names, typed = list(self.styles), shown(str(value), values.TYPED_CHARS)
            if clause:
                return f"this bot has no style {typed} (its styles: {listed(names)})"
            return f"There is no style {typed}; the styles are: {listed(names)}.{closest(str(value), names)}"
        return values.refusal(name, value, self.aspects, clause=clause) or self.above_cap(name, value, clause=clause)

    def above_cap(self, name: str, value: Any, *, clause: bool = False) -> str | None:
        """Why a number of steps or frames is above the operator's cap (`above_cap`'s sentence, or its clause), or
        None: it is not, or it is not a number of steps or frames."""
        cap = {"steps": self.max_steps, "frames": self.max_frames}.get(name)
        return None if cap is None or not isinstance(value, int) else above_cap(name, value, cap, clause=clause)


def above_cap(name: str, value: int | None, cap: int, kept_from: tuple[str, int] | None = None, *,
              clause: bool = False) -> str | None:
    """Why `value` of steps or frames is above the operator's cap (MAX_STEPS, MAX_FRAMES), or None: one refusal, the
    same for a request and a server's preset (docs/voice.md: what is wrong, naming the value, and what would be
    right). A request a button made from a stored job (`kept_from`, as for `same_as_prompt`) keeps that job's value,
    which no button can change (the cap was lowered since): what is right is said as the member can do it from there.
    With `clause`: the reason in lower case and without a full stop, to go on after words that name the setting (a
    log line's "preset steps=100 is left out: ", a failed job's "invalid settings: ")."""
    if value is None or value <= cap:
        return None
    if clause:  # value > cap >= 1: a plural
        return f"{value} {name} are above this bot's limit of {cap}"
    limit = f"{name.capitalize()} must be at most {cap} on this bot"
    if kept_from is None:
        return f"{limit}; you asked for {value}."
    how, job_id = kept_from
    return (f"{limit}, and {BUTTONS[how]} keeps job #{job_id}'s {value} {name}: run /video with `{name}` at most "
            f"{cap} instead.")


def same_as_prompt(prompt: str, negative: str, kept_from: tuple[str, int] | None = None) -> str | None:
    """Why a request's negative prompt cannot be `negative`, or None: one equal to the prompt (in case and spacing
    too: t2v.request.negative_is_prompt, the CLI's rule as well) steers the video away from what it steers it to, so
    guidance cancels out and the video renders as at guidance 1; one sentence, naming it and what would be right (a
    server's default or the member's own). A request
    made from a stored job's settings by a button (`kept_from`: "reroll", "edit" or "upscale", and the job) keeps
    that job's negative prompt, which no button can change (a job kept from before this rule has one equal to its
    prompt): what is right is said as the member can do it from there."""
    if not negative_is_prompt(prompt, negative):
        return None
    problem = (f"The negative prompt “{shown(negative, 80)}” is the prompt itself, so guidance would cancel out (the "
               "video renders as at guidance 1)")
    if kept_from is None:
        return f"{problem}: give it what to avoid, such as “blurry, low quality”, or `none` for no negative prompt."
    how, job_id = kept_from
    button = BUTTONS[how]
    retype = "type another prompt, or " if how == "edit" else ""
    return (f"{problem}, and {button} keeps job #{job_id}'s negative prompt: {retype}run /video with the prompt and a "
            "`negative` of what to avoid, such as “blurry, low quality”, or `negative:none` for no negative prompt.")


class ServerSettings:
    """Each server's /video presets and showcase channel, read and changed by its moderators (audited)."""

    def __init__(self, moderation: Moderation, limits: PresetLimits, gate: ServerGates | None = None) -> None:
        self._moderation = moderation
        self._repo = moderation.repo
        self.limits = limits
        self.gate = gate  # each server's prompt gate: a negative prompt preset must pass it as a member's would
        self._presets: dict[int, Presets] = {}
        self._warned: set[tuple[int, str]] = set()  # (server, negative) presets already logged as refused

    # --- presets ----------------------------------------------------------------------------------------------

    async def presets(self, guild_id: int | None) -> Presets:
        """A server's presets (none in direct messages); a stored value the operator's limits no longer allow is
        left out, with a log line, and so is a negative prompt the server's gate refuses now (its lists change:
        kept, it would refuse every member's /video for text they never typed)."""
        if guild_id is None:
            return Presets()
        cached = await self._stored(guild_id)
        if cached.negative is not None and self._refusal(guild_id, cached.negative) is not None:
            if (guild_id, cached.negative) not in self._warned:
                self._warned.add((guild_id, cached.negative))
                log.warning("server %d's negative prompt preset %r is left out: the server's gate refuses it",
                            guild_id, cached.negative)
            return replace(cached, negative=None)
        return cached

    async def _stored(self, guild_id: int) -> Presets:
        """A server's presets as stored (those the limits allow), the gate not asked: what a change starts from, so
        that a negative preset the gate refuses for now is kept, not dropped by a change of another option."""
        cached = self._presets.get(guild_id)
        if cached is None:
            stored = await self._repo.setting(PRESETS_KEY, guild_id=guild_id) or {}
            cached = self._presets[guild_id] = Presets(**self._allowed(guild_id, stored))
        return cached

    def _refusal(self, guild_id: int, negative: str) -> str | None:
        """Why the server's gate refuses `negative` as a member's negative prompt, or None."""
        if self.gate is None:
            return None
        verdict = self.gate.check_text(negative, NEGATIVE, guild_id, optional=True)
        return None if verdict.allowed else verdict.message

    def _allowed(self, guild_id: int, stored: dict[str, Any]) -> dict[str, Any]:
        """The stored presets that the limits still allow."""
        kept = {}
        for name, value in stored.items():
            try:
                checked = self.limits.check(name, value) if name in PRESET_NAMES else None
            except InvalidInput as error:
                why = self.limits.refusal(name, value, clause=True) or error.message
                log.warning("server %d's preset %s=%r is left out: %s", guild_id, name, value, why)
                continue
            if checked is not None:
                kept[name] = checked
        return kept

    async def set_presets(self, actor: int, guild_id: int, **values: Any) -> Presets:
        """Set some of a server's presets (the others stay); InvalidInput names a value outside the limits."""
        changes = {name: self.limits.check(name, value) for name, value in values.items() if value is not None}
        if "negative" in changes:
            negative = changes["negative"]
            if negative is None:  # blank: it would silently remove the preset (`defaults reset` does that)
                raise InvalidInput("The negative prompt is blank: give the words to avoid, such as “blurry, low "
                                   "quality”, or reset them all with `/videomod defaults reset` and set the others "
                                   "again.")
            refusal = self._refusal(guild_id, negative)
            if refusal is not None:
                raise InvalidInput(f"The negative prompt “{shown(negative, 80)}” cannot be this server's default, "
                                   f"as it would refuse every /video that takes it: {refusal}")
        if not changes:
            options = [name for name in PRESET_NAMES if name != "style"]  # the style: /videostyle default
            raise InvalidInput(f"Name at least one option to set: {', '.join(options)}.")
        presets = replace(await self._stored(guild_id), **changes)
        await self._repo.set_setting(PRESETS_KEY, presets.given(), guild_id=guild_id, by=actor,
                                     now=self._moderation.now())
        self._presets[guild_id] = presets
        await self._moderation.audit(actor, "defaults.set", "server", changes, guild_id=guild_id)
        return presets

    async def set_default_style(self, actor: int, guild_id: int, style: str | None) -> Presets:
        """The style /video takes when a member names none (None: no style), the other presets kept; InvalidInput
        names a style the bot does not have."""
        checked = None if style is None else self.limits.check("style", style)
        presets = replace(await self._stored(guild_id), style=checked)
        await self._repo.set_setting(PRESETS_KEY, presets.given(), guild_id=guild_id, by=actor,
                                     now=self._moderation.now())
        self._presets[guild_id] = presets
        await self._moderation.audit(actor, "defaults.set", "server", {"style": checked}, guild_id=guild_id)
        return presets

    async def reset_presets(self, actor: int, guild_id: int) -> bool:
        """Forget a server's presets (the operator's defaults apply again); False when it had none."""
        removed = await self._repo.remove_setting(PRESETS_KEY, guild_id=guild_id)
        self._presets[guild_id] = Presets()
        if removed:
            await self._moderation.audit(actor, "defaults.reset", "server", guild_id=guild_id)
        return removed

    # --- the showcase channel ---------------------------------------------------------------------------------

    async def showcase_channel(self, guild_id: int) -> int | None:
        """The channel the server's moderators chose for its showcase, or None."""
        stored = await self._repo.setting(SHOWCASE_KEY, guild_id=guild_id)
        return None if stored is None else int(stored)

    async def set_showcase_channel(self, actor: int, guild_id: int, channel_id: int | None) -> bool:
        """Post the server's approved videos in this channel (None: back to the default); False when there was
        nothing to forget."""
        if channel_id is None:
            changed = await self._repo.remove_setting(SHOWCASE_KEY, guild_id=guild_id)
        else:
            await self._repo.set_setting(SHOWCASE_KEY, channel_id, guild_id=guild_id, by=actor,
                                         now=self._moderation.now())
            changed = True
        await self._moderation.audit(actor, "showcase.channel", None if channel_id is None else f"channel:{channel_id}",
                                     guild_id=guild_id)
        return changed
