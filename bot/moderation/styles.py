"""Which styles a server offers: the operator's (STYLES_FILE, as the workers loaded them) less those the server's
moderators turned off. The one home of "may this request use this style": admission asks `check`, /video's
autocomplete asks `available`, the moderators' /videostyle commands change it (stored as a moderation setting of
the server, audited; cached here, this process being the only writer).
"""

from __future__ import annotations

import difflib
import logging
import unicodedata
from collections.abc import Mapping, Sequence

from bot.characters import clipped, shown
from bot.errors import InvalidInput, Refused
from bot.moderation.rules import Moderation
from bot.moderation.text import BUTTONS

log = logging.getLogger(__name__)

OFF_KEY = "styles_off"  # moderation_settings key: the names of the styles a server turned off
LISTED_CHARS = 1500  # the style names one answer lists: a message holds 2000 characters, and STYLES_FILE has no limit
NO_STYLES = "none (the bot's operator has not listed any)"
HIDDEN = ("Cc", "Cf")  # controls and format characters (zero-width, bidi): a typed style name is read without them


def listed(names: Sequence[str]) -> str:
    """The style names, comma-separated, as many as fit LISTED_CHARS characters and then ", … and N more" (NO_STYLES
    for none): what a refusal names."""
    return clipped(names, LISTED_CHARS, sep=", ") or NO_STYLES


def closest(typed: str, names: Sequence[str]) -> str:
    """" Did you mean X?" for the style name nearest to a mistyped one, or "" when none is near."""
    near = difflib.get_close_matches(typed.casefold(), list(names), n=1)
    return f" Did you mean {near[0]}?" if near else ""


class ServerStyles:
    """The styles offered (name → description, file order) and each server's turned-off ones."""

    def __init__(self, moderation: Moderation | None) -> None:
        self._moderation = moderation  # None: no per-server settings, every style is offered everywhere
        self.offered: dict[str, str] = {}
        self._off: dict[int, frozenset[str]] = {}

    def offer(self, styles: Mapping[str, str]) -> None:
        """The styles the workers loaded, name → description (the service calls this once the model is loaded)."""
        self.offered = dict(styles)

    def named(self, style: str) -> str:
        """`style` as the styles file names it, whatever its case, its width and the spaces and invisible characters
        in it ("CLAYMATION " and full-width "ｃｌａｙｍａｔｉｏｎ", as an IME types it, are claymation); a name that
        is no style, without them, for a refusal to name ("" for one of nothing but them: blank)."""
        typed = "".join(char for char in style if unicodedata.category(char) not in HIDDEN).strip()
        return next((name for name in self.offered if _folded(name) == _folded(typed)), typed)

    async def off(self, guild_id: int | None) -> frozenset[str]:
        """The styles the server turned off (none in direct messages, or without moderation)."""
        if guild_id is None or self._moderation is None:
            return frozenset()
        cached = self._off.get(guild_id)
        if cached is None:
            stored = await self._moderation.repo.setting(OFF_KEY, guild_id=guild_id) or []
            cached = self._off[guild_id] = frozenset(str(name) for name in stored)
        return cached

    async def available(self, guild_id: int | None) -> list[str]:
        """The styles a member of the server may pick, in the styles file's order."""
        off = await self.off(guild_id)
        return [name for name in self.offered if name not in off]

    async def check(self, guild_id: int | None, style: str | None, kept_from: tuple[str, int] | None = None) -> None:
        """Refused (invalid option, logged `invalid:style`) unless `style` is None or offered and on in the server;
        the answer names the value and the styles the member may pick. A request a button made from a stored job
        (`kept_from`: "reroll", "edit" or "upscale", and the job) keeps that job's style, which no button can change
        (turned off, or gone from the styles file, since): what is right is said as the member can do it from
        there."""
        if style is None:
            return
        available = await self.available(guild_id)
        if style in available:
            return
        named = shown(style, 40)
        if style in self.offered:
            head = f"The style {named} is turned off in this server."
        else:
            head = f"There is no style {named}."
        if kept_from is not None:
            how, job_id = kept_from
            instead = f"another style ({listed(available)}) or `style:none`" if available else "no style"
            choices = f"{BUTTONS[how]} keeps job #{job_id}'s style: run /video with {instead}."
        else:
            choices = f"Styles here: {listed(available)}.{closest(style, available)}" if available else \
                "This server offers no styles."
        raise Refused("invalid", f"{head} {choices}", logged="invalid:style")

    async def turn(self, actor: int, guild_id: int, style: str, on: bool) -> bool:
        """Turn one of the offered styles on or off in the server (audited); False when it already was so.
        InvalidInput names a style that is not offered. `style` is named in any case (`named`)."""
        style = self.named(style)
        if style not in self.offered:
            offered = list(self.offered)
            raise InvalidInput(f"There is no style {shown(style, 40)}; the styles are: {listed(offered)}."
                               f"{closest(style, offered)}")
        assert self._moderation is not None, "styles are turned off per server only with moderation"
        off = await self.off(guild_id)
        if (style not in off) == on:
            return False
        changed = off - {style} if on else off | {style}
        names = [name for name in self.offered if name in changed]  # file order; gone styles are forgotten
        await self._moderation.repo.set_setting(OFF_KEY, names, guild_id=guild_id, by=actor,
                                                now=self._moderation.now())
        self._off[guild_id] = frozenset(names)
        await self._moderation.audit(actor, "style.on" if on else "style.off", f"style:{style}", guild_id=guild_id)
        log.info("user %d turned style %s %s in server %d", actor, style, "on" if on else "off", guild_id)
        return True


def _folded(name: str) -> str:
    """A style name compared whatever its case and width (NFKC: full-width letters are the ASCII ones)."""
    return unicodedata.normalize("NFKC", name).casefold()
