"""Why a path as an operator wrote it cannot be what they meant, in one line naming it: the one check of the path
settings (bot.settings: MEDIA_DIR=…) and of a style's LoRA file (bot.gpu.styles: file = "…"), and of a '~' in
DATABASE_URL's file. Whether a ~ was left unexpanded is t2v.unexpanded's to say, as for t2v's own paths. Loads no
torch."""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from pathlib import Path

from t2v import unexpanded
from t2v.unexpanded import Unexpanded


@dataclass(frozen=True)
class Written:
    """Where a path was written, as the line refusing it shows it: an env file's NAME=value, or a TOML file's
    key = 'value' (a string as Python writes it, which TOML reads the same)."""

    name: str  # MEDIA_DIR; file
    before: str = ""  # what the line says first: "STYLES_FILE=/srv/styles.toml [clay]: "
    toml: bool = False  # a TOML string (shown quoted); else a bare env file value
    relative_to: Path | None = None  # the folder a relative path starts from, offered beside the full path

    def assign(self, value: str, *, exact: bool = False) -> str:
        """NAME=value or key = 'value'; with `exact` the value is quoted anyway, showing its spaces and controls."""
        if self.toml:
            return f"{self.name} = {value!r}"
        return f"{self.name}={value!r}" if exact else f"{self.name}={value}"


def path_problem(value: str, written: Written) -> str | None:
    """Why `value`, a path as written, cannot be what was meant; None when it can. Spaces at its ends (env files,
    systemd and docker keep them: part of the name), a control character (a quoted .env's escaped \\t; a NUL, which
    open() refuses with a ValueError) or an invisible one (a zero-width space or a bidi mark pasted with it: a name
    nobody can type again), or a leading '~' (only shells expand it: here a folder named '~')."""
    if value != value.strip():
        return (f"{written.before}{written.assign(value, exact=True)} has spaces at its ends, which would be part of "
                f"the path: remove them ({written.assign(value.strip())})")
    hidden = next((c for c in value if unicodedata.category(c) in ("Cc", "Cf")), None)
    if hidden is not None:
        kind = "control" if unicodedata.category(hidden) == "Cc" else "invisible"
        return (f"{written.before}{written.assign(value, exact=True)} holds the {kind} character {hidden!r}, which "
                "no file name should: remove it")
    found = home_unexpanded(value)
    if found is not None:
        return f"{written.before}{written.assign(value)}: {not_expanded(found)}{_expanded(found.meant, written)}"
    return None


def home_unexpanded(value: str) -> Unexpanded | None:
    """A leading ~ or ~user in a path the bot reads (t2v.unexpanded): no shell reads a setting or a styles file, so
    each one is refused, even where a folder of that name is there (one an earlier start made). A $NAME is not: an
    env file's single quotes keep it as written on purpose (bot.settings)."""
    return unexpanded.find(value, variables=False, as_typed=False)


def not_expanded(found: Unexpanded) -> str:
    """The words for a `home_unexpanded` path, before the full path it stands for."""
    return f"'{found.typed}' is not expanded here (it would be a folder named '{found.typed}'); write the full path"


def _expanded(full: str | None, written: Written) -> str:
    """The full path a '~' stands for in a shell, as an example (none for ~name of a user this host does not know),
    and the folder a relative path would start from."""
    example = "" if full is None else f" such as {full!r}" if written.toml else f", e.g. {full}"
    relative = "" if written.relative_to is None else f", or one relative to {written.relative_to}"
    return example + relative
